"""Drafts: a sample's next tokens guessed from its own text so far, by prompt lookup.

Small models, and most models at temperature 0, repeat themselves: names, phrases, whole
lines of the prompt or of their own output. When the last ``ngram`` tokens of a sample
occurred before, the tokens that followed them then are a free guess at what comes next:
a draft. The engine appends the draft to the sample's row of the next forward pass and
keeps the longest part of it that the sampler picks anyway (no draft model: the text
itself does the guessing). The text does not change: llama.cpp computes each row of a
pass exactly as it computes that row alone (bit-identical logits, tested), and every
kept token is the one the sample's own sampler chose, its random draws included.

A wrong draft costs the compute of its rows, so a sample whose draft failed entirely
waits 1, 3, 7, ... steps before drafting again, and fluent text that rarely repeats
itself is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Tokens that must match. Shorter n-grams draft more often and more wrongly: sampled text then ran slower than
# with no drafts at all, while 3 kept about even there and gained most on greedy text (benchmarks/NOTES.md).
NGRAM = 3
_MAX_PAUSE_DOUBLINGS = 5  # at most 31 steps without drafting after repeated misses

# Draft tokens fill a step up to this many rows. While a step has few rows the cores have room and a drafted
# row costs little beside them, so drafts pay at one stream when about half of them are kept; from 8 samples
# on the step's own rows keep the cores busy and every extra row costs nearly a full one (step costs measured
# by benchmarks/drafts.py, figures in benchmarks/NOTES.md).
DRAFT_ROWS = 8

Valid = Callable[[Sequence[int]], int]  # how many of a draft's tokens a sample's grammar allows in a row


class Drafter:
    """One sample's text (prompt + tokens so far) and where each of its n-grams last occurred."""

    def __init__(self, prompt: list[int], ngram: int = NGRAM):
        self.tokens = list(prompt)
        self.ngram = ngram
        self._next: dict[tuple[int, ...], int] = {}  # n-gram -> the position right after its latest occurrence
        self._indexed = ngram  # positions below this have their preceding n-gram in _next
        self._misses = 0
        self._pause = 0

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def draft(self, most: int) -> list[int]:
        """Up to ``most`` tokens that followed the last time the text ended as it ends now."""
        if most <= 0:
            return []
        if self._pause:
            self._pause -= 1
            return []
        tokens = self._index()
        start = self._next.get(tuple(tokens[-self.ngram :]))
        return tokens[start : start + most] if start is not None else []

    def _index(self) -> list[int]:
        # The n-gram ending at the very end is looked up before it is indexed, so a match is always an
        # earlier occurrence with at least one token after it.
        tokens = self.tokens
        for end in range(self._indexed, len(tokens)):
            self._next[tuple(tokens[end - self.ngram : end])] = end
        self._indexed = max(self._indexed, len(tokens))
        return tokens

    def checked(self, drafted: int, accepted: int) -> None:
        """How the last draft fared: a draft rejected whole pauses drafting, twice as long each time in a row."""
        if accepted:
            self._misses = 0
        elif drafted:
            self._misses += 1
            self._pause = 2 ** min(self._misses, _MAX_PAUSE_DOUBLINGS) - 1


def step_drafts(wanted: list[tuple[Drafter, int, Valid | None]], draft_tokens: int) -> list[list[int]]:
    """Each decoding sample's draft for one step, all of one length, within the step's spare rows.

    ``wanted`` holds each sample's drafter, the most tokens it may still take (its token limit and
    its context, less the token the step decodes anyway) and, for a sample with a grammar, how many
    of a draft's tokens the grammar allows in a row: a draft is cut there, as the sampler could never
    keep a token its mask forbids (its row would be computed for nothing). ``draft_tokens`` is --draft-tokens.
    llama.cpp computes a batch in one pass only when every slot brings as many rows (each slot's
    cache is a stream of its own, and a pass takes an equal share from each): so a step drafts only
    when every sample has a draft, each cut to the shortest. At 4 streams, drafts of unequal length
    split steps in two and made them slower than no drafts at all (benchmarks/NOTES.md).
    """
    if not wanted:
        return []
    most = min(draft_tokens, (DRAFT_ROWS - len(wanted)) // len(wanted))
    if most <= 0:  # no spare rows, or drafting off: no drafter is asked (one that is would draft nothing)
        return [[] for _ in wanted]
    drafts = [drafter.draft(min(most, room)) for drafter, room, _ in wanted]
    drafts = [d[: valid(d)] if valid and d else d for d, (_, _, valid) in zip(drafts, wanted)]
    k = min(map(len, drafts))
    return [d[:k] for d in drafts]
