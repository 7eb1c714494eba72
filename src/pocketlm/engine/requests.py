"""A request in flight, and its samples: what the scheduler tracks of each between steps.

A request's prompt is prefilled once, into its first sample's slot; its ``n`` samples then
decode in slots of their own, each with its position, sampler, text and drafter. The
leading underscores say these are the engine's own records: the result a caller gets of a
sample is ``pocketlm.engine.Sample`` (engine/outputs.py).
"""

from __future__ import annotations

from collections.abc import Callable

from pocketlm.engine.constraints import CompiledGrammar
from pocketlm.engine.drafts import Drafter
from pocketlm.engine.outputs import TokenLogprob
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.sampling import Sampler
from pocketlm.engine.streams import RequestStream
from pocketlm.engine.text import TextAssembler


class _Request:
    """A request in flight: its checked prompt and parameters, its samples, and the caller's stream."""

    def __init__(
        self,
        prompt: list[int],
        params: SamplingParams,
        max_new: int,
        eog_ids: frozenset[int],
        cancel: Callable[[_Request], None],
        grammar: CompiledGrammar | None = None,
    ):
        self.prompt = prompt
        self.params = params
        self.max_new = max_new  # 0: the prompt is only read (scored)
        self.prefilled = 0  # prompt tokens in the first sample's slot
        self.cached = 0  # of which were already there (a prefix kept from an earlier request)
        # With params.prompt_logprobs: each prompt token's log-probability, filled chunk by chunk as it is read.
        self.prompt_logprobs: list[TokenLogprob] = []
        self.samples = [_Sample(i, self, eog_ids, grammar) for i in range(params.n)]
        self.cancelled = False
        self.stream = RequestStream(prompt, lambda: cancel(self))

    @property
    def scored(self) -> bool:
        """Its prompt's log-probabilities are asked for: every prompt row is computed, none taken from a cache."""
        return self.params.prompt_logprobs is not None

    @property
    def completion_tokens(self) -> int:
        return sum(s.generated for s in self.samples)


class _Sample:
    """One sample of a request, living in one slot."""

    def __init__(self, index: int, request: _Request, eog_ids: frozenset[int], grammar: CompiledGrammar | None):
        self.index = index
        self.request = request
        self.slot = -1
        self.pos = 0
        self.last_token = -1
        self.generated = 0
        self.fed: list[int] = []  # generated tokens whose KV is in the slot (decode inputs)
        self.done = False
        constraint = grammar.constraint() if grammar is not None else None
        self.sampler = Sampler(request.params, request.prompt, index, eog_ids, constraint)
        self.text = TextAssembler(request.params.stop)
        self.drafter = Drafter(request.prompt)

    def held(self) -> list[int]:
        """The tokens whose KV sits in this sample's slot: what a later prompt may reuse."""
        r = self.request
        if self.pos == 0:  # not decoding yet: only the first sample's slot has (part of) the prompt
            return r.prompt[: r.prefilled] if self is r.samples[0] else []
        return r.prompt + self.fed[: self.pos - len(r.prompt)]
