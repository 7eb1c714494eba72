"""Ollama's API beside OpenAI's: ``/api/generate``, ``/api/chat``, ``/api/tags``, ``/api/ps``, ``/api/show``,
``/api/version``, so the clients written for Ollama (its Python and JS libraries, Open WebUI, editors'
assistants) talk to pocketlm unchanged.

The answers stream as Ollama's do, one JSON object per line (``application/x-ndjson``), each with a
piece of text, the last with ``done: true``, why it ended and how long each part took; an error after
the first line is one last ``{"error": ...}`` line. Errors before it are ``{"error": "..."}`` with the
status (``api.errors``). What is and is not supported: docs/serving.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel

from pocketlm import __version__
from pocketlm.api.errors import renamed
from pocketlm.api.generation import Job, acquire, compile_grammars, events, start, until_done_or_disconnected
from pocketlm.api.streaming import EventStream, guarded
from pocketlm.api.wire.ollama import (
    ALIASES,
    OllamaAssistantMessage,
    OllamaChatRequest,
    OllamaChatResponse,
    OllamaDetails,
    OllamaError,
    OllamaGenerateRequest,
    OllamaGenerateResponse,
    OllamaPs,
    OllamaRunning,
    OllamaShow,
    OllamaShowRequest,
    OllamaTag,
    OllamaTags,
    OllamaVersion,
    timestamp,
)
from pocketlm.engine import SamplingParams, TextDelta
from pocketlm.errors import InvalidParameter, PocketLMError
from pocketlm.models.listing import chat_template, metadata
from pocketlm.service import AppState, ServedModel, app_state
from pocketlm.service.ollama import OLLAMA_PREFIX, JsonBody

router = APIRouter(prefix=OLLAMA_PREFIX, tags=["ollama"], route_class=JsonBody)

NDJSON = "application/x-ndjson"
_STREAMED = {
    200: {"content": {NDJSON: {}}, "description": "With stream (the default): one JSON object per line."},
    404: {"model": OllamaError, "description": "The model is not served here."},
    503: {"model": OllamaError, "description": "The queue is full, or the server is shutting down."},
    504: {"model": OllamaError, "description": "The request ran longer than --request-timeout seconds."},
}
_FAR_FUTURE = 253402300799.0  # 9999-12-31T23:59:59Z: Ollama shows a model kept forever as expiring far ahead


@router.post("/generate", response_model=OllamaGenerateResponse, response_model_exclude_none=True, responses=_STREAMED)
async def generate(body: OllamaGenerateRequest, request: Request):
    """Answer a prompt (rendered with the model's chat template unless `raw`); no prompt: load (or unload)."""
    body.checked()
    params = _checked(request, body)
    if not body.prompt:
        return await _load_or_unload(request, body, lambda **done: OllamaGenerateResponse(response="", **done))
    arrived = time.monotonic()
    lease = await acquire(request, body.model, body.keep_alive_seconds())
    await compile_grammars(lease, params)
    if body.raw:
        job = start(lease, params, ALIASES, prompt=body.prompt)
    else:
        job = start(lease, params, {**ALIASES, "messages": "prompt"}, messages=body.messages())
    return await _answer(
        request, job, body.stream, arrived, lambda text, **done: OllamaGenerateResponse(response=text, **done)
    )


@router.post("/chat", response_model=OllamaChatResponse, response_model_exclude_none=True, responses=_STREAMED)
async def chat(body: OllamaChatRequest, request: Request):
    """Answer the conversation's next turn, with the model's chat template; no messages: load (or unload)."""
    messages = body.engine_messages()
    params = _checked(request, body)
    if not messages:
        return await _load_or_unload(
            request, body, lambda **done: OllamaChatResponse(message=OllamaAssistantMessage(content=""), **done)
        )
    arrived = time.monotonic()
    lease = await acquire(request, body.model, body.keep_alive_seconds())
    await compile_grammars(lease, params)
    job = start(lease, params, {**ALIASES, "prompt": "messages"}, messages=messages)
    return await _answer(
        request,
        job,
        body.stream,
        arrived,
        lambda text, **done: OllamaChatResponse(message=OllamaAssistantMessage(content=text), **done),
    )


@router.get("/tags", response_model=OllamaTags)
async def tags(request: Request):
    """Every model this server serves, loaded or not."""
    return OllamaTags(models=[_tag(m) for m in app_state(request).models.models.values()])


@router.get("/ps", response_model=OllamaPs)
async def ps(request: Request):
    """The models loaded now, with when each unloads."""
    table = app_state(request).models
    running = []
    for served, _ in reversed(table.loaded()):  # the most recently used first, as Ollama lists them
        expires = table.expires_at(served.id)
        running.append(
            OllamaRunning(
                **_tag(served).model_dump(),
                expires_at=timestamp(_FAR_FUTURE if expires is None else expires),
                context_length=served.n_ctx,
            )
        )
    return OllamaPs(models=running)


@router.post(
    "/show", response_model=OllamaShow, responses={404: {"model": OllamaError, "description": "Not served here."}}
)
async def show(body: OllamaShowRequest, request: Request):
    """What a model is, read from its files (it need not be loaded)."""
    state = app_state(request)
    served = state.models.find(body.model)
    row = served.row
    parameters = [f"num_ctx {served.n_ctx}", "temperature 0.8", "top_k 40", "top_p 0.9"]
    return OllamaShow(
        modelfile=f"# served by pocketlm {__version__}\nFROM {row.path}\n",
        parameters="\n".join(parameters),
        template=_template(state, served) or "",
        details=_details(served),
        model_info=metadata(row),
        capabilities=["completion"],
        modified_at=timestamp(_modified(row.path)),
    )


@router.get("/version", response_model=OllamaVersion)
async def version():
    """pocketlm's version (not an Ollama version)."""
    return OllamaVersion(version=__version__)


# ---- answers ---------------------------------------------------------------------------------------


async def _answer(request: Request, job: Job, stream: bool, arrived: float, shape: Callable[..., BaseModel]):
    """The job's answer: streamed one object per line, or whole."""
    model = job.model
    if stream:
        return EventStream(guarded(_lines(request, job, arrived, shape), _error_line), [job], media_type=NDJSON)

    async def drain():
        async for _ in events(request, job):
            pass

    try:
        await until_done_or_disconnected(request, drain())
    finally:
        job.close()
    return shape(job.completion.samples[0].text, **_done(job, model, arrived))


async def _lines(request: Request, job: Job, arrived: float, shape: Callable[..., BaseModel]):
    model = job.model
    async for event in events(request, job):
        if isinstance(event, TextDelta) and event.text:
            yield _line(shape(event.text, model=model, created_at=timestamp(), done=False))
    yield _line(shape("", **_done(job, model, arrived)))


def _done(job: Job, model: str, arrived: float) -> dict:
    """The last object's fields: why it ended, and Ollama's counts and durations (nanoseconds)."""
    now = time.monotonic()
    sample, usage = job.completion.samples[0], job.completion.usage
    first = job.first_token or now
    return {
        "model": model,
        "created_at": timestamp(),
        "done": True,
        "done_reason": sample.finish_reason or "stop",
        "total_duration": _ns(now - arrived),
        "load_duration": _ns(job.started - arrived),
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": _ns(first - job.started),
        "eval_count": usage.completion_tokens,
        "eval_duration": _ns(now - first),
    }


def _checked(request: Request, body: OllamaGenerateRequest | OllamaChatRequest) -> SamplingParams:
    """The request's sampling parameters, every field checked before anything loads (a request that only loads
    a model is refused for a bad option all the same): the model (404), the options, the keep-alive."""
    state = app_state(request)
    served = state.models.find(body.model)
    body.keep_alive_seconds()
    try:
        return body.sampling(served.n_ctx).validated(state.settings.engine.limits)
    except InvalidParameter as err:
        raise renamed(err, ALIASES) from None


async def _load_or_unload(request: Request, body, shape: Callable[..., BaseModel]):
    """A request with nothing to answer: load the model (``done_reason: load``), or unload it with keep_alive 0."""
    table = app_state(request).models
    model = table.find(body.model).id
    keep_alive = body.keep_alive_seconds()
    if keep_alive == 0:
        await table.unload(model)
        reason = "unload"
    else:
        (await acquire(request, model, keep_alive)).release()  # its keep-alive clock starts now
        reason = "load"
    return shape(model=model, created_at=timestamp(), done=True, done_reason=reason)


def _line(obj: BaseModel) -> str:
    return obj.model_dump_json(exclude_none=True) + "\n"


def _error_line(err: PocketLMError) -> str:
    return json.dumps({"error": err.message}) + "\n"


def _ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


# ---- what a model is -------------------------------------------------------------------------------


def _tag(served: ServedModel) -> OllamaTag:
    row = served.row
    modified = _modified(row.path)
    identity = f"{row.path}:{row.file_size}:{modified}".encode()
    return OllamaTag(
        name=served.id,
        model=served.id,
        modified_at=timestamp(modified),
        size=row.file_size,
        digest=hashlib.sha256(identity).hexdigest(),
        details=_details(served),
    )


def _details(served: ServedModel) -> OllamaDetails:
    row = served.row
    return OllamaDetails(
        format="gguf" if row.path.endswith(".gguf") else "safetensors",
        family=row.architecture,
        families=[row.architecture],
        parameter_size=row.params_label,
        quantization_level=row.quantization,
    )


def _template(state: AppState, served: ServedModel) -> str | None:
    engine = state.models.engine(served.id)
    return engine.info.chat_template if engine is not None else chat_template(served.row.path)


def _modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:  # a model handed in loaded (tests), or its file moved since start-up
        return time.time()
