"""A request's stream: how the engine thread's events reach a caller on an asyncio loop.

The engine thread never touches a caller's loop directly: it hands each step's events over
with ``send``, which schedules them on every loop concerned, and the caller reads them from
its ``RequestStream`` as an async iterator. Leaving the iterator early cancels the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pocketlm.engine.outputs import Usage


class RequestStream:
    """The caller's handle: an async iterator of engine events, cancellable."""

    def __init__(self, prompt_ids: list[int], cancel: Callable[[], None]):
        self.prompt_ids = prompt_ids  # the prompt as the model reads it (after tokenizing and checks)
        self._cancel = cancel  # tells the engine to drop the request
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._finished = False

    def cancel(self) -> None:
        if not self._finished:
            self._cancel()

    def __aiter__(self):
        return self._events()

    async def _events(self):
        try:
            while True:
                for event in await self._queue.get():
                    if isinstance(event, Exception):
                        self._finished = True
                        raise event
                    yield event
                    if isinstance(event, Usage):
                        self._finished = True
                        return
        finally:
            self.cancel()


def send(items: list[tuple[RequestStream, list]]) -> None:
    """Hand events to their streams from the engine thread: one wake-up of each event loop per call.

    Each ``call_soon_threadsafe`` writes to the loop's self-pipe, a system call made while llama.cpp's
    threads wait; with one per stream, 16 streams cost 16 of them per step.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for stream, events in items:
        by_loop.setdefault(stream._loop, []).append((stream._queue, events))
    for loop, batch in by_loop.items():
        loop.call_soon_threadsafe(_deliver, batch)


def _deliver(batch: list[tuple[asyncio.Queue, list]]) -> None:
    for queue, events in batch:
        queue.put_nowait(events)
