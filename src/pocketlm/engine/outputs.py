"""What the engine streams back for a request, and the one fold of those events into a result.

A request with ``n`` samples yields ``TextDelta`` events for each sample as text
becomes final (never half a UTF-8 character, never part of a stop string), one
``SampleFinished`` per sample, and a single ``Usage`` at the very end.
``Completion.add`` is the only code that folds them into whole samples: the
engine's ``complete``, the HTTP routes and the CLI all collect through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class TopLogprob:
    token: str
    token_id: int
    logprob: float
    bytes: bytes


@dataclass(frozen=True)
class TokenLogprob:
    """The chosen token's log-probability under the model, with the best alternatives."""

    token: str
    token_id: int
    logprob: float
    bytes: bytes
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    index: int  # which of the n samples
    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class SampleFinished:
    index: int
    reason: FinishReason
    stop: str | None = None  # the stop string that matched, if any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV was kept from an earlier request (not recomputed)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Sample:
    """One finished sample, as collected by ``Engine.complete``."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop: str | None = None


Event = TextDelta | SampleFinished | Usage


@dataclass
class Completion:
    """A request's samples as its events arrive; ``usage`` is set by the last event."""

    samples: list[Sample]
    usage: Usage | None = None

    @classmethod
    def empty(cls, n: int) -> Completion:
        return cls([Sample(i) for i in range(n)])

    @property
    def done(self) -> bool:
        return self.usage is not None

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            sample = self.samples[event.index]
            sample.text += event.text
            sample.token_ids.extend(event.token_ids)
            sample.logprobs.extend(event.logprobs)
        elif isinstance(event, SampleFinished):
            self.samples[event.index].finish_reason = event.reason
            self.samples[event.index].stop = event.stop
        elif isinstance(event, Usage):
            self.usage = event

    @property
    def unfinished(self) -> int:
        """Samples still without a finish reason (after ``Usage``: cut off by a shutdown)."""
        return sum(s.finish_reason is None for s in self.samples)
