"""Prometheus metrics, one registry per app (tests may run several apps in a process).

Counters and histograms are updated as requests run, each labelled with the ``model`` that answered. The
engine gauges (busy slots, queue depth) and draft counters are read from each loaded model's
``engine.stats()`` at scrape time, so they are never stale; so are the served models' loads, unloads and
load times, which the served-models table keeps (``pocketlm.service.served``): a model that is not loaded
has no engine series, and its counters stay.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from pocketlm.engine.outputs import SampleFinished, TextDelta, Usage

# Latency buckets sized for a small CPU model: milliseconds per token, up to a queue wait of minutes.
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ITL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# A model load: a fraction of a second for a small GGUF, tens of seconds for a conversion on first use.
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class EngineCollector:
    """Gauges and counters read live from each loaded model's engine, and the table's loads and unloads."""

    def __init__(self, models):
        self.models = models  # pocketlm.service.ServedModels

    def collect(self):
        yield from self._engines()
        yield from self._loads()

    def _engines(self):
        gauges = [
            ("pocketlm_slots", "Slots the engine decodes together (--slots).", "slots"),
            ("pocketlm_active_slots", "Slots busy with a request right now.", "active_slots"),
            ("pocketlm_queue_depth", "Requests waiting for a slot.", "queued"),
            ("pocketlm_running_requests", "Requests admitted and not finished.", "running_requests"),
        ]
        counters = [
            (
                "pocketlm_draft_tokens",
                "Draft tokens: guessed ahead by prompt lookup for the model to check (--draft-tokens).",
                "draft_tokens",
            ),
            (
                "pocketlm_draft_tokens_accepted",
                "Draft tokens the sampler picked: each saved a decoding step.",
                "draft_tokens_accepted",
            ),
        ]
        families = [GaugeMetricFamily(name, doc, labels=["model"]) for name, doc, _ in gauges]
        families += [CounterMetricFamily(name, doc, labels=["model"]) for name, doc, _ in counters]
        for served, engine in self.models.loaded():
            stats = engine.stats()
            for family, (_, _, field) in zip(families, gauges + counters):
                family.add_metric([served.id], getattr(stats, field))
        yield from families

    def _loads(self):
        loaded = GaugeMetricFamily("pocketlm_model_loaded", "1 while the model is loaded, else 0.", labels=["model"])
        loads = CounterMetricFamily("pocketlm_model_loads", "Times the model was loaded.", labels=["model"])
        unloads = CounterMetricFamily(
            "pocketlm_model_unloads",
            "Times the model was unloaded, by reason: keep_alive, max_loaded_models, memory_budget, shutdown.",
            labels=["model", "reason"],
        )
        seconds = HistogramMetricFamily(
            "pocketlm_model_load_seconds",
            "Time to load the model (conversion on first use included).",
            labels=["model"],
        )
        for model_id in self.models.models:
            n_loads, durations, by_reason = self.models.stats(model_id)
            loaded.add_metric([model_id], 1 if self.models.state(model_id) == "loaded" else 0)
            loads.add_metric([model_id], n_loads)
            for reason, count in sorted(by_reason.items()):
                unloads.add_metric([model_id, reason], count)
            buckets = [(str(b), sum(d <= b for d in durations)) for b in _LOAD_BUCKETS] + [("+Inf", len(durations))]
            seconds.add_metric([model_id], buckets, sum(durations))
        yield from (loaded, loads, unloads, seconds)


class Metrics:
    def __init__(self, models):
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
        self.prompt_tokens = Counter(
            "pocketlm_prompt_tokens", "Prompt tokens processed.", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "pocketlm_completion_tokens", "Tokens generated.", ["model"], registry=self.registry
        )
        self.cached_prompt_tokens = Counter(
            "pocketlm_prompt_tokens_cached",
            "Prompt tokens kept from an earlier request's prefix (not recomputed).",
            ["model"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "pocketlm_time_to_first_token_seconds",
            "From submission to the first text of a request.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.itl = Histogram(
            "pocketlm_inter_token_latency_seconds",
            "Time between consecutive text deltas of one sample, per token.",
            ["model"],
            buckets=_ITL_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(EngineCollector(models))

    async def track(self, stream, model: str) -> AsyncIterator:
        """Pass a request's events through, timing first token and inter-token gaps, counting usage, for ``model``."""
        start = time.perf_counter()
        first = True
        last_seen: dict[int, float] = {}  # per sample index
        ttft, itl = self.ttft.labels(model=model), self.itl.labels(model=model)
        async for event in stream:
            now = time.perf_counter()
            if isinstance(event, TextDelta):
                if first:
                    ttft.observe(now - start)
                    first = False
                previous = last_seen.get(event.index)
                if previous is not None:
                    n_tokens = max(1, len(event.token_ids))
                    for _ in range(n_tokens):
                        itl.observe((now - previous) / n_tokens)
                last_seen[event.index] = now
            elif isinstance(event, SampleFinished):
                last_seen.pop(event.index, None)
            elif isinstance(event, Usage):
                self.prompt_tokens.labels(model=model).inc(event.prompt_tokens)
                self.completion_tokens.labels(model=model).inc(event.completion_tokens)
                self.cached_prompt_tokens.labels(model=model).inc(event.cached_tokens)
            yield event
