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
import itertools
import json
import logging
import time
import uuid

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from pocketlm.api.errors import error_body
from pocketlm.api.generation import Job, events, merged
from pocketlm.api.wire import tgi
from pocketlm.api.wire.openai import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatDelta,
    ChatLogprobs,
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    FunctionCallDelta,
    ToolCallDelta,
    UsageInfo,
    call_id,
    finish_reason,
)
from pocketlm.api.wire.responses import (
    OutputFunctionCall,
    OutputMessage,
    OutputText,
    Response,
    function_call_item,
    message_item,
)
from pocketlm.api.wire.tgi import TGIStreamDetails, TGIStreamEvent, TGIToken
from pocketlm.engine import PromptLogprobs, SampleFinished, TextDelta, Usage
from pocketlm.engine.tools import Call, CallDelta, CallReader
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

    def __init__(self, body, jobs: list[Job], media_type: str = "text/event-stream"):
        super().__init__(body, media_type=media_type, headers=SSE_HEADERS)
        self.jobs = jobs

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            for job in self.jobs:
                job.close()


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
    """/v1/completions' chunks: text (after the echoed prompt), legacy logprobs with text offsets.

    Prompt k's choices are indices k*n to k*n+n-1. The echoed prompt opens each choice, with its tokens'
    log-probabilities when asked for (then once the prompt is read).
    """

    id_prefix, chunk = "cmpl", CompletionChunk

    def __init__(self, params, echo_texts: list[str]):
        self.params, self.echo_texts, self.n = params, echo_texts, params.n
        self.offsets = [len(text) for text in echo_texts for _ in range(params.n)]

    def opening(self) -> list[CompletionChoice]:
        if self.params.prompt_logprobs is not None:  # the echo comes with the prompt's log-probabilities
            return []
        return [
            CompletionChoice(index=k * self.n + i, text=text)
            for k, text in enumerate(self.echo_texts)
            if text
            for i in range(self.n)
        ]

    def prompt(self, k: int, event: PromptLogprobs) -> list[CompletionChoice]:
        logprobs = CompletionLogprobs.of(event.tokens, 0)
        return [
            CompletionChoice(index=k * self.n + i, text=self.echo_texts[k], logprobs=logprobs) for i in range(self.n)
        ]

    def delta(self, k: int, event: TextDelta) -> CompletionChoice | None:
        index = k * self.n + event.index
        logprobs = None
        if self.params.logprobs is not None:
            logprobs = CompletionLogprobs.of(event.logprobs, self.offsets[index])
        self.offsets[index] += len(event.text)
        return CompletionChoice(index=index, text=event.text, logprobs=logprobs) if event.text or logprobs else None

    def finished(self, k: int, event: SampleFinished) -> CompletionChoice:
        return CompletionChoice(index=k * self.n + event.index, text="", finish_reason=event.reason)


class _ChatChunks:
    """/v1/chat/completions' chunks: each choice opens with the role (content empty, as OpenAI), then deltas.

    With tools, each choice's text goes through a ``CallReader``: a call streams as OpenAI streams one (its id,
    type and name first, then its arguments piece by piece), and a choice that called ends with "tool_calls".
    """

    id_prefix, chunk = "chatcmpl", ChatCompletionChunk

    def __init__(self, job: Job, tools: bool):
        self.job = job
        self.readers = [CallReader() for _ in range(job.params.n)] if tools else None

    def opening(self) -> list[ChatChunkChoice]:
        return [
            ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content="")) for i in range(self.job.params.n)
        ]

    def delta(self, k: int, event: TextDelta) -> ChatChunkChoice | None:
        logprobs = ChatLogprobs.of(event.logprobs) if self.job.params.logprobs is not None else None
        delta = self._read(event.index, event.text)
        if delta is None and logprobs is None:
            return None
        # A token with no text of its own (the end-of-generation token, part of a character) still has its
        # log-probability: it goes in a chunk whose delta is empty, as the non-streamed answer lists it.
        return ChatChunkChoice(index=event.index, delta=delta or ChatDelta(), logprobs=logprobs)

    def _read(self, index: int, text: str) -> ChatDelta | None:
        if self.readers is None:
            return ChatDelta(content=text) if text else None
        text, calls = self.readers[index].feed(text)
        deltas = [
            ToolCallDelta(
                index=c.index,
                id=call_id() if c.name else None,
                type="function" if c.name else None,
                function=FunctionCallDelta(name=c.name, arguments=c.arguments),
            )
            for c in calls
        ]
        return ChatDelta(content=text or None, tool_calls=deltas or None) if text or deltas else None

    def finished(self, k: int, event: SampleFinished) -> ChatChunkChoice:
        reader = self.readers[event.index] if self.readers else None
        held = reader.finish() if reader else ""
        return ChatChunkChoice(
            index=event.index,
            delta=ChatDelta(content=held or None),
            finish_reason=finish_reason(event.reason, reader),
        )


