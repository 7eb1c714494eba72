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
- ``keys`` lists what is loaded and ``drop`` forgets a key (waiting for its load if
  one is running) and hands its value back for the caller to close.
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
        self._values: dict[K, V] = {}
        self._loading: set[K] = set()  # keys a thread is loading now
        self._changed = threading.Condition()  # held only to read or change the two above, never while loading

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The value of ``key``, made by ``load()`` if nothing has made it yet. The first caller's ``load``
        makes it: a key must name one value."""
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
            return value
        finally:
            with self._changed:
                self._loading.discard(key)
                self._changed.notify_all()

    def __contains__(self, key: K) -> bool:
        return key in self._values

    def keys(self) -> list[K]:
        """The keys loaded, oldest first (those still loading are not there yet)."""
        with self._changed:
            return list(self._values)

    def drop(self, key: K) -> V | None:
        """Forget ``key`` (after its load, if one is running); its value, or None if it was not loaded."""
        with self._changed:
            while key in self._loading:
                self._changed.wait()
            return self._values.pop(key, None)
