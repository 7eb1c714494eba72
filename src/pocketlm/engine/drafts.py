"""Drafts: a sample's next tokens guessed from its own text so far, by prompt lookup.

Small models, and most models at temperature 0, repeat themselves: names, phrases, whole
lines of the prompt or of their own output. When the last ``ngram`` tokens of a sample
occurred before, the tokens that followed them then are a free guess at what comes next:
a draft. The engine appends the draft to the sample's row of the next forward pass and
keeps the longest part of it that the sampler picks anyway (no draft model: the text
itself does the guessing). The text does not change: llama.cpp computes each row of a
pass exactly as it computes that row alone (bit-identical logits, tested), and every
kept token is the one the sample's own sampler chose, its random draws included.

A wrong draft costs the compute of its rows, so drafting is a bet, made step by step:
each sample learns how often its guesses come true (every guess is checked against the
tokens that follow, whether or not it was sent, so this costs nothing), and the step
drafts as many tokens as make the most tokens per second under the step costs the
engine measured (engine/costs.py). Greedy text that repeats itself gets drafts; fluent
sampled prose, or a step of many streams whose rows already fill the cores, does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pocketlm.engine.costs import StepCosts

# Tokens that must match. Shorter n-grams draft more often and more wrongly: sampled text then ran slower than
# with no drafts at all, while 3 kept about even there and gained most on greedy text (benchmarks/NOTES.md).
NGRAM = 3
# What a sample is assumed to keep before its own guesses say otherwise: about the middle of what was measured
# (a guessed token came true 86% of the time on greedy text, 35% at temperature 0.8: benchmarks/NOTES.md). Each
# guessed token then moves the estimate a fifth of the way to what happened.
PRIOR = 0.5
_LEARNING = 0.2
# A draft must promise this many times the tokens per second of the step without it: what the costs do not
# show (a step of new shape rebuilds llama.cpp's graph, each drafted row is sampled in Python, samples that
# keep different numbers of tokens finish apart) was worth more than 5% at 16 streams (benchmarks/NOTES.md).
MARGIN = 1.1

# The most rows a drafting step's decoding samples may bring. Past that the costs may still say a second row
# per stream pays (16 streams of greedy text keep ~94% of their guesses), but streams that keep different
# numbers of tokens finish apart, and their successors' prompts then arrive while the others decode: at 32
# clients of 128 tokens, 270 tok/s with drafts against 292 without, ITL p99 106 against 57 ms; at 16 clients
# no gain and ITL p99 110-118 against 83 ms; at 4 clients (16 rows with 3 drafted each) 1.45x (NOTES.md).
DRAFT_ROWS = 16

Valid = Callable[[Sequence[int]], int]  # how many of a draft's tokens a sample's grammar allows in a row


class Drafter:
    """One sample's text (prompt + tokens so far), where each of its n-grams last occurred, and how often
    its guesses came true."""

    def __init__(self, prompt: list[int], ngram: int = NGRAM):
        self.tokens = list(prompt)
        self.ngram = ngram
        self._next: dict[tuple[int, ...], int] = {}  # n-gram -> the position right after its latest occurrence
        self._indexed = ngram  # positions below this have their preceding n-gram in _next
        self._guess: list[int] = []  # the guess being checked against the tokens that follow
        self._checked = 0  # how many of its tokens came true so far
        self.kept = PRIOR  # chance that a guessed token is the next one, when the guessed ones before it were

    def append(self, token: int) -> None:
        self.tokens.append(token)
        if self._guess:
            hit = token == self._guess[self._checked]
            self.kept += _LEARNING * (hit - self.kept)
            self._checked += 1
            if not hit or self._checked == len(self._guess):
                self._guess = []

    def draft(self, most: int) -> list[int]:
        """Up to ``most`` tokens that followed the last time the text ended as it ends now.

        A guess stands until the tokens that follow settle it: while they agree with it, what is
        left of it is the draft."""
        if most <= 0:
            return []
        if not self._guess:
            tokens = self._index()
            start = self._next.get(tuple(tokens[-self.ngram :]))
            self._guess, self._checked = (tokens[start : start + most] if start is not None else []), 0
        return self._guess[self._checked : self._checked + most]

    def expected(self, k: int) -> float:
        """Tokens expected to be kept of a k-token draft: the first with chance ``kept``, each next one only
        if the ones before it were."""
        return sum(self.kept**i for i in range(1, k + 1))

    def _index(self) -> list[int]:
        # The n-gram ending at the very end is looked up before it is indexed, so a match is always an
        # earlier occurrence with at least one token after it.
        tokens = self.tokens
        for end in range(self._indexed, len(tokens)):
            self._next[tuple(tokens[end - self.ngram : end])] = end
        self._indexed = max(self._indexed, len(tokens))
        return tokens


def step_drafts(
    wanted: list[tuple[Drafter, int, Valid | None]], draft_tokens: int, costs: StepCosts | None
) -> list[list[int]]:
    """Each decoding sample's draft for one step, all of one length: the length that pays most.

    ``wanted`` holds each sample's drafter, the most tokens it may still take (its token limit and
    its context, less the token the step decodes anyway) and, for a sample with a grammar, how many
    of a draft's tokens the grammar allows in a row: a draft is cut there, as the sampler could never
    keep a token its mask forbids (its row would be computed for nothing). ``draft_tokens`` is --draft-tokens.
    llama.cpp computes a batch in one pass only when every slot brings as many rows (each slot's
    cache is a stream of its own, and a pass takes an equal share from each): so a step drafts only
    as far as every sample has a draft. At 4 streams, drafts of unequal length split steps in two and
    made them slower than no drafts at all (benchmarks/NOTES.md). Of the lengths possible, the one
    with the most tokens expected per second of step: the tokens each sample is expected to keep plus
    the one it decodes anyway, over the measured cost of that many rows, by a MARGIN more than without,
    within DRAFT_ROWS in all (``costs``; None: the longest).
    """
    if not wanted or draft_tokens <= 0:  # drafting off: no drafter is asked (one that is would start a guess)
        return [[] for _ in wanted]
    drafts = [drafter.draft(min(draft_tokens, room)) for drafter, room, _ in wanted]
    drafts = [d[: valid(d)] if valid and d else d for d, (_, _, valid) in zip(drafts, wanted)]
    longest = min(map(len, drafts))
    if costs is None:
        return [d[:longest] for d in drafts]
    n, best, best_rate = len(wanted), 0, 0.0
    longest = min(longest, DRAFT_ROWS // n - 1)
    for k in range(longest + 1):
        cost = costs.estimate(n * (1 + k))
        if cost is None:  # nothing measured yet: no bet
            break
        rate = sum(1 + drafter.expected(k) for drafter, _, _ in wanted) / max(cost, 1e-9) / (MARGIN if k else 1.0)
        if rate > best_rate:
            best, best_rate = k, rate
    return [d[:best] for d in drafts]
