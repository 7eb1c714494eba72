"""How an engine runs: its slots, context, queue and drafting, and the ceilings on what one request may ask."""

from __future__ import annotations

from dataclasses import dataclass, field

from pocketlm.engine.params import Limits


@dataclass(frozen=True)
class EngineConfig:
    slots: int = 16  # slots decoded together
    n_ctx: int = 1024  # context of each slot: prompt + new tokens of one sample
    max_queue: int = 64  # requests waiting for a slot before new ones get Overloaded
    prefill_chunk: int = 512  # prompt tokens processed per step (one 512-row llama.cpp pass)
    draft_tokens: int = 3  # most tokens drafted per sample and step by prompt lookup; 0: none
    limits: Limits = field(default_factory=Limits)
