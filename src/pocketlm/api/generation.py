"""Running one request on the engine of the model it names, the same way for every route.

``acquire`` gets a lease on the model a request names (loading it if it must: see
``pocketlm.service.served``); ``start`` submits a request on the lease's engine (a prompt, or
chat messages through the engine's chat path) and renames parameter errors to the client's
spelling; the engine checks the prompt and the parameters. ``compile_grammars`` compiles a request's
grammars first, in a worker thread, so the event loop never waits on a compile. From then on the job holds the lease
and gives it back when it ends (``Job.close``), so a model is never unloaded under a running
request. ``events`` is the only place that iterates an engine stream: it applies the request
timeout, feeds the metrics, folds every event into the job's ``Completion``, and cancels the
stream whenever iteration stops early, so an abandoned request never keeps a slot. ``collect``
runs a non-streaming request while watching for the client to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from fastapi import Request

from pocketlm.api.errors import RequestTimeout, renamed
from pocketlm.api.state import api_state
from pocketlm.engine import Completion, RequestStream, SamplingParams, TextDelta
from pocketlm.engine.constraints import Grammar
from pocketlm.engine.tools import Tools
from pocketlm.errors import EngineStopped, InvalidParameter
from pocketlm.service import Lease, app_state


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


@dataclass
class Job:
    stream: RequestStream
    params: SamplingParams
    started: float  # time.monotonic() at submission
    lease: Lease  # its model stays loaded until the job ends
    completion: Completion = field(init=False)  # the events so far, folded
    first_token: float | None = field(default=None, init=False)  # time.monotonic() of its first token

    def __post_init__(self):
        self.completion = Completion.empty(self.params.n)

    @property
    def prompt_ids(self) -> list[int]:
        return self.stream.prompt_ids

    @property
    def model(self) -> str:
        return self.lease.model

    def close(self) -> None:
        """The job is over, however it ended: free its slot (a no-op when it finished) and its model."""
        self.stream.cancel()
        self.lease.release()


async def acquire(request: Request, model: str | None, keep_alive: float | None = None) -> Lease:
    """A lease on the model a request names (None: the default), loaded first if it must be. Hand it to
    ``start`` at once, or release it (``released_on_error`` guards what comes between)."""
    return await app_state(request).models.acquire(model, keep_alive)


@contextlib.contextmanager
def released_on_error(lease: Lease):
    """Give the lease back if the block fails (a bad parameter before the job starts); a job keeps it."""
    try:
        yield lease
    except BaseException:
        lease.release()
        raise


@contextlib.asynccontextmanager
async def using(request: Request, model: str | None):
    """The engine of the model a request names, held loaded for the block (tokenize, detokenize, show)."""
    lease = await acquire(request, model)
    try:
        yield lease.engine
    finally:
        lease.release()


def start(
    lease: Lease,
    params: SamplingParams,
    aliases: dict[str, str],
    *,
    prompt: str | list[int] | None = None,
    messages: list[dict] | None = None,
    tools: Tools | None = None,
) -> Job:
    """Submit a prompt, or chat messages (offering ``tools``), to the lease's engine; raises before anything runs
    if the request is invalid or the queue is full, naming parameters as the client spelled them (``aliases``).
    The job takes the lease: it gives it back when it ends; if nothing starts, it is given back here."""
    engine = lease.engine
    with released_on_error(lease):
        try:
            if messages is not None:
                stream = engine.submit_chat(messages, params, tools)
            else:
                stream = engine.submit(prompt, params)
        except InvalidParameter as err:
            raise renamed(err, aliases) from None
    return Job(stream, params, time.monotonic(), lease)


async def compile_grammars(lease: Lease, params: SamplingParams, tools: Tools | None = None) -> None:
    """Compile what the request's output must follow, in a worker thread (the engine keeps it for ``start``).

    The first grammar of a model also reads its vocabulary (seconds for a large one); a compile takes
    milliseconds and llguidance's fuel bounds a hostile one, so the worker is never held for long. The lease
    is given back if a grammar is refused.
    """
    grammars: list[Grammar] = tools.grammars(params.grammar) if tools is not None else [params.grammar]
    with released_on_error(lease):
        for grammar in filter(None, grammars):
            await asyncio.to_thread(lease.engine.constrain, grammar)


async def events(request: Request, job: Job):
    """The job's engine events, timed out after --request-timeout, cancelled if iteration stops early."""
    metrics, timeout = api_state(request).metrics, app_state(request).settings.request_timeout
    deadline = job.started + timeout
    finished = False
    iterator = aiter(metrics.track(job.stream, job.model))
    try:
        while True:
            try:
                # a scope per event, never across the yield below; unlike wait_for it starts no task
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                    event = await anext(iterator)
            except StopAsyncIteration:
                finished = True
                return
            except TimeoutError:
                raise RequestTimeout(
                    f"the request took longer than {timeout:g} s (--request-timeout); ask for fewer tokens"
                ) from None
            job.completion.add(event)
            if job.first_token is None and isinstance(event, TextDelta):
                job.first_token = time.monotonic()
            if job.completion.done and job.completion.unfinished:
                # The engine ended the request without finishing it: it was cut off by a shutdown.
                finished = True
                raise EngineStopped("the server shut down before this request finished; retry it")
            yield event
    finally:
        if not finished:
            job.stream.cancel()  # frees the slot at the engine's next step
        with contextlib.suppress(Exception):
            await iterator.aclose()


async def collect(request: Request, job: Job) -> Completion:
    """Run a whole completion; raise ClientDisconnected (and cancel) if the client leaves first."""
    return (await collect_all(request, [job]))[0]


async def collect_all(request: Request, jobs: list[Job]) -> list[Completion]:
    """Run several completions (one request's prompts) together, as ``collect`` runs one."""

    async def drain(job: Job):
        async with contextlib.aclosing(events(request, job)) as stream:
            async for _ in stream:
                pass

    try:
        await until_done_or_disconnected(request, asyncio.gather(*(drain(job) for job in jobs)))
    finally:
        for job in jobs:
            job.close()  # frees the slot on disconnect, timeout or error, and the model in every case
    return [job.completion for job in jobs]


async def merged(request: Request, jobs: list[Job]):
    """The events of several jobs as they come: (index of the job, event). Stops (and cancels all) at the first
    error, or when the consumer stops early."""
    if len(jobs) == 1:  # the usual case: no tasks
        async with contextlib.aclosing(events(request, jobs[0])) as stream:
            async for event in stream:
                yield 0, event
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, job: Job):
        try:
            async with contextlib.aclosing(events(request, job)) as stream:
                async for event in stream:
                    await queue.put((i, event))
        except Exception as e:
            await queue.put((i, e))
        finally:
            await queue.put((i, None))

    tasks = [asyncio.ensure_future(pump(i, job)) for i, job in enumerate(jobs)]
    try:
        running = len(tasks)
        while running:
            i, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
