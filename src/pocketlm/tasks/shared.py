"""What every task shares: one lazily loaded model per process.

A model is loaded on first use, under a lock so two threads asking at once load
it once; afterwards reading it takes no lock. (Which captioning model the server
offers is a server setting, ``--caption-model``, handed to ``routes.include``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Shared(Generic[T]):
    """A value built by ``load()`` the first time ``get()`` is called, then returned to every caller."""

    def __init__(self, load: Callable[[], T]):
        self._load = load
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:  # another thread may have loaded it while we waited
                self._value = self._load()
            return self._value

    @property
    def loaded(self) -> bool:
        return self._value is not None
