"""Choosing the next token from logits, for a whole batch of samples at once.

Sampling runs every step for every sample, so the common cases stay cheap:
greedy rows take one ``argmax`` over the batch, and the nucleus (top-p) is
found by sorting only the tokens that can be in it, never the whole
vocabulary. Each sample owns its random generator, seeded from the request,
so a seeded request samples the same text alone or batched with others.

A sample with a grammar (engine/constraints.py) has a ``Constraint``: after the
penalties, every token it forbids gets -inf, so whatever the sampling settings
pick is a token that keeps the output valid. Both backends get it, as it acts on
logits. Log-probabilities are of the model's own distribution, before any of
this (the engine computes them from the raw logits).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pocketlm.engine.constraints import Constraint, apply_all
from pocketlm.engine.params import SamplingParams

# top-p first sorts the tokens at least 1/4096 as likely as the most likely one, if there are at most 4096 (_nucleus)
_NUCLEUS_RATIO, _NUCLEUS_SORTED = 1 / 4096, 4096
_BLOCK = 1024  # plain sampling finds its token block by block
_DRAWS = 64  # uniform numbers a sampler draws at once (Sampler.draw)


class Sampler:
    """One sample's sampling state: parameters, RNG, the counts penalties need, and its place in its grammar."""

    def __init__(
        self,
        params: SamplingParams,
        prompt: list[int],
        index: int,
        eog_ids: frozenset[int],
        constraint: Constraint | None = None,
    ):
        self.params = params
        self.constraint = constraint  # each sample its own: n samples of one grammar go their own ways
        seed = None if params.seed is None else params.seed + index
        self.rng = np.random.default_rng(seed)
        self._draws: list[float] = []  # drawn ahead, last first (draw)
        self.output_counts: Counter[int] = Counter()
        self.seen = np.unique(np.asarray(prompt, dtype=np.int64)) if params.repetition_penalty != 1.0 else None
        self.banned = np.fromiter(eog_ids, dtype=np.int64) if params.ignore_eos else None

    def draw(self) -> float:
        """The next uniform number in [0, 1) of this sample's generator.

        Drawn 64 at a time: ``rng.random(64)`` gives the very numbers 64 calls of ``rng.random()`` give, in
        order, so the text a seed makes is the same, and the one numpy call a token cost on the caches a
        pass leaves behind (~40 µs, benchmarks/NOTES.md) is paid once in 64 tokens.
        """
        if not self._draws:
            self._draws = self.rng.random(_DRAWS)[::-1].tolist()
        return self._draws.pop()

    def accept(self, token: int) -> None:
        if self.constraint is not None:
            self.constraint.accept(token)
        self.output_counts[token] += 1
        if self.seen is not None:
            self.seen = np.union1d(self.seen, [token])

    def adjust(self, logits: np.ndarray) -> np.ndarray:
        """Penalties and banned tokens, applied in place to one row of logits."""
        p = self.params
        if self.seen is not None and self.seen.size:
            vals = logits[self.seen]
            # A penalty near 0 (any value > 0 is allowed; in float32 it may round to 0) overflows to inf, and
            # inf - inf is NaN in the softmax: the result is clipped to values that stay finite when divided by
            # any sampling temperature, so numpy's warning is noise (as is 0 / 0 for a logit of exactly 0,
            # computed in the branch np.where then discards).
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                penalised = np.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
            logits[self.seen] = np.clip(penalised, -_PENALISED, _PENALISED)
        if (p.presence_penalty or p.frequency_penalty) and self.output_counts:
            ids = np.fromiter(self.output_counts.keys(), dtype=np.int64)
            counts = np.fromiter(self.output_counts.values(), dtype=np.float32)
            logits[ids] -= p.frequency_penalty * counts + p.presence_penalty
        if self.banned is not None:
            logits[self.banned] = -np.inf
        return logits


# Far beyond any model's logits, and finite in float32 once divided by any temperature >= GREEDY_BELOW.
_PENALISED = 1e30


