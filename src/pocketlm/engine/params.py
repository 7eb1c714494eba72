"""What a caller may ask of one generation, and the checks that keep it sane.

The same names are used by the CLI flags, the HTTP fields and the code:
``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``min_p``,
``repetition_penalty``, ``presence_penalty``, ``frequency_penalty``, ``seed``,
``stop``, ``n``, ``logprobs``, ``ignore_eos``. Two more shape a request without being settings of the
command line: ``prompt_logprobs`` (scoring the prompt itself) and ``grammar`` (what the output must follow).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pocketlm.engine.constraints import Grammar
from pocketlm.errors import InvalidParameter
from pocketlm.settings import Declared, Range, declarations, setting


@dataclass(frozen=True)
class Limits(Declared):
    """Server-wide ceilings on what one request may ask for."""

    max_new_tokens: int = setting(2048, low=1, help="Most tokens one sample may ask for.")
    max_n: int = setting(8, low=1, help="Most samples per request (n, num_return_sequences).")
    max_stop: int = setting(16, low=0, help="Most stop strings per request.")
    max_stop_chars: int = 256  # length of one stop string
    max_logprobs: int = 20  # alternatives per token
    max_prompt_tokens: int | None = setting(
        None, low=1, help="Longest prompt accepted, in tokens (default: what fits the context)."
    )


GREEDY_BELOW = 1e-4  # a temperature this small picks the most likely token, like 0


# Each field's help is what the CLI's --help and the HTTP API's /docs (every protocol's field that fills
# it) say; its bounds are what validated() checks and what the OpenAPI document states. A `high` that
# names a Limits field is that server limit.
@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int | None = setting(  # None: until the context is full (capped by Limits)
        None,
        low=0,
        high="max_new_tokens",
        help="Tokens to generate at most, per sample; never beyond the context (finish_reason 'length'). "
        "0 reads the prompt only (to score it).",
    )
    temperature: float = setting(
        1.0,
        low=0.0,
        high=100.0,
        help="Randomness of sampling: 0 = greedy (always the most likely token); higher = more varied.",
    )
    top_k: int = setting(0, low=0, help="Sample only among the k most likely tokens; 0 = off.")
    top_p: float = setting(
        1.0,
        low=0.0,
        high=1.0,
        low_open=True,
        help="Nucleus sampling: sample among the most likely tokens whose probabilities add up to p; 1 = off.",
    )
    min_p: float = setting(
        0.0, low=0.0, high=1.0, help="Drop tokens less likely than min_p times the most likely one; 0 = off."
    )
    repetition_penalty: float = setting(  # multiplicative, over prompt and output
        1.0,
        low=0.0,
        high=10.0,
        low_open=True,
        help="Divide the logits of tokens already seen (prompt and output) by this; 1 = off.",
    )
    presence_penalty: float = setting(  # additive, OpenAI semantics, over the output
        0.0,
        low=-2.0,
        high=2.0,
        help="Subtract this from the logits of tokens already generated (OpenAI's); 0 = off.",
    )
    frequency_penalty: float = setting(
        0.0,
        low=-2.0,
        high=2.0,
        help="Subtract this, per occurrence, from the logits of tokens already generated; 0 = off.",
    )
    seed: int | None = setting(
        None,
        low=0,
        high=2**63 - 1,
        help="Random seed: the same seed gives the same text, alone or under load.",
    )
    stop: tuple[str, ...] = setting(
        (), help="Stop when one of these strings is generated; it is not included in the text."
    )
    n: int = setting(1, low=1, high="max_n", short="-n", help="How many samples of the prompt to generate.")
    logprobs: int | None = setting(  # None: off; k >= 0: chosen token plus k alternatives
        None,
        low=0,
        high="max_logprobs",
        help="Return the log-probability of each chosen token and this many most likely alternatives.",
    )
    ignore_eos: bool = setting(False, help="Keep generating past the end-of-sequence token.")
    # Not settings of the command line: what an HTTP request may add.
    prompt_logprobs: int | None = None  # None: off; k >= 0: each prompt token's log-probability, k alternatives
    grammar: Grammar | None = None  # what the output must follow (engine/constraints.py)

    @property
    def greedy(self) -> bool:
        # Below GREEDY_BELOW, sampling is argmax anyway; dividing logits by it would overflow float32.
        return self.temperature < GREEDY_BELOW or self.top_k == 1

    def validated(self, limits: Limits = Limits()) -> SamplingParams:
        """Return a normalised copy, or raise InvalidParameter naming the field.

        A request, not a configuration: it is checked against the limits of the server it is sent to, and
        its messages name the field alone (the HTTP layer renames it as the client spelled it)."""
        for d in declarations(SamplingParams):
            if not d.repeatable:  # stop, the one list, is normalised below
                problem = d.problem(getattr(self, d.name), limits)
                if problem:
                    raise InvalidParameter(d.name, problem)
        if self.prompt_logprobs is not None and not 0 <= self.prompt_logprobs <= limits.max_logprobs:
            raise InvalidParameter("prompt_logprobs", f"must be between 0 and {limits.max_logprobs}")
        if self.grammar is not None and self.ignore_eos:
            raise InvalidParameter("ignore_eos", "cannot be combined with a grammar, which decides where output ends")
        return replace(self, stop=_normalise_stop(self.stop, limits))


def bounds(limits: Limits = Limits()) -> dict[str, Range]:
    """Every numeric parameter's bounds under ``limits``, as declared: what ``validated`` checks, and what the
    HTTP API's OpenAPI document states for each field that fills the parameter."""
    return {d.name: d.range(limits) for d in declarations(SamplingParams) if d.range(limits) is not None}


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
