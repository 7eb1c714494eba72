"""HTTP routes of the tasks: LibreTranslate at the root, OpenAI's audio routes, captions and the pipeline.

(Embeddings and speech recognition have their own modules, ``routes_embeddings`` and
``routes_transcription``; ``install`` puts them all on the app.)

``install(app, state)`` adds them to the app behind the API key (LibreTranslate's
routes also read the key from LibreTranslate's ``api_key`` field), with the server's
captioning model (``--caption-model``; without one, the captioning routes are not
served). Every model call runs in a worker thread (``asyncio.to_thread``) so the
event loop keeps serving text generation while a task model works.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel

from pocketlm.errors import InvalidParameter, ModelNotFound
from pocketlm.service import AppState, ListedModel
from pocketlm.service.auth import api_key_or_field, require_api_key
from pocketlm.tasks import (
    captioning,
    catalog,
    embeddings,
    forms,
    pipeline,
    routes_embeddings,
    routes_transcription,
    speech,
    transcription,
    translation,
)
from pocketlm.tasks.schemas import (
    AudioFile,
    CaptionRequest,
    CaptionResponse,
    DescribeRequest,
    DescribeResponse,
    DetectedLanguage,
    DetectRequest,
    Language,
    SpeechRequest,
    TranslateRequest,
    TranslateResponse,
    VoiceCard,
    VoiceList,
)
from pocketlm.tasks.settings import TaskSettings
from pocketlm.tasks.state import TasksState, tasks_state

libretranslate = APIRouter(tags=["translation (LibreTranslate)"])
audio = APIRouter(prefix="/v1/audio", tags=["speech (OpenAI)"])
images = APIRouter(prefix="/v1", tags=["captioning and pipeline"])


# Where LibreTranslate's clients send their key (JSON, form or query string) instead of a Bearer header.
LIBRETRANSLATE_KEY_FIELD = "api_key"


def install(app: FastAPI, state: AppState) -> None:
    """Add the task routes behind the API key. LibreTranslate's clients may send their key as an ``api_key``
    field instead of a header. Captioning and the describe pipeline are served only with a caption model."""
    settings = state.part(TaskSettings)
    caption_model = settings.caption_model
    app.state.tasks = TasksState(
        speech.AudioStore(),
        caption_model,
        settings.embedding_model or embeddings.DEFAULT_MODEL,
        settings.transcription_model or transcription.MODEL_ID,
    )
    state.listings.append(lambda: [ListedModel(m.id, m.task) for m in catalog.task_models(settings) if m.available])
    keyed = [Depends(require_api_key)]
    app.include_router(libretranslate, dependencies=[Depends(api_key_or_field(LIBRETRANSLATE_KEY_FIELD))])
    app.include_router(audio, dependencies=keyed)
    app.include_router(routes_transcription.router, dependencies=keyed)
    app.include_router(routes_embeddings.router, dependencies=keyed)
    app.include_router(routes_embeddings.ollama, dependencies=keyed)
    tasks = app.state.tasks
    state.openapi_hooks.append(lambda schema: routes_embeddings.document(schema, tasks.embedding_model))
    state.openapi_hooks.append(lambda schema: routes_transcription.document(schema, tasks.transcription_model))
    if caption_model:
        app.include_router(images, dependencies=keyed)
        state.openapi_hooks.append(lambda schema: caption_model_schema(schema, caption_model))
    else:
        state.unserved.update({route.path: captioning.NO_MODEL for route in images.routes})


def caption_model_schema(schema: dict, name: str) -> None:
    """The OpenAPI document's captioning ``model``: the configured model (by path or name); left out in a form."""
    # "" and omitted alike mean the configured model (check_model), in a form as in JSON
    string = {"type": "string", "enum": list(dict.fromkeys([name, captioning.model_name(name), ""]))}
    for path in ("/v1/images/captions", "/v1/pipelines/describe"):
        for content_type, content in schema["paths"][path]["post"]["requestBody"]["content"].items():
            field = content["schema"]["properties"]["model"]
            for key in ("type", "anyOf", "enum"):
                field.pop(key, None)
            field["anyOf"] = [string] if content_type in forms.FORMS else [string, {"type": "null"}]


# ----------------------------------------------------------------------------- translation