def sample(logits: np.ndarray, samplers: list[Sampler]) -> np.ndarray:
    """Pick one token per row of ``logits`` ([B, V], modified in place)."""
    tokens = np.empty(len(samplers), dtype=np.int64)
    for row, s in enumerate(samplers):
        s.adjust(logits[row])
    apply_all(logits, [s.constraint for s in samplers])  # last: a penalty must not bring back a forbidden token
    # Which rows go which way, in plain lists: at one stream each numpy call on these few flags costs more
    # than the argmax itself, on the caches a pass has just emptied (benchmarks/NOTES.md, issue 27).
    greedy = [row for row, s in enumerate(samplers) if s.params.greedy]
    plain = [row for row, s in enumerate(samplers) if _plain(s.params)]
    if len(greedy) == len(samplers):  # no copy of the rows (16 x 49k floats is 3 MB)
        tokens[:] = np.argmax(logits, axis=-1)
    elif greedy:
        tokens[greedy] = np.argmax(logits[greedy], axis=-1)
    if len(plain) == len(samplers):  # the usual batch: no row copies
        tokens[:] = _sample_plain(logits, samplers)
    elif plain:
        tokens[plain] = _sample_plain(logits[plain], [samplers[row] for row in plain])
    for row, s in enumerate(samplers):
        if not (s.params.greedy or _plain(s.params)):
            tokens[row] = _sample_row(logits[row], s)
    for s, t in zip(samplers, tokens.tolist()):
        s.accept(t)
    return tokens


def _plain(p: SamplingParams) -> bool:
    """Temperature (and min-p) alone: sampled from whole rows, many at once (_sample_plain)."""
    return not p.greedy and p.top_k == 0 and p.top_p == 1.0


def _sample_plain(logits: np.ndarray, samplers: list[Sampler]) -> np.ndarray:
    """Temperature (and min-p) sampling for many rows in a few whole-batch numpy calls.

    Inverse-CDF sampling without a cumulative sum over the whole vocabulary (the
    costliest step at 16 rows x 49k tokens): sum the probabilities in blocks,
    find the block where the draw lands, then walk only inside that block.
    """
    probs = _plain_weights(logits, samplers)
    starts = np.arange(0, probs.shape[1], _BLOCK)
    block_cdf = np.cumsum(np.add.reduceat(probs, starts, axis=1), axis=1, dtype=np.float64)
    draws = np.array([s.draw() for s in samplers]) * block_cdf[:, -1]
    return np.array([_invert(p, c, u) for p, c, u in zip(probs, block_cdf, draws)], dtype=np.int64)


def _plain_weights(logits: np.ndarray, samplers: list[Sampler]) -> np.ndarray:
    """Temperature and min-p over whole rows: unnormalised probabilities, the most likely token at 1."""
    temps = np.array([s.params.temperature for s in samplers], dtype=np.float32)[:, None]
    z = logits / temps
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z, out=z)  # the most likely token has probability 1 before normalising
    min_p = np.array([s.params.min_p for s in samplers], dtype=np.float32)[:, None]
    if min_p.any():
        probs[probs < min_p] = 0.0
    return probs


def _invert(probs: np.ndarray, block_cdf: np.ndarray, u: float) -> int:
    """The token where the cumulative probability first exceeds ``u``."""
    block = min(int(np.searchsorted(block_cdf, u, side="right")), len(block_cdf) - 1)
    while block > 0 and block_cdf[block] == block_cdf[block - 1]:  # rounding landed past the mass
        block -= 1
    start = block * _BLOCK
    inside = np.cumsum(probs[start : start + _BLOCK], dtype=np.float64)
    offset = int(np.searchsorted(inside, u - (block_cdf[block - 1] if block else 0.0), side="right"))
    if offset >= len(inside):  # rounding again: take the last token that has any probability
        offset = int(np.flatnonzero(probs[start : start + _BLOCK])[-1])
    return start + offset


def _sample_row(logits: np.ndarray, s: Sampler) -> int:
    ids, weights, cdf = _filtered(logits, s.params)
    if cdf is None:
        cdf = np.cumsum(weights, dtype=np.float64)
    pick = int(np.searchsorted(cdf, s.draw() * cdf[-1], side="right"))
    return int(ids[min(pick, len(ids) - 1)])


