"""The tasks' own server settings: which captioning model ``pocketlm serve`` offers.

Declared here, by the feature that uses them; the server joins them to the service's settings
(``pocketlm.server.ServeSettings``), so they are flags of ``serve`` and ``deploy ray`` and variables
Lambda reads, like every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketlm.settings import Declared, setting


def _resolvable(model: str) -> None:
    """A caption model that does not resolve fails at start-up, in one line, not at the first request."""
    from pocketlm.models import resolve

    resolve(model)


@dataclass(frozen=True)
class TaskSettings(Declared):
    caption_model: str | None = setting(
        None,
        check=_resolvable,
        help="Image-to-text model for POST /v1/images/captions and /v1/pipelines/describe (a Hugging Face "
        "directory or cached hub id, e.g. ViT-GPT2 or BLIP). Default: captioning off (those routes are not served).",
    )
