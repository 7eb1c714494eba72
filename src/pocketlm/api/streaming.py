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

from pocketlm.api.errors import error_body
from pocketlm.api.generation import Job, events
from pocketlm.api.wire import tgi
from pocketlm.api.wire.openai import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatDelta,
    ChatLogprobs,
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    UsageInfo,
)
from pocketlm.api.wire.tgi import TGIStreamDetails, TGIStreamEvent, TGIToken
from pocketlm.engine import SampleFinished, TextDelta, Usage
from pocketlm.errors import PocketLMError

log = logging.getLogger("pocketlm.api")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of tokens


def sse(payload: BaseModel | dict) -> str:
    """One server-sent event carrying a JSON document."""
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {data}\n\n"


class EventStream(StreamingResponse):
    """A streamed response that always releases its engine request (and its model) when it ends, however it ends.

    Starlette cancels the sending task when the client disconnects; if that happens while the
    body generator is parked at a ``yield``, its ``finally`` would only run when the generator is
    garbage-collected. Closing the job here frees the slot at the engine's next step instead.
    """

    def __init__(self, body, job: Job, media_type: str = "text/event-stream"):
        super().__init__(body, media_type=media_type, headers=SSE_HEADERS)
        self.job = job

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.close()


async def guarded(body, error_chunk):
    """Yield the body's chunks; turn a failure into one last chunk, ``error_chunk(err)``, and stop."""
    try:
        async with contextlib.aclosing(body) as stream:
            async for chunk in stream:
                yield chunk
    except PocketLMError as err:
        yield error_chunk(err)
    except Exception:  # a bug: log it, still end the stream in the client's error shape
        log.exception("error while streaming")
        yield error_chunk(PocketLMError("internal server error while generating"))


def openai_error_event(err: PocketLMError) -> str:
    return sse(error_body(err))


def tgi_error_event(err: PocketLMError) -> str:
    kind = "overloaded" if err.http_status in (429, 503) else "validation" if err.http_status < 500 else "generation"
    return sse({"error": err.message, "error_type": kind})


# --------------------------------------------------------------------------- OpenAI


class _CompletionChunks:
    """/v1/completions' chunks: text (after the echoed prompt), legacy logprobs with text offsets."""

    id_prefix, chunk = "cmpl", CompletionChunk

    def __init__(self, job: Job, echo_text: str):
        self.job, self.echo_text = job, echo_text
        self.offsets = [len(echo_text)] * job.params.n

    def opening(self) -> list[CompletionChoice]:
        return (
            [CompletionChoice(index=i, text=self.echo_text) for i in range(self.job.params.n)] if self.echo_text else []
        )

    def delta(self, event: TextDelta) -> CompletionChoice | None:
        logprobs = None
        if self.job.params.logprobs is not None:
            logprobs = CompletionLogprobs.of(event.logprobs, self.offsets[event.index])
        self.offsets[event.index] += len(event.text)
        return (
            CompletionChoice(index=event.index, text=event.text, logprobs=logprobs) if event.text or logprobs else None
        )

    def finished(self, event: SampleFinished) -> CompletionChoice:
        return CompletionChoice(index=event.index, text="", finish_reason=event.reason)


class _ChatChunks:
    """/v1/chat/completions' chunks: each choice opens with the role (content empty, as OpenAI), then deltas."""

    id_prefix, chunk = "chatcmpl", ChatCompletionChunk

    def __init__(self, job: Job):
        self.job = job

    def opening(self) -> list[ChatChunkChoice]:
        return [
            ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content="")) for i in range(self.job.params.n)
        ]

    def delta(self, event: TextDelta) -> ChatChunkChoice | None:
        logprobs = ChatLogprobs.of(event.logprobs) if self.job.params.logprobs is not None else None
        return (
            ChatChunkChoice(index=event.index, delta=ChatDelta(content=event.text), logprobs=logprobs)
            if event.text or logprobs
            else None
        )

    def finished(self, event: SampleFinished) -> ChatChunkChoice:
        return ChatChunkChoice(index=event.index, delta=ChatDelta(), finish_reason=event.reason)


async def _openai_chunks(request: Request, job: Job, shape, model: str, include_usage: bool):
    """The one loop behind both OpenAI streams: a chunk per delta and per finished choice, usage, [DONE]."""
    chunk_id, created = f"{shape.id_prefix}-{uuid.uuid4().hex}", int(time.time())

    def chunk(choices, usage: Usage | None = None) -> str:
        return sse(
            shape.chunk(
                id=chunk_id, created=created, model=model, choices=choices, usage=UsageInfo.of(usage) if usage else None
            )
        )

    opening = shape.opening()
    if opening:
        yield chunk(opening)
    async for event in events(request, job):
        if isinstance(event, Usage):
            if include_usage:
                yield chunk([], event)
            continue
        choice = shape.delta(event) if isinstance(event, TextDelta) else shape.finished(event)
        if choice is not None:
            yield chunk([choice])
    yield "data: [DONE]\n\n"


def completion_stream(request: Request, job: Job, model: str, include_usage: bool, echo_text: str) -> StreamingResponse:
    body = _openai_chunks(request, job, _CompletionChunks(job, echo_text), model, include_usage)
    return EventStream(guarded(body, openai_error_event), job)


def chat_stream(request: Request, job: Job, model: str, include_usage: bool) -> StreamingResponse:
    return EventStream(
        guarded(_openai_chunks(request, job, _ChatChunks(job), model, include_usage), openai_error_event), job
    )


# --------------------------------------------------------------------------- TGI


def tgi_stream(request: Request, job: Job, *, prompt: str, full_text: bool, eos_id: int) -> StreamingResponse:
    return EventStream(guarded(_tgi_events(request, job, prompt, full_text, eos_id), tgi_error_event), job)


async def _tgi_events(request, job, prompt, full_text, eos_id):
    """One event per text delta, held back by one so the last event can carry the final token and the summary."""
    held: TGIStreamEvent | None = None
    count = 0
    async for event in events(request, job):
        if isinstance(event, TextDelta):
            if not event.token_ids and held is not None:  # text the engine held back (a flush): same token
                held.token.text += event.text
                continue
            if held is not None:
                yield sse(held)
            held = TGIStreamEvent(index=count, token=TGIToken.of_delta(event), top_tokens=TGIToken.alternatives(event))
            count += 1
        elif isinstance(event, SampleFinished):
            if held is None:  # finished before any text: report the end-of-sequence token itself
                held = TGIStreamEvent(index=count, token=TGIToken(id=eos_id, text="", special=True))
            held.generated_text = (prompt if full_text else "") + job.completion.samples[0].text
            held.details = TGIStreamDetails(
                finish_reason=tgi.finish_reason(event),
                generated_tokens=count,
                seed=job.params.seed,
                input_length=len(job.prompt_ids),
            )
        elif isinstance(event, Usage) and held is not None and held.details is not None:
            held.details.generated_tokens = event.completion_tokens
    if held is not None:
        yield sse(held)