async def _openai_chunks(request: Request, jobs: list[Job], shape, model: str, include_usage: bool):
    """The one loop behind both OpenAI streams: a chunk per delta and per finished choice, usage, [DONE].

    Several jobs (one request's prompts) stream together; the usage chunk counts them all."""
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
    usage: list[Usage] = []
    async for k, event in merged(request, jobs):
        if isinstance(event, Usage):
            usage.append(event)
            if include_usage and len(usage) == len(jobs):
                yield chunk([], Usage.summed(usage))
            continue
        if isinstance(event, PromptLogprobs):
            yield chunk(shape.prompt(k, event))
            continue
        choice = shape.delta(k, event) if isinstance(event, TextDelta) else shape.finished(k, event)
        if choice is not None:
            yield chunk([choice])
    yield "data: [DONE]\n\n"


def completion_stream(
    request: Request, jobs: list[Job], model: str, include_usage: bool, echo_texts: list[str]
) -> StreamingResponse:
    body = _openai_chunks(request, jobs, _CompletionChunks(jobs[0].params, echo_texts), model, include_usage)
    return EventStream(guarded(body, openai_error_event), jobs)


def chat_stream(request: Request, job: Job, model: str, include_usage: bool, tools: bool) -> StreamingResponse:
    body = _openai_chunks(request, [job], _ChatChunks(job, tools), model, include_usage)
    return EventStream(guarded(body, openai_error_event), [job])


# --------------------------------------------------------------------------- TGI


def tgi_stream(request: Request, job: Job, *, prompt: str, full_text: bool, eos_id: int) -> StreamingResponse:
    return EventStream(guarded(_tgi_events(request, job, prompt, full_text, eos_id), tgi_error_event), [job])


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


# --------------------------------------------------------------------------- OpenAI's Responses API


def responses_stream(request: Request, job: Job, response: Response, tools: bool) -> StreamingResponse:
    return EventStream(guarded(_response_events(request, job, response, tools), openai_error_event), [job])


class _Output:
    """A streamed response's output items as they open, grow and close, as the events that say so."""

    def __init__(self, response: Response, event):
        self.response, self.event = response, event
        self.message: OutputMessage | None = None
        self.calls: list[OutputFunctionCall] = []

    def text(self, piece: str):
        if self.message is None:
            self.message = message_item("", "in_progress")
            self.response.output.append(self.message)
            yield self.event("response.output_item.added", output_index=self._index(self.message), item=self.message)
            yield self.event("response.content_part.added", part=OutputText(text=""), **self._where(self.message))
        self.message.content[0].text += piece
        yield self.event("response.output_text.delta", delta=piece, logprobs=[], **self._where(self.message))

    def call(self, delta: CallDelta):
        if delta.name is not None:
            self.calls.append(function_call_item(Call(delta.name), "in_progress", call_id=call_id()))
            self.response.output.append(self.calls[-1])
            yield self.event(
                "response.output_item.added", output_index=self._index(self.calls[-1]), item=self.calls[-1]
            )
        call = self.calls[delta.index]
        if delta.arguments:
            call.arguments += delta.arguments
            yield self.event(
                "response.function_call_arguments.delta",
                item_id=call.id,
                output_index=self._index(call),
                delta=delta.arguments,
            )

    def close(self, status: str):
        if self.message is not None:
            self.message.status = status
            part, where = self.message.content[0], self._where(self.message)
            yield self.event("response.output_text.done", text=part.text, logprobs=[], **where)
            yield self.event("response.content_part.done", part=part, **where)
            yield self.event("response.output_item.done", output_index=where["output_index"], item=self.message)
        for call in self.calls:
            call.status = status
            index = self._index(call)
            yield self.event(
                "response.function_call_arguments.done",
                item_id=call.id,
                output_index=index,
                name=call.name,
                arguments=call.arguments,
            )
            yield self.event("response.output_item.done", output_index=index, item=call)

    def _index(self, item) -> int:
        return self.response.output.index(item)

    def _where(self, item) -> dict:
        return {"item_id": item.id, "output_index": self._index(item), "content_index": 0}


async def _response_events(request: Request, job: Job, response: Response, tools: bool):
    """The typed events of a streamed response, as OpenAI's SDK reads them: created, in progress, each output
    item added, its deltas, done, then completed (or incomplete, at the token limit) with the whole response."""
    numbers = itertools.count()

    def event(kind: str, **fields) -> str:
        payload = {key: value.model_dump() if isinstance(value, BaseModel) else value for key, value in fields.items()}
        return sse({"type": kind, "sequence_number": next(numbers), **payload})

    yield event("response.created", response=response)
    yield event("response.in_progress", response=response)
    output, reader, reason = _Output(response, event), CallReader() if tools else None, "stop"
    async for item in events(request, job):
        if isinstance(item, TextDelta):
            text, calls = reader.feed(item.text) if reader else (item.text, [])
            for chunk in [*(output.text(text) if text else ()), *(c for d in calls for c in output.call(d))]:
                yield chunk
        elif isinstance(item, SampleFinished):
            reason = item.reason
            held = reader.finish() if reader else ""
            for chunk in output.text(held) if held else ():
                yield chunk
            if not response.output:  # the model ended at once: an empty answer is still a message
                for chunk in output.text(""):
                    yield chunk
            for chunk in output.close("incomplete" if reason == "length" else "completed"):
                yield chunk
        elif isinstance(item, Usage):
            response.finish(reason, item)
            yield event(
                "response.incomplete" if response.status == "incomplete" else "response.completed", response=response
            )
