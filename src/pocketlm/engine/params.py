"""What a caller may ask of one generation, and the checks that keep it sane.

The same names are used by the CLI flags, the HTTP fields and the code:
``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``min_p``,
``repetition_penalty``, ``presence_penalty``, ``frequency_penalty``, ``seed``,
``stop``, ``n``, ``logprobs``, ``ignore_eos``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from pocketlm.errors import InvalidParameter


@dataclass(frozen=True)
class Limits:
    """Server-wide ceilings on what one request may ask for."""

    max_new_tokens: int = 2048  # per sample
    max_n: int = 8  # samples per request
    max_stop: int = 16  # stop strings per request
    max_stop_chars: int = 256  # length of one stop string
    max_logprobs: int = 20  # alternatives per token
    max_prompt_tokens: int | None = None  # None: whatever fits the context


# What each SamplingParams field means, written once: the CLI's --help and the HTTP API's
# /docs (every protocol's field that fills it) show these words.
DESCRIPTIONS = {
    "max_new_tokens": "Tokens to generate at most, per sample; never beyond the context (finish_reason 'length').",
    "temperature": "Randomness of sampling: 0 = greedy (always the most likely token); higher = more varied.",
    "top_k": "Sample only among the k most likely tokens; 0 = off.",
    "top_p": "Nucleus sampling: sample among the most likely tokens whose probabilities add up to p; 1 = off.",
    "min_p": "Drop tokens less likely than min_p times the most likely one; 0 = off.",
    "repetition_penalty": "Divide the logits of tokens already seen (prompt and output) by this; 1 = off.",
    "presence_penalty": "Subtract this from the logits of tokens already generated (OpenAI's); 0 = off.",
    "frequency_penalty": "Subtract this, per occurrence, from the logits of tokens already generated; 0 = off.",
    "seed": "Random seed: the same seed gives the same text, alone or under load.",
    "stop": "Stop when one of these strings is generated; it is not included in the text.",
    "n": "How many samples of the prompt to generate.",
    "logprobs": "Return the log-probability of each chosen token and this many most likely alternatives.",
    "ignore_eos": "Keep generating past the end-of-sequence token.",
}


GREEDY_BELOW = 1e-4  # a temperature this small picks the most likely token, like 0


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int | None = None  # None: until the context is full (capped by Limits)
    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0 disables
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0  # multiplicative, over prompt and output (1 = off)
    presence_penalty: float = 0.0  # additive, OpenAI semantics, over the output
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    n: int = 1
    logprobs: int | None = None  # None: off; k >= 0: chosen token plus k alternatives
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        # Below GREEDY_BELOW, sampling is argmax anyway; dividing logits by it would overflow float32.
        return self.temperature < GREEDY_BELOW or self.top_k == 1

    def validated(self, limits: Limits = Limits()) -> SamplingParams:
        """Return a normalised copy, or raise InvalidParameter naming the field."""
        for name, bound in bounds(limits).items():
            check = _check_int if bound.integer else _check_float
            check(
                name,
                getattr(self, name),
                low=bound.low,
                high=bound.high,
                low_open=bound.low_open,
                optional=bound.optional,
            )
        if not isinstance(self.ignore_eos, bool):
            raise InvalidParameter("ignore_eos", "must be true or false")
        return replace(self, stop=_normalise_stop(self.stop, limits))


@dataclass(frozen=True)
class Bound:
    """The values one numeric parameter may take: ``low`` (excluded when ``low_open``) to ``high``, inclusive."""

    low: float | None
    high: float | None
    integer: bool = False
    low_open: bool = False
    optional: bool = False  # None is allowed too (the parameter is off / unset)


def bounds(limits: Limits = Limits()) -> dict[str, Bound]:
    """Every numeric parameter's bounds under ``limits``: what ``validated`` checks, and what the
    HTTP API's OpenAPI document states for each field that fills the parameter."""
    return {
        "max_new_tokens": Bound(1, limits.max_new_tokens, integer=True, optional=True),
        "temperature": Bound(0.0, 100.0),
        "top_k": Bound(0, None, integer=True),
        "top_p": Bound(0.0, 1.0, low_open=True),
        "min_p": Bound(0.0, 1.0),
        "repetition_penalty": Bound(0.0, 10.0, low_open=True),
        "presence_penalty": Bound(-2.0, 2.0),
        "frequency_penalty": Bound(-2.0, 2.0),
        "seed": Bound(0, 2**63 - 1, integer=True, optional=True),
        "n": Bound(1, limits.max_n, integer=True),
        "logprobs": Bound(0, limits.max_logprobs, integer=True, optional=True),
    }


def _normalise_stop(stop, limits: Limits) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)):
        raise InvalidParameter("stop", "must be a string or a list of strings")
    if len(stop) > limits.max_stop:
        raise InvalidParameter("stop", f"at most {limits.max_stop} stop strings are allowed, got {len(stop)}")
    for s in stop:
        if not isinstance(s, str):
            raise InvalidParameter("stop", f"every stop sequence must be a string, got {type(s).__name__}")
        if not s:
            raise InvalidParameter("stop", "stop strings must not be empty")
        if len(s) > limits.max_stop_chars:
            raise InvalidParameter("stop", f"a stop string may have at most {limits.max_stop_chars} characters")
    return tuple(dict.fromkeys(stop))  # drop duplicates, keep order


def _check_int(name, value, *, low=None, high=None, low_open=False, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(name, f"must be an integer, got {value!r}")
    if low is not None and value < low:
        raise InvalidParameter(name, f"must be >= {low}, got {value}")
    if high is not None and value > high:
        raise InvalidParameter(name, f"must be <= {high}, got {value}")


def _check_float(name, value, *, low, high, low_open=False, optional=False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidParameter(name, f"must be a number, got {value!r}")
    if value < low or (low_open and value == low):
        bound = f"> {low}" if low_open else f">= {low}"
        raise InvalidParameter(name, f"must be {bound}, got {value}")
    if value > high:
        raise InvalidParameter(name, f"must be <= {high}, got {value}")
