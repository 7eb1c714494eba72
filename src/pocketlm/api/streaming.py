"""Server-sent events in the two shapes clients parse.

OpenAI: ``data: {chunk}\\n\\n`` per delta, a final chunk with ``finish_reason``
per choice, an optional usage chunk (``stream_options.include_usage``), then
``data: [DONE]``. TGI (``huggingface_hub``): ``data: {"index", "token",
"generated_text": null, "details": null}`` per token; the last event carries
the last token plus ``generated_text`` and ``details``.

An error after the response started (the status line is already sent) goes
out as one ``data: {"error": ...}`` event, after which the stream closes. Both
client libraries raise on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from pocketlm.api import render
from pocketlm.api.errors import error_body
from pocketlm.api.generation import Job, events
from pocketlm.api.schemas import (
    ChatChunkChoice, ChatCompletionChunk, ChatDelta, CompletionChoice, CompletionChunk, TGIStreamDetails, TGIStreamEvent, TGIToken,
)
from pocketlm.engine.outputs import SampleFinished, TextDelta, Usage
from pocketlm.errors import PocketLMError

log = logging.getLogger("pocketlm.api")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of tokens


def sse(payload: BaseModel | dict) -> str:
    """One server-sent event carrying a JSON document."""
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {data}\n\n"


class EventStream(StreamingResponse):
    """A streamed response that always releases its engine request when it ends, however it ends.

    Starlette cancels the sending task when the client disconnects; if that happens while the
    body generator is parked at a ``yield``, its ``finally`` would only run when the generator is
    garbage-collected. Cancelling the job here frees the slot at the engine's next step instead.
    """

    def __init__(self, body, job: Job):
        super().__init__(body, media_type="text/event-stream", headers=SSE_HEADERS)
        self.job = job

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.stream.cancel()  # no-op when the request already finished


async def _guarded(body, error_event):
    """Yield the body's events; turn a failure into one error event and stop."""
    try:
        async with contextlib.aclosing(body) as stream:
            async for chunk in stream:
                yield chunk
    except PocketLMError as err:
        yield sse(error_event(err))
    except Exception:  # a bug: log it, still end the stream in the client's error shape
        log.exception("error while streaming")
        yield sse(error_event(PocketLMError("internal server error while generating")))


def openai_error_event(err: PocketLMError) -> dict:
    return error_body(err)


def tgi_error_event(err: PocketLMError) -> dict:
    kind = "overloaded" if err.http_status in (429, 503) else "validation" if err.http_status < 500 else "generation"
    return {"error": err.message, "error_type": kind}


# --------------------------------------------------------------------------- OpenAI

def completion_stream(request: Request, job: Job, model: str, include_usage: bool, echo_text: str | None) -> StreamingResponse:
    return EventStream(_guarded(_completion_chunks(request, job, model, include_usage, echo_text), openai_error_event), job)


async def _completion_chunks(request, job, model, include_usage, echo_text):
    chunk_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    offsets = [len(echo_text or "")] * job.params.n

    def chunk(choices, usage=None):
        return sse(CompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage))

    if echo_text:
        for index in range(job.params.n):
            yield chunk([CompletionChoice(index=index, text=echo_text)])
    async for event in events(request, job):
        if isinstance(event, TextDelta):
            logprobs = None
            if job.params.logprobs is not None:
                logprobs = render.completion_logprobs(event.logprobs, offsets[event.index])
            offsets[event.index] += len(event.text)
            if event.text or logprobs:
                yield chunk([CompletionChoice(index=event.index, text=event.text, logprobs=logprobs)])
        elif isinstance(event, SampleFinished):
            yield chunk([CompletionChoice(index=event.index, text="", finish_reason=event.reason)])
        elif isinstance(event, Usage) and include_usage:
            yield chunk([], usage=render.usage(event))
    yield "data: [DONE]\n\n"


def chat_stream(request: Request, job: Job, model: str, include_usage: bool) -> StreamingResponse:
    return EventStream(_guarded(_chat_chunks(request, job, model, include_usage), openai_error_event), job)


async def _chat_chunks(request, job, model, include_usage):
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(choices, usage=None):
        return sse(ChatCompletionChunk(id=chunk_id, created=created, model=model, choices=choices, usage=usage))

    # OpenAI opens every choice with the role, content empty.
    yield chunk([ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content="")) for i in range(job.params.n)])
    async for event in events(request, job):
        if isinstance(event, TextDelta):
            logprobs = render.chat_logprobs(event.logprobs) if job.params.logprobs is not None else None
            if event.text or logprobs:
                yield chunk([ChatChunkChoice(index=event.index, delta=ChatDelta(content=event.text), logprobs=logprobs)])
        elif isinstance(event, SampleFinished):
            yield chunk([ChatChunkChoice(index=event.index, delta=ChatDelta(), finish_reason=event.reason)])
        elif isinstance(event, Usage) and include_usage:
            yield chunk([], usage=render.usage(event))
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- TGI

def tgi_stream(request: Request, job: Job, *, prompt: str, full_text: bool, eos_id: int) -> StreamingResponse:
    return EventStream(_guarded(_tgi_events(request, job, prompt, full_text, eos_id), tgi_error_event), job)


async def _tgi_events(request, job, prompt, full_text, eos_id):
    """One event per text delta, held back by one so the last event can carry the final token and the summary."""
    held: TGIStreamEvent | None = None
    count = 0
    text = prompt if full_text else ""
    async for event in events(request, job):
        if isinstance(event, TextDelta):
            text += event.text
            if not event.token_ids and held is not None:  # text the engine held back (a flush): same token
                held.token.text += event.text
                continue
            if held is not None:
                yield sse(held)
            held = TGIStreamEvent(index=count, token=render.tgi_token(event), top_tokens=render.tgi_top_tokens(event))
            count += 1
        elif isinstance(event, SampleFinished):
            if held is None:  # finished before any text: report the end-of-sequence token itself
                held = TGIStreamEvent(index=count, token=TGIToken(id=eos_id, text="", special=True))
            held.generated_text = text
            held.details = TGIStreamDetails(
                finish_reason=render.tgi_finish_reason(event), generated_tokens=count, seed=job.params.seed,
                input_length=job.prompt_tokens,
            )
        elif isinstance(event, Usage) and held is not None and held.details is not None:
            held.details.generated_tokens = event.completion_tokens
    if held is not None:
        yield sse(held)