@libretranslate.post(
    "/translate",
    response_model=TranslateResponse,
    response_model_exclude_none=True,
    summary="Translate text (LibreTranslate's API)",
    openapi_extra=forms.body_schema(TranslateRequest, "application/json", *forms.FORMS),
)
async def translate(request: Request):
    fields, _, form = await forms.read_body(request)
    body = forms.parse(TranslateRequest, fields, form)
    texts = [body.q] if isinstance(body.q, str) else list(body.q)
    translation.check_texts(texts)
    source = translation.canonical_language(body.source, "source", allow_auto=True)
    target = translation.canonical_language(body.target, "target")

    def run():
        html_format = body.format == "html"
        # a text without letters is in no language: it stays as it is (detected as the target, 0% sure)
        detected = (
            [
                translation.detect_source(translation.visible_text(t, html_format=html_format), fallback=target)
                for t in texts
            ]
            if source == "auto"
            else None
        )
        sources = [code for code, _ in detected] if detected else [source] * len(texts)
        out = [""] * len(texts)
        engine = translation.translator()
        for src in set(sources):  # one engine call per source language: the whole batch at once
            picked = [i for i, s in enumerate(sources) if s == src]
            for i, text in zip(
                picked, engine.translate_many([texts[i] for i in picked], src, target, html_format=html_format)
            ):
                out[i] = text
        return out, detected

    out, detected = await asyncio.to_thread(run)
    answer = TranslateResponse(translatedText=out[0] if isinstance(body.q, str) else out)
    if detected:
        found = [DetectedLanguage(language=code, confidence=conf) for code, conf in detected]
        answer.detectedLanguage = found[0] if isinstance(body.q, str) else found
    return answer


@libretranslate.get("/languages", response_model=list[Language], summary="Languages this server translates")
async def languages(
    api_key: str | None = Query(
        None,
        description=(
            "The server's API key (`--api-key`) as LibreTranslate clients send it; "
            "or the `Authorization: Bearer` header, "
            "which wins when both are sent. POST /translate and /detect take the same field in their body."
        ),
    ),
):
    # the key itself is checked by the router's dependency; the parameter is here to document it
    return [
        Language(code=code, name=name, targets=[c for c in translation.LANGUAGES if c != code])
        for code, name in translation.LANGUAGES.items()
    ]


@libretranslate.post(
    "/detect",
    response_model=list[DetectedLanguage],
    summary="Detect the language of a text",
    openapi_extra=forms.body_schema(DetectRequest, "application/json", *forms.FORMS),
)
async def detect(request: Request):
    fields, _, form = await forms.read_body(request)
    body = forms.parse(DetectRequest, fields, form)
    if not body.q.strip():
        raise InvalidParameter("q", "is empty: give some text")
    found = await asyncio.to_thread(translation.detect, body.q)
    return [DetectedLanguage(language=code, confidence=conf) for code, conf in found]


# ----------------------------------------------------------------------------- speech


def _speech_model(asked: str | None) -> str:
    if asked is None or asked == speech.MODEL_ID or asked in speech.MODEL_ALIASES:
        return speech.MODEL_ID
    raise ModelNotFound(
        f"model '{asked}' is not a speech model here; use '{speech.MODEL_ID}' (or {', '.join(speech.MODEL_ALIASES)})"
    )


def _store(request: Request, data: bytes, response_format: str, sample_rate: int, duration: float) -> AudioFile:
    store: speech.AudioStore = tasks_state(request).audio_store
    file_id = store.save(data, response_format)
    return AudioFile(
        id=file_id,
        url=str(request.url_for("audio_file", file_id=file_id)),
        format=response_format,
        sample_rate=speech.PCM_RATE if response_format == "pcm" else sample_rate,
        duration_seconds=round(duration, 3),
        bytes=len(data),
        expires_in_seconds=int(store.max_age),
    )


@audio.post(
    "/speech",
    summary="Text to speech (OpenAI's API)",
    response_class=Response,
    responses={
        404: {"description": "Another model than the speech model."},
        200: {
            "content": {t: {} for t in speech.FORMATS.values()} | {"application/json": {}},
            "description": 'The audio; with return_download_link="json", the stored file\'s URL.',
        },
    },
)
async def create_speech(body: SpeechRequest, request: Request):
    _speech_model(body.model)
    if body.instructions:
        raise InvalidParameter("instructions", "is not supported: this voice cannot be steered; remove it")
    speech.check_request(body.input, body.voice, body.speed, body.response_format)
    media_type = speech.FORMATS[body.response_format]
    speaker = await asyncio.to_thread(speech.speaker)

    if body.response_format == "pcm" and not body.return_download_link:

        def stream():  # Starlette runs a plain iterator in a worker thread, chunk by chunk
            for chunk in speaker.chunks(body.input, body.voice, body.speed):
                yield speech.pcm_chunk(chunk, speaker.sample_rate)

        return StreamingResponse(stream(), media_type=media_type, headers={"X-Sample-Rate": str(speech.PCM_RATE)})

    def run():
        samples = speaker.synthesize(body.input, body.voice, body.speed)
        return speech.encode(samples, speaker.sample_rate, body.response_format), len(samples) / speaker.sample_rate

    data, duration = await asyncio.to_thread(run)
    rate = speech.PCM_RATE if body.response_format == "pcm" else speaker.sample_rate
    if not body.return_download_link:
        return Response(data, media_type=media_type, headers={"X-Sample-Rate": str(rate)})
    stored = await asyncio.to_thread(_store, request, data, body.response_format, speaker.sample_rate, duration)
    if body.return_download_link == "json":
        return JSONResponse(stored.model_dump())
    return Response(data, media_type=media_type, headers={"X-Sample-Rate": str(rate), "X-Download-URL": stored.url})


