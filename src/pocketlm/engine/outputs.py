"""What the engine streams back for a request, and the one fold of those events into a result.

A request with ``n`` samples yields ``TextDelta`` events for each sample as text
becomes final (never half a UTF-8 character, never part of a stop string), one
``SampleFinished`` per sample, and a single ``Usage`` at the very end. A request that
asked for ``prompt_logprobs`` first gets one ``PromptLogprobs``, once its prompt is read.
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
    logprob: float | None  # None only for a prompt's first token
    bytes: bytes
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class PromptLogprobs:
    """Each prompt token's log-probability given the tokens before it, from the pass that read the prompt.

    ``tokens[0]`` is the first prompt token, whose ``logprob`` is None: nothing comes before it.
    """

    tokens: tuple[TokenLogprob, ...]


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

    @classmethod
    def summed(cls, usages: list[Usage]) -> Usage:
        """The usage of several requests together (one HTTP request's prompts)."""
        return cls(
            *(sum(getattr(u, f) for u in usages) for f in ("prompt_tokens", "completion_tokens", "cached_tokens"))
        )


@dataclass
class Sample:
    """One finished sample, as collected by ``Engine.complete``."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop: str | None = None


Event = PromptLogprobs | TextDelta | SampleFinished | Usage


@dataclass
class Completion:
    """A request's samples as its events arrive; ``usage`` is set by the last event."""

    samples: list[Sample]
    usage: Usage | None = None
    prompt_logprobs: list[TokenLogprob] | None = None  # with prompt_logprobs: one per prompt token

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
        elif isinstance(event, PromptLogprobs):
            self.prompt_logprobs = list(event.tokens)

    @property
    def unfinished(self) -> int:
        """Samples still without a finish reason (after ``Usage``: cut off by a shutdown)."""
        return sum(s.finish_reason is None for s in self.samples)
