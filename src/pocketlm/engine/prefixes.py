"""Prefix sharing: a new request starts from a prompt prefix that a busy slot already holds.

Free slots' prefixes are taken at admission (engine/slots.py). This covers the busy slots:
when 16 chat requests with one system prompt arrive together, the first prefills it and the
others copy its KV (one memory copy per slot, about a millisecond) instead of each computing
the same few hundred tokens. A request whose prompt shares more with a request ahead of it
that is still prefilling waits for that one, rather than computing the same tokens a second
time. Measurements: benchmarks/NOTES.md ("requests arriving together share a prefix").
"""

from __future__ import annotations

from pocketlm.backends.base import Backend
from pocketlm.engine.requests import _Request
from pocketlm.engine.slots import common_prefix

# Fewest prompt tokens worth copying from another slot (or waiting for): a copy moves the slot's whole
# KV buffer, about the cost of computing a few tokens.
SHARE_MIN = 16


class PrefixSharing:
    """Copies into a prefilling request's slot the longest prefix of its prompt that a busy slot holds."""

    def __init__(self, backend: Backend):
        self._backend = backend

    def share(self, prefilling: list[_Request], running: list[_Request]) -> set[_Request]:
        """Start prefilling requests from the longest prefix a busy slot holds; return those to defer.

        Call it before a step's chunks are planned, so every position counted here is already in its
        slot's cache. Only requests that have computed nothing yet take part: a copy replaces the slot.
        """
        # A scored prompt is read whole (a copied prefix would have no logits); others may still copy from it.
        fresh = [r for r in prefilling if r.prefilled == r.cached and not r.cancelled and not r.scored]
        if not fresh:
            return set()
        held = _busy_slots(prefilling, running)
        deferred: set[_Request] = set()
        for r in fresh:
            source, n = _longest_held(r, held)
            ahead = [o for o in prefilling[: prefilling.index(r)] if o not in deferred and not o.cancelled]
            if _longest_coming(r, ahead) >= max(n, r.prefilled) + SHARE_MIN:
                deferred.add(r)
            elif n >= r.prefilled + SHARE_MIN:
                self._copy(source, r, n)
                held.append((r.samples[0].slot, r.prompt[:n]))
        return deferred

    def _copy(self, source: int, r: _Request, n: int) -> None:
        """Give ``r``'s first slot the first ``n`` tokens of ``source``: its prompt's prefill starts there."""
        slot = r.samples[0].slot
        self._backend.copy_slot(source, slot)
        self._backend.clear_slot(slot, n)
        r.prefilled = r.cached = n


def _busy_slots(prefilling: list[_Request], running: list[_Request]) -> list[tuple[int, list[int]]]:
    """Each busy slot and the tokens its cache holds: decoding samples' and prefilling prompts' so far."""
    held = [(s.slot, s.held()) for r in running if not r.cancelled for s in r.samples]
    held += [(r.samples[0].slot, r.prompt[: r.prefilled]) for r in prefilling if r.prefilled and not r.cancelled]
    return held


def _longest_held(r: _Request, held: list[tuple[int, list[int]]]) -> tuple[int, int]:
    """The busy slot (-1: none) holding the longest prefix of ``r``'s prompt that it may reuse, and its length."""
    own, limit = r.samples[0].slot, _reusable(r)
    return max(
        ((slot, min(common_prefix(tokens, r.prompt), limit)) for slot, tokens in held if slot != own),
        key=lambda x: x[1],
        default=(-1, 0),
    )


def _longest_coming(r: _Request, ahead: list[_Request]) -> int:
    """The longest prefix of ``r``'s prompt that requests prefilling ahead of it will have computed."""
    return max((min(common_prefix(o.prompt, r.prompt), _reusable(r)) for o in ahead), default=0)


def _reusable(r: _Request) -> int:
    """The most prompt tokens a request may take from elsewhere: its last one is always computed, as its
    logits pick the first new token."""
    return len(r.prompt) - 1
