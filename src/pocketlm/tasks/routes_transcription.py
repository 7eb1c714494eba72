"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` in OpenAI's shape (multipart uploads).

The upload is checked and decoded in a worker thread, the server's Whisper
(``--transcription-model``) listens in another, and the answer is built in the
format asked for. ``stream=true`` sends the text as server-sent events while the
audio is being heard: one ``transcript.text.delta`` per segment, then
``transcript.text.done`` with the whole text, as OpenAI's transcription streams do.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from pocketlm.errors import InvalidParameter, PocketLMError
from pocketlm.tasks import forms, transcription
from pocketlm.tasks.schemas import Transcription, TranscriptionRequest, TranscriptionVerbose, TranslationRequest
from pocketlm.tasks.state import tasks_state

router = APIRouter(prefix="/v1/audio", tags=["speech to text (OpenAI)"])

MEDIA_TYPES = {"text": "text/plain; charset=utf-8", "srt": "application/x-subrip", "vtt": "text/vtt"}
GRANULARITIES_FIELD = "timestamp_granularities[]"


def document(schema: dict, served: str) -> None:
    """The OpenAPI document's ``model``: the server's recognizer, by the name given or served, or whisper-1."""
    from pocketlm.models.registry import served_name

    names = list(dict.fromkeys([served, served_name(served), *transcription.MODEL_ALIASES, ""]))
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
        form = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        form["properties"]["model"].pop("type", None)
        form["properties"]["model"]["enum"] = names


def _body(model: type) -> dict:
    """The multipart body, for /docs."""
    extra = forms.body_schema(model, "multipart/form-data")
    extra["requestBody"]["content"]["multipart/form-data"]["encoding"] = {"file": {"contentType": "audio/*"}}
    return extra


def _answers(stream: bool) -> dict:
    """The answers of every response_format (and of stream=true), for /docs."""
    content = {media: {"schema": {"type": "string"}} for media in dict.fromkeys(MEDIA_TYPES.values())}
    if stream:  # each event as every streaming route documents it (pocketlm.api.openapi)
        content["text/event-stream"] = {}
    return {
        200: {
            "model": Transcription | TranscriptionVerbose,
            "description": "The text, in `response_format`.",
            "content": content,
        },
        404: {"description": "Another model than the server's speech-to-text model."},
    }


async def _request(request: Request, model: type[TranslationRequest]):
    """(the parsed fields, the decoded audio) of a multipart upload."""
    fields, files, form = await forms.read_body(request)
    upload = files.get("file")
    if upload is None:
        raise InvalidParameter("file", "send the audio as the file field 'file' of a multipart/form-data body")
    if isinstance(fields.get(GRANULARITIES_FIELD), str):  # one value of a repeatable field
        fields[GRANULARITIES_FIELD] = [fields[GRANULARITIES_FIELD]]
    body = forms.parse(model, {**fields, "file": "-"}, form)  # the upload stands in for the field
    transcription.check_model(body.model, tasks_state(request).transcription_model)
    data = await upload.read()
    return body, await asyncio.to_thread(transcription.decode, data)


@router.post(
    "/transcriptions",
    summary="Speech to text (OpenAI's API)",
    response_class=Response,
    openapi_extra=_body(TranscriptionRequest),
    responses=_answers(stream=True),
)
async def create_transcription(request: Request):
    body, audio = await _request(request, TranscriptionRequest)
    words = transcription.check_options(
        body.response_format, body.timestamp_granularities or [], body.temperature, body.stream
    )
    options = transcription.Options(
        "transcribe", transcription.check_language(body.language), body.prompt, body.temperature, words
    )
    return await _answer(request, audio, options, body.response_format, body.stream)


@router.post(
    "/translations",
    summary="Speech in any language to English text (OpenAI's API)",
    response_class=Response,
    openapi_extra=_body(TranslationRequest),
    responses=_answers(stream=False),
)
async def create_translation(request: Request):
    body, audio = await _request(request, TranslationRequest)
    transcription.check_options(body.response_format, [], body.temperature, False)
    options = transcription.Options("translate", None, body.prompt, body.temperature, False)
    return await _answer(request, audio, options, body.response_format, False)


async def _answer(request: Request, audio, options: transcription.Options, response_format: str, stream: bool):
    name = tasks_state(request).transcription_model
    recognizer = await asyncio.to_thread(transcription.recognizer, name)
    if stream:  # Starlette runs a plain iterator in a worker thread, segment by segment
        return StreamingResponse(_events(recognizer, audio, options), media_type="text/event-stream")

    def run():
        heard, segments = recognizer.listen(audio, options)
        return heard, list(segments)

    heard, segments = await asyncio.to_thread(run)
    body = transcription.answer(heard, segments, options, response_format)
    return JSONResponse(body) if isinstance(body, dict) else Response(body, media_type=MEDIA_TYPES[response_format])


def _events(recognizer, audio, options):
    """OpenAI's transcription stream; an error once the answer has started goes out as one error event."""
    heard_text = []
    try:
        _, segments = recognizer.listen(audio, options)
        for segment in segments:
            delta = segment.text if heard_text else segment.text.lstrip()
            heard_text.append(segment)
            yield _sse({"type": "transcript.text.delta", "delta": delta})
        yield _sse({"type": "transcript.text.done", "text": transcription.text_of(heard_text)})
    except PocketLMError as e:
        error = {"message": e.message, "type": e.type, "param": e.param, "code": e.code}
        yield _sse({"error": error})


def _sse(event: dict) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
