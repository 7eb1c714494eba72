"""What the tasks keep per app: the files behind download links and the models the server was configured with."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from pocketlm.tasks import speech


@dataclass(frozen=True)
class TasksState:
    audio_store: speech.AudioStore  # the files behind download links
    caption_model: str | None  # the configured captioning model; None: captioning is not served
    embedding_model: str  # the encoder of /v1/embeddings (a name prepare takes)
    transcription_model: str  # the Whisper of /v1/audio/transcriptions and /translations


def tasks_state(request: Request) -> TasksState:
    return request.app.state.tasks
