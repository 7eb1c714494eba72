"""Sliding-window perplexity and bits per byte, on any backend.

A model with a context of C tokens cannot see a whole book at once. The
sliding-window recipe moves a window of ``n_ctx`` tokens forward ``stride``
tokens at a time and scores only the tokens the previous window did not
already score, so every scored token is predicted exactly once, with at least ``n_ctx - stride`` tokens
of history (fewer at the very start). ``stride == n_ctx`` is the fast
non-overlapping version; a smaller stride gives each token more history and a
lower, fairer perplexity, at ``n_ctx / stride`` times the cost.

    perplexity     = exp(mean negative log-likelihood per token)
    bits per byte  = total NLL / ln 2 / UTF-8 bytes of the scored tokens

Bits per byte does not depend on the tokenizer, so it compares models with
different vocabularies; perplexity only compares models that share one.

The backend only has to give logits for every position of a chunk
(``Chunk(n_logits=...)``), so llama.cpp and torch run the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pocketlm.backends.base import Backend, Chunk
from pocketlm.errors import InvalidParameter

SLOT = 0  # the one KV-cache slot scoring uses


@dataclass(frozen=True)
class Window:
    begin: int  # first token of the window
    end: int  # one past its last token
    first_target: int  # first token scored in it (the ones before were scored by earlier windows)


@dataclass(frozen=True)
class Perplexity:
    n_tokens: int  # tokens scored
    n_bytes: int  # UTF-8 bytes those tokens stand for
    nll: float  # total negative log-likelihood, nats
    n_ctx: int
    stride: int

    @property
    def mean_nll(self) -> float:
        return self.nll / self.n_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.n_bytes

    def as_dict(self) -> dict:
        return {
            "perplexity": self.perplexity,
            "bits_per_byte": self.bits_per_byte,
            "mean_nll": self.mean_nll,
            "tokens": self.n_tokens,
            "bytes": self.n_bytes,
            "n_ctx": self.n_ctx,
            "stride": self.stride,
        }


def windows(n_tokens: int, n_ctx: int, stride: int) -> list[Window]:
    """The windows that score tokens 1..n-1 of a text, each exactly once."""
    if n_ctx < 2:
        raise InvalidParameter("n_ctx", f"must be at least 2 tokens, got {n_ctx}")
    if not 1 <= stride <= n_ctx:
        raise InvalidParameter("stride", f"must be between 1 and --n-ctx ({n_ctx}), got {stride}")
    out, scored_until = [], 1  # token 0 has no prediction
    for begin in range(0, max(n_tokens - 1, 0), stride):
        end = min(begin + n_ctx, n_tokens)
        # A window's first token has no history inside it, so it is never a target (with stride == n_ctx
        # that token goes unscored, as in the usual recipe; any overlap scores it in the window before).
        out.append(Window(begin, end, max(scored_until, begin + 1)))
        scored_until = end
        if end == n_tokens:
            break
    return out


def score_window(backend: Backend, tokens: list[int], w: Window) -> tuple[float, list[int]]:
    """NLL (nats) of tokens[first_target:end] given the window; returns it and the scored ids."""
    ids = tokens[w.begin : w.end]
    # Logits at position i predict token i+1, so the targets need the positions first_target-1 .. end-2:
    # a suffix of the window plus its last position, whose prediction (beyond the window) is dropped.
    n_logits = w.end - w.first_target + 1
    try:
        logits = backend.forward([Chunk(slot=SLOT, tokens=ids, pos=0, n_logits=n_logits)])[:-1]
    finally:
        backend.clear_slot(SLOT)
    targets = np.asarray(tokens[w.first_target : w.end])
    logits = logits.astype(np.float32, copy=False)
    peak = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - peak).sum(axis=1, dtype=np.float64)) + peak[:, 0]
    nll = log_z - logits[np.arange(len(targets)), targets]
    return float(nll.sum()), targets.tolist()


def perplexity(
    backend: Backend, tokens: list[int], n_ctx: int, stride: int, progress: Callable[[int, int], None] | None = None
) -> Perplexity:
    """Sliding-window perplexity of a token sequence; ``progress(done, total)`` after each window."""
    if len(tokens) < 2:
        raise InvalidParameter("data", f"needs at least 2 tokens to score, got {len(tokens)}")
    limit = min(backend.n_ctx, backend.info.n_ctx_train or backend.n_ctx)
    if n_ctx > limit:
        raise InvalidParameter(
            "n_ctx", f"{n_ctx} is above what this model can see at once ({limit} tokens); use --n-ctx {limit} or less"
        )
    plan = windows(len(tokens), n_ctx, stride)
    nll, n_bytes, n_scored = 0.0, 0, 0
    byte_len: dict[int, int] = {}
    for i, w in enumerate(plan):
        window_nll, scored = score_window(backend, tokens, w)
        nll += window_nll
        n_scored += len(scored)
        for t in scored:
            if t not in byte_len:
                byte_len[t] = len(backend.token_bytes(t))
            n_bytes += byte_len[t]
        if progress:
            progress(i + 1, len(plan))
    return Perplexity(n_scored, max(n_bytes, 1), nll, n_ctx, stride)


def text_perplexity(
    backend: Backend,
    text: str,
    n_ctx: int,
    stride: int,
    *,
    max_scored_tokens: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Perplexity:
    """Tokenize ``text`` without BOS or special-token parsing (plain text is scored as written), then score
    its first ``max_scored_tokens`` tokens (all by default)."""
    tokens = backend.tokenize(text, add_special=False)
    if max_scored_tokens is not None:
        if max_scored_tokens < 2:
            raise InvalidParameter("max_scored_tokens", f"must be at least 2, got {max_scored_tokens}")
        tokens = tokens[:max_scored_tokens]
    return perplexity(backend, tokens, n_ctx, stride, progress)
