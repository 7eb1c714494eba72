"""Which slot a sample gets, and the prompt prefixes free slots still hold.

A finished sample leaves its tokens in its slot's KV cache. When a new
request arrives, it takes the free slot whose cached tokens share the longest
prefix with its prompt, keeps that prefix and prefills only the rest: chat
requests that repeat a system prompt and the conversation so far, or many
clients sharing one long instruction, skip most of their prefill.

Memory: the KV cache is allocated once for every slot (slots x n_ctx cells), so
holding prefixes in free slots costs nothing more; the bound is the slots
themselves. Eviction: a request that finds no useful prefix takes the free slot
used least recently, and that slot's tokens are forgotten.

Reuse is by exact token ids within one engine (one model, one tokenizer): a
slot is only ever reused for a prompt that starts with the very same tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class SlotPool:
    def __init__(self, slots: int, backend):
        """``backend.clear_slot(slot, keep)`` drops a slot's cached positions from ``keep`` on."""
        self.size = slots
        self._backend = backend
        self._free: OrderedDict[int, tuple[int, ...]] = OrderedDict((s, ()) for s in range(slots))  # oldest first

    def __len__(self) -> int:
        """Free slots."""
        return len(self._free)

    def take(self, prompt: Sequence[int]) -> tuple[int, int]:
        """A free slot for ``prompt`` and how many of its first tokens that slot already holds.

        At least the prompt's last token is always recomputed: its logits pick the first new token.
        """
        best, kept = next(iter(self._free)), 0
        for slot, cached in self._free.items():  # oldest first: on a tie the older cache goes
            n = min(common_prefix(cached, prompt), len(prompt) - 1)
            if n > kept:
                best, kept = slot, n
        self._claim(best, kept)
        return best, kept

    def take_empty(self) -> int:
        """The least recently used free slot, emptied."""
        slot = next(iter(self._free))
        self._claim(slot, 0)
        return slot

    def _claim(self, slot: int, keep: int) -> None:
        self._free[slot] = ()  # should the backend fail here, the slot stays free and trusted with nothing
        self._backend.clear_slot(slot, keep)
        del self._free[slot]

    def give_back(self, slot: int, cached: Sequence[int]) -> None:
        """Free ``slot``, which holds the KV of ``cached`` (positions 0..len-1); () if unknown.

        Nothing is cleared here: ``take`` clears whatever it does not keep, so a slot
        given back after a failure holds nothing anyone will read.
        """
        self._free[slot] = tuple(cached)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share (bisection over slice comparisons, which run in C)."""
    a, b = list(a), list(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
