"""Prompt-lookup drafting: guess a sequence's next tokens from its own text so far.

Small models, and most models at temperature 0, repeat themselves: names, phrases, whole
lines of the prompt or of their own output. When the last ``ngram`` tokens of a sequence
occurred before, the tokens that followed them then are a free guess at what comes next.
The engine appends the guess to the sequence's row of the next forward pass and keeps the
longest part of it that the sampler picks anyway (speculative decoding without a draft
model). The text does not change: llama.cpp computes each row of a pass exactly as it
computes that row alone (bit-identical logits, tested), and every kept token is the one
the sequence's own sampler chose, its random draws included.

A wrong guess costs the compute of its rows, so a sequence whose guess failed entirely
waits 1, 3, 7, ... steps before guessing again, and fluent text that rarely repeats
itself is left alone.
"""

from __future__ import annotations

# Tokens that must match. Shorter n-grams guess more often and wrongly: sampled text ran 0.71-0.87x of no drafts
# with 1 or 2, 0.95-0.99x with 3, greedy text 1.35x (benchmarks/NOTES.md).
NGRAM = 3
_MAX_PAUSE_DOUBLINGS = 5  # at most 31 steps without guessing after repeated misses


class Drafter:
    """One sequence's text (prompt + tokens so far) and where each of its n-grams last occurred."""

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
        """How the last draft fared: a draft rejected whole pauses guessing, twice as long each time in a row."""
        if accepted:
            self._misses = 0
        elif drafted:
            self._misses += 1
            self._pause = 2 ** min(self._misses, _MAX_PAUSE_DOUBLINGS) - 1
