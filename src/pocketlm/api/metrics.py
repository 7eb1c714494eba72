"""Prometheus metrics, one registry per app (tests may run several apps in a process).

Counters and histograms are updated as requests run; the engine gauges (busy
slots, queue depth) and its draft counters are read from ``engine.stats()`` at
scrape time, so they are never stale.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pocketlm.engine.outputs import SampleFinished, TextDelta, Usage

# Latency buckets sized for a small CPU model: milliseconds per token, up to a queue wait of minutes.
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ITL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class EngineCollector:
    """Gauges read live from the engine on each scrape."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        stats = self.engine.stats()
        for name, doc, value in (
            ("pocketlm_slots", "Slots the engine decodes together (--slots).", stats.slots),
            ("pocketlm_active_slots", "Slots busy with a request right now.", stats.active_slots),
            ("pocketlm_queue_depth", "Requests waiting for a slot.", stats.queued),
            ("pocketlm_running_requests", "Requests admitted and not finished.", stats.running_requests),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, value in (
            (
                "pocketlm_draft_tokens",
                "Draft tokens: guessed ahead by prompt lookup for the model to check (--draft-tokens).",
                stats.draft_tokens,
            ),
            (
                "pocketlm_draft_tokens_accepted",
                "Draft tokens the sampler picked: each saved a decoding step.",
                stats.draft_tokens_accepted,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self, engine):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pocketlm_requests",
            "HTTP requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "pocketlm_request_duration_seconds",
            "Time from request start to the last byte sent.",
            ["route"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter("pocketlm_prompt_tokens", "Prompt tokens processed.", registry=self.registry)
        self.completion_tokens = Counter("pocketlm_completion_tokens", "Tokens generated.", registry=self.registry)
        self.cached_prompt_tokens = Counter(
            "pocketlm_prompt_tokens_cached",
            "Prompt tokens kept from an earlier request's prefix (not recomputed).",
            registry=self.registry,
        )
        self.ttft = Histogram(
            "pocketlm_time_to_first_token_seconds",
            "From submission to the first text of a request.",
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.itl = Histogram(
            "pocketlm_inter_token_latency_seconds",
            "Time between consecutive text deltas of one sample, per token.",
            buckets=_ITL_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(EngineCollector(engine))

    async def track(self, stream) -> AsyncIterator:
        """Pass a request's events through, timing first token and inter-token gaps, counting usage."""
        start = time.perf_counter()
        first = True
        last_seen: dict[int, float] = {}  # per sample index
        async for event in stream:
            now = time.perf_counter()
            if isinstance(event, TextDelta):
                if first:
                    self.ttft.observe(now - start)
                    first = False
                previous = last_seen.get(event.index)
                if previous is not None:
                    n_tokens = max(1, len(event.token_ids))
                    for _ in range(n_tokens):
                        self.itl.observe((now - previous) / n_tokens)
                last_seen[event.index] = now
            elif isinstance(event, SampleFinished):
                last_seen.pop(event.index, None)
            elif isinstance(event, Usage):
                self.prompt_tokens.inc(event.prompt_tokens)
                self.completion_tokens.inc(event.completion_tokens)
                self.cached_prompt_tokens.inc(event.cached_tokens)
            yield event
