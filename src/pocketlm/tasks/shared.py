"""What every task shares: one lazily loaded model per process, and the task settings.

A model is loaded on first use, under a lock so two threads asking at once load
it once; afterwards reading it takes no lock. Settings (which captioning model
to serve) come from ``configure()`` (the ``serve`` flags) or the environment, so
an app built elsewhere reads the same ``POCKETLM_CAPTION_MODEL``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TaskSettings:
    caption_model: str | None = None  # a local directory or hub id; None: captioning is off


CAPTION_MODEL_ENV = "POCKETLM_CAPTION_MODEL"
_configured: TaskSettings | None = None


def configure(*, caption_model: str | None = None) -> None:
    """Set the task settings for this process (``pocketlm serve --caption-model DIR``)."""
    global _configured
    _configured = TaskSettings(caption_model=caption_model or None)


def settings() -> TaskSettings:
    if _configured is not None:
        return _configured
    return TaskSettings(caption_model=os.environ.get(CAPTION_MODEL_ENV) or None)