def _filtered(logits: np.ndarray, p: SamplingParams) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Temperature, top-k, min-p and top-p on one row: the kept ids, in draw order, their weights
    (proportional to their probabilities; the most likely token's is 1), and with top-p their running sum
    in float64 (the nucleus is found with it: the draw need not sum them again), else None.

    Whole-vocabulary arrays are the cost here: one is made, the scaled row, and worked on in place, and
    it is never divided by its sum (the kept weights are few); ids stay None ("all, in id order") until a
    filter keeps fewer."""
    scaled = logits / p.temperature
    ids = None
    if 0 < p.top_k < scaled.size:
        ids = np.argpartition(scaled, -p.top_k)[-p.top_k :]
        ids = ids[np.argsort(-scaled[ids], kind="stable")]
        scaled = scaled[ids]
    weights = _exp_from_max(scaled)
    mass = p.top_p * float(weights.sum(dtype=np.float64))  # of the whole row, whatever min-p keeps
    if p.min_p > 0.0:
        keep = np.flatnonzero(weights >= p.min_p)
        ids, weights = (keep if ids is None else ids[keep]), weights[keep]
    cdf = None
    if p.top_p < 1.0:
        top, cdf = _nucleus(weights, mass)
        ids, weights = (top if ids is None else ids[top]), weights[top]
    return (np.arange(weights.size) if ids is None else ids), weights, cdf


def distribution(logits: np.ndarray, sampler: Sampler) -> tuple[np.ndarray, np.ndarray]:
    """What ``sample`` draws from for one row of logits already passed through ``sampler.adjust``.

    Token ids in the order the draw walks them, and their probabilities (summing
    to 1), computed by the very functions ``sample`` uses, so that looking at the
    distribution (``pocketlm inspect next``) shows what the engine samples from.
    """
    p = sampler.params
    if p.greedy:
        return np.array([int(np.argmax(logits))]), np.ones(1)
    if _plain(p):
        weights = _plain_weights(logits[None, :], [sampler])[0].astype(np.float64)
        return np.arange(logits.size), weights / weights.sum()
    ids, weights, _ = _filtered(logits, p)
    return ids, weights.astype(np.float64) / weights.sum(dtype=np.float64)


def _exp_from_max(z: np.ndarray) -> np.ndarray:
    """``exp(z - max(z))``, computed in ``z``'s own memory (the caller's fresh array): the largest is exactly 1."""
    z -= z.max()
    return np.exp(z, out=z)


def _nucleus(weights: np.ndarray, mass: float) -> tuple[np.ndarray, np.ndarray]:
    """Where in ``weights`` (the largest 1) the smallest set of most likely tokens holding ``mass`` lies
    (top_p times the whole row's weight), most likely first, and their running sum (float64).

    Exactly what sorting every token (ties in id order) and summing down the list in float64 gives, without
    sorting the vocabulary: only a set of tokens at least as likely as some value is sorted (ties included),
    so the sorted list is the whole sort's beginning and its running sum the same. The set is first the
    tokens at least 1/4096 as likely as the most likely one: one comparison over the vocabulary, cheaper than
    picking the k most likely (a partial sort); on SmolLM2's own rows at temperature 0.8 it is ~150 tokens and
    holds the nucleus of 397 rows in 400 (0.06 ms against 0.18). When it is short of the mass (or too large
    to sort), one pass sums the weights in bins of value (a float's exponent and first three mantissa bits,
    which for non-negative floats grow with the value) and the bins' running mass from the top says where
    the nucleus ends. A flat distribution (a small model at temperature 0.8) keeps thousands of tokens:
    0.3 ms where sorts that grew eightfold took 1.4 ms, a sixth of a step at one stream (benchmarks/NOTES.md).
    """
    candidates = np.flatnonzero(weights >= _NUCLEUS_RATIO)
    if candidates.size <= _NUCLEUS_SORTED:
        top = _sorted_from(weights, candidates)
        cum = np.cumsum(weights[top], dtype=np.float64)
    if candidates.size > _NUCLEUS_SORTED or cum[-1] < mass:
        keys = weights.astype(np.float32, copy=False).view(np.int32) >> 20
        binned = np.bincount(keys, weights=weights)
        edge = binned.size - 1 - min(int(np.searchsorted(np.cumsum(binned[::-1]), mass)), binned.size - 1)
        while True:
            top = _sorted_from(weights, np.flatnonzero(keys >= edge))
            cum = np.cumsum(weights[top], dtype=np.float64)
            if cum[-1] >= mass or edge <= 0:
                break
            edge -= 1  # the running sum fell a rounding short of the bins' (summed in another order): one bin more
    end = int(np.searchsorted(cum, mass, side="left")) + 1
    return top[:end], cum[:end]


def _sorted_from(weights: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``ids`` (in id order) most likely first, ties in id order."""
    return ids[np.argsort(-weights[ids], kind="stable")]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
