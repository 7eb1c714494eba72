"""How an engine runs: its slots, context, queue and drafting, and the ceilings on what one request may ask."""

from __future__ import annotations

from dataclasses import dataclass, field

from pocketlm.engine.params import Limits
from pocketlm.settings import Declared, setting


@dataclass(frozen=True)
class EngineConfig(Declared):
    slots: int = setting(
        16,
        low=1,
        help="Slots decoded together, one sample each (continuous batching); more slots, more throughput, "
        "more KV-cache RAM.",
    )
    n_ctx: int = setting(
        1024, low=16, help="Context of each slot in tokens: prompt + new tokens. KV-cache RAM grows with slots x n-ctx."
    )
    max_queue: int = setting(
        64, low=0, help="Requests that may wait for a slot; beyond it: 'overloaded' (HTTP 503 + Retry-After)."
    )
    prefill_chunk: int = 512  # prompt tokens processed per step (one 512-row llama.cpp pass)
    draft_tokens: int = setting(
        3,
        low=0,
        old=("--speculative-tokens", "POCKETLM_SPECULATIVE_TOKENS"),
        help="Most tokens drafted ahead per sample and step from its own text (prompt lookup), while a step "
        "keeps within 8 rows: all of them with 1-2 decoding samples, 1 with 3-4, none from 5 on. The text stays "
        "the same. 0 turns it off.",
    )
    limits: Limits = field(default_factory=Limits)
