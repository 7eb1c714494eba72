"""How an engine runs: its slots, context, queue and drafting, and the ceilings on what one request may ask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    # Most prompt tokens one step reads when no running stream waits on it (engine/scheduler.py): a wave of 16
    # prompts of 100 tokens starts together, as llama-server's 2048-token batches do.
    prefill_chunk: int = 2048
    draft_tokens: int = setting(
        3,
        low=0,
        old=("--speculative-tokens", "POCKETLM_SPECULATIVE_TOKENS"),
        help="Most tokens drafted ahead per sample and step from its own text (prompt lookup). A step drafts as "
        "many as pay: by how often each sample's guesses came true and what the engine measured its steps to "
        "cost by rows. The text stays the same. 0 turns it off.",
    )
    # "measured": draft as far as pays (engine/drafts.py); "always": as far as every sample has a guess, whatever
    # it costs (to measure what drafts do, and to test that they never change the text).
    draft_policy: Literal["measured", "always"] = "measured"
    limits: Limits = field(default_factory=Limits)