@audio.get("/voices", response_model=VoiceList, summary="The voices of POST /v1/audio/speech")
async def voices():
    rate = speech.sample_rate()
    return VoiceList(
        voices=[
            VoiceCard(id=v.id, name=v.name, language=v.language, description=v.description, sample_rate=rate)
            for v in speech.VOICES.values()
        ]
    )


@audio.get(
    "/files/{file_id}",
    name="audio_file",
    summary="A stored audio file (download links)",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in speech.FORMATS.values()}}},
)
async def audio_file(file_id: str, request: Request):
    path = tasks_state(request).audio_store.path(file_id)
    return FileResponse(path, media_type=speech.FORMATS[path.suffix[1:]])


# ----------------------------------------------------------------------------- captioning and the pipeline


async def _image_request(request: Request, model: type[CaptionRequest]):
    """(parsed fields, RGB image) from a multipart upload (file field 'image' or 'file') or JSON with base64."""
    fields, files, form = await forms.read_body(request)
    upload = files.get("image") or files.get("file")
    if upload is not None:
        data = await upload.read()
        fields = {**fields, "image": "-"}  # the file stands in for the base64 field
    elif "image" in fields and isinstance(fields["image"], str):
        data = captioning.image_bytes(fields["image"])
    else:
        raise InvalidParameter(
            "image",
            "send the image as a multipart file field 'image' (or 'file'), "
            'or as JSON {"image": "data:image/png;base64,..."}',
        )
    body = forms.parse(model, fields, form)
    captioning.check_max_new_tokens(body.max_new_tokens)
    captioning.check_model(body.model, tasks_state(request).caption_model)
    image = await asyncio.to_thread(captioning.open_image, data)
    return body, image


def _image_body(model: type[BaseModel]) -> dict:
    """JSON with the image in base64, or a multipart upload: the same fields, the image a file."""
    extra = forms.body_schema(model, "application/json")
    upload = forms.form_schema(extra["requestBody"]["content"]["application/json"]["schema"])
    upload["properties"]["image"] = {
        "type": "string",
        "format": "binary",
        "description": "The image file: PNG, JPEG or WebP.",
    }
    extra["requestBody"]["content"]["multipart/form-data"] = {
        "schema": upload,
        "encoding": {"image": {"contentType": "image/png, image/jpeg, image/webp"}},
    }
    return extra


@images.post(
    "/images/captions",
    response_model=CaptionResponse,
    summary="Caption an image",
    openapi_extra=_image_body(CaptionRequest),
    responses={404: {"description": "Another captioning model than the served one."}},
)
async def caption(request: Request):
    body, image = await _image_request(request, CaptionRequest)
    captioner = await asyncio.to_thread(captioning.captioner, tasks_state(request).caption_model)
    text = await asyncio.to_thread(captioner.caption, image, body.max_new_tokens)
    return CaptionResponse(model=captioner.name, caption=text, width=image.width, height=image.height)


@images.post(
    "/pipelines/describe",
    response_model=DescribeResponse,
    summary="Image -> caption -> translation -> speech, every stage's output",
    openapi_extra=_image_body(DescribeRequest),
    responses={404: {"description": "Another captioning model than the served one."}},
)
async def describe(request: Request):
    body, image = await _image_request(request, DescribeRequest)
    pipeline.check(body.language, body.voice, body.speed, body.response_format)
    model = tasks_state(request).caption_model  # the one model check_model let through
    started = time.perf_counter()

    def run():
        result = pipeline.describe(
            image,
            model=model,
            language=body.language,
            voice=body.voice,
            speed=body.speed,
            max_new_tokens=body.max_new_tokens,
        )
        data = speech.encode(result.audio, result.sample_rate, body.response_format)
        stored = _store(request, data, body.response_format, result.sample_rate, len(result.audio) / result.sample_rate)
        return result, stored, captioning.captioner(model).name

    result, stored, name = await asyncio.to_thread(run)
    return JSONResponse(
        DescribeResponse(
            model=name,
            caption=result.caption,
            translation=result.translation,
            language=result.language,
            voice=result.voice,
            audio=stored,
        ).model_dump(),
        headers={"Server-Timing": f"describe;dur={(time.perf_counter() - started) * 1000:.0f}"},
    )
