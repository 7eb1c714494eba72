"""Running one request on the shared engine, the same way for every route.

``start`` tokenizes the prompt (so limits like --max-prompt-tokens and
``max_length`` see real token counts), submits it and renames parameter errors
to the client's spelling. ``events`` is the only place that iterates an engine
stream: it applies the request timeout, feeds the metrics, and cancels the
stream whenever iteration stops early, so an abandoned request never keeps a slot.
``collect`` runs a non-streaming request while watching for the client to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace

from fastapi import Request

from pocketlm.api.errors import RequestTimeout, renamed
from pocketlm.engine.outputs import Sample, SampleFinished, TextDelta, Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.errors import ContextLengthExceeded, EngineStopped, InvalidParameter


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


@dataclass
class Job:
    stream: object  # the engine's request stream
    prompt_ids: list[int]
    params: SamplingParams
    started: float  # time.monotonic() at submission

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


def prompt_ids(request: Request, prompt: str | list[int], *, param: str = "prompt", truncate: int | None = None) -> list[int]:
    """Tokenize (or check) a prompt and apply the server's prompt limit; errors name ``param``."""
    engine = request.app.state.engine
    if isinstance(prompt, str):
        ids = engine.tokenize(prompt, add_special=True)
    else:
        n_vocab = engine.info.n_vocab
        bad = next((t for t in prompt if not 0 <= t < n_vocab), None)
        if bad is not None:
            raise InvalidParameter(param, f"token id {bad} is outside the vocabulary (0..{n_vocab - 1})")
        ids = list(prompt)
    if truncate is not None:
        if truncate < 1:
            raise InvalidParameter("parameters.truncate", f"must be >= 1, got {truncate}")
        ids = ids[-truncate:]
    if not ids:
        raise InvalidParameter(param, "is empty; give at least one character of text")
    limit = engine.config.limits.max_prompt_tokens
    if limit is not None and len(ids) > limit:
        raise ContextLengthExceeded(
            param, f"has {len(ids)} tokens; this server accepts at most {limit} (--max-prompt-tokens); shorten the prompt"
        )
    return ids


def start(request: Request, ids: list[int], params: SamplingParams, aliases: dict[str, str]) -> Job:
    """Submit to the engine; raises before anything runs if the request is invalid or the queue is full."""
    engine = request.app.state.engine
    try:
        stream = engine.submit(ids, params)
    except InvalidParameter as err:
        raise renamed(err, aliases) from None
    return Job(stream, ids, params, time.monotonic())


def with_max_length(params: SamplingParams, max_length: int | None, prompt_tokens: int) -> SamplingParams:
    """HF generate's ``max_length`` counts the prompt too: turn it into ``max_new_tokens``."""
    if max_length is None:
        return params
    if params.max_new_tokens is not None:
        raise InvalidParameter("max_length", "give max_length or max_new_tokens, not both")
    if max_length <= prompt_tokens:
        raise InvalidParameter(
            "max_length", f"is {max_length} but the prompt alone has {prompt_tokens} tokens; max_length counts the prompt too"
        )
    return replace(params, max_new_tokens=max_length - prompt_tokens)


async def events(request: Request, job: Job):
    """The job's engine events, timed out after --request-timeout, cancelled if iteration stops early."""
    metrics, timeout = request.app.state.metrics, request.app.state.settings.request_timeout
    deadline = job.started + timeout
    finished = False
    unfinished_samples = job.params.n
    iterator = aiter(metrics.track(job.stream))
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(anext(iterator), timeout=max(remaining, 0.001))
            except StopAsyncIteration:
                finished = True
                return
            except asyncio.TimeoutError:
                raise RequestTimeout(f"the request took longer than {timeout:g} s (--request-timeout); ask for fewer tokens") from None
            if isinstance(event, SampleFinished):
                unfinished_samples -= 1
            elif isinstance(event, Usage) and unfinished_samples:
                # The engine ended the request without finishing it: it was cut off by a shutdown.
                finished = True
                raise EngineStopped("the server shut down before this request finished; retry it")
            yield event
    finally:
        if not finished:
            job.stream.cancel()  # frees the slot at the engine's next step
        with contextlib.suppress(Exception):
            await iterator.aclose()


async def collect(request: Request, job: Job) -> tuple[list[Sample], Usage]:
    """Gather a whole completion; raise ClientDisconnected (and cancel) if the client leaves first."""
    samples = [Sample(index=i) for i in range(job.params.n)]
    usage = Usage(job.prompt_tokens, 0)

    async def gather():
        nonlocal usage
        async with contextlib.aclosing(events(request, job)) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    sample = samples[event.index]
                    sample.text += event.text
                    sample.token_ids.extend(event.token_ids)
                    sample.logprobs.extend(event.logprobs)
                elif isinstance(event, SampleFinished):
                    samples[event.index].finish_reason = event.reason
                    samples[event.index].stop = event.stop
                elif isinstance(event, Usage):
                    usage = event

    try:
        await until_done_or_disconnected(request, gather())
    finally:
        job.stream.cancel()  # no-op when finished; frees the slot on disconnect, timeout or error
    return samples, usage


async def until_done_or_disconnected(request: Request, work) -> None:
    """Run ``work`` while listening for a disconnect; whichever ends first cancels the other."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [t for t in (task, watcher) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)  # let them unwind (cancel the engine request) before answering
    if task.cancelled():
        raise ClientDisconnected()
    task.result()  # re-raises the work's own error, if any


async def _disconnected(request: Request) -> None:
    """Return when the server reports that the client went away (the body was already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
