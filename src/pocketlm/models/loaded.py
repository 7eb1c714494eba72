"""What this process has loaded: each value made once, on first use, under a lock, then shared.

Models take seconds and hundreds of MB to load, and requests ask for them from many
threads at once. ``Loaded`` keeps one value per key (a model's directory, a task's
model id) and loads it the first time it is asked for:

- two threads asking for the same key at once load it once; the second waits for
  the first and gets the same value;
- loading one key blocks no other key: a model already loaded is read without a
  lock, and another model can load at the same time;
- a load that fails stores nothing, so the next caller tries again (the error goes
  to the callers that asked, never to later ones);
- ``keys`` lists what is loaded, least recently used first (``touch`` marks a key used),
  ``size`` adds up what the loaded values cost (each given when it loads), and ``drop``
  forgets a key (waiting for its load if one is running) and hands its value back for the
  caller to close. A holder that must keep within a budget (the server's models,
  ``pocketlm.service.served``) evicts from the front of ``keys`` until ``size`` fits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Loaded(Generic[K, V]):
    """Values by key, each made by ``load()`` the first time its key is asked for."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}  # least recently used first
        self._sizes: dict[K, int] = {}
        self._loading: set[K] = set()  # keys a thread is loading now
        self._changed = threading.Condition()  # held only to read or change the three above, never while loading

    def get(self, key: K, load: Callable[[], V], size: int = 0) -> V:
        """The value of ``key``, made by ``load()`` if nothing has made it yet. The first caller's ``load``
        makes it: a key must name one value. ``size``: what the value costs (bytes, say), counted by ``size()``."""
        try:
            return self._values[key]  # the common case, without the lock: a dict read is atomic
        except KeyError:
            pass
        with self._changed:
            while key in self._loading:
                self._changed.wait()
            if key in self._values:
                return self._values[key]
            self._loading.add(key)
        try:
            value = load()
            with self._changed:
                self._values[key] = value
                self._sizes[key] = size
            return value
        finally:
            with self._changed:
                self._loading.discard(key)
                self._changed.notify_all()

    def __contains__(self, key: K) -> bool:
        return key in self._values

    def peek(self, key: K) -> V | None:
        """The value of ``key`` if it is loaded, else None; never loads, never waits."""
        return self._values.get(key)

    def keys(self) -> list[K]:
        """The keys loaded, least recently used first: in the order they loaded, each ``touch`` moving its key
        to the end (those still loading are not there yet)."""
        with self._changed:
            return list(self._values)

    def touch(self, key: K) -> None:
        """Mark ``key`` used now: it moves to the end of ``keys``. Nothing happens to a key not loaded."""
        with self._changed:
            if key in self._values:
                self._values[key] = self._values.pop(key)

    def size(self) -> int:
        """What the loaded values cost together (the sizes given to ``get``)."""
        with self._changed:
            return sum(self._sizes.values())

    def drop(self, key: K) -> V | None:
        """Forget ``key`` (after its load, if one is running); its value, or None if it was not loaded."""
        with self._changed:
            while key in self._loading:
                self._changed.wait()
            self._sizes.pop(key, None)
            return self._values.pop(key, None)
