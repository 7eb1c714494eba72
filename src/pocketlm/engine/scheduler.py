"""Continuous batching: many requests share each forward pass of the model.

The scheduler's thread runs the loop below; callers on an asyncio loop queue
requests through ``Engine.submit`` and read their streams.

    every step:
      1. admit waiting requests while slots are free
      2. batch one token for every decoding sample (and, where it pays, a few
         draft tokens after it: engine/drafts.py), plus prompt tokens of newly
         admitted requests, as many as the step's prefill budget allows
      3. one backend.forward() over that batch, timed (engine/costs.py)
      4. sample, keep the draft tokens the sampler agrees with, turn tokens
         into text, check stops, stream deltas out
      5. finished or cancelled samples leave at once, freeing their slot

The prefill budget is what keeps running streams smooth (as Sarathi-Serve's
per-step token budget): while streams decode and fewer prompts wait than there
are streams, a step reads only as much of the prompts as keeps it within
``STALL`` times the decoding rows' own step, by the measured costs, so someone
else's long prompt slows each stream's tokens a little for a while instead of
stopping them for seconds. When nobody decodes, or when the prompts waiting
would start more streams than the step holds up, a step reads up to
``prefill_chunk`` prompt tokens at once: requests that arrive together start
together, in the largest passes. A request with ``n`` samples prefills its
prompt once and then copies the cached prefix to ``n`` slots. A prompt starts
from the longest prefix a slot already holds: a free slot's (engine/slots.py)
or a busy one's (engine/prefixes.py).

A request that asks for its prompt's log-probabilities (``prompt_logprobs``)
gets logits for every prompt row of the passes that read its prompt; it starts
from no cached prefix, since a cached token's logits were never kept.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from pocketlm.backends.base import Backend, Chunk
from pocketlm.engine.config import EngineConfig
from pocketlm.engine.constraints import CompiledGrammar
from pocketlm.engine.costs import StepCosts
from pocketlm.engine.drafts import step_drafts
from pocketlm.engine.outputs import PromptLogprobs, SampleFinished, TextDelta, TokenLogprob, TopLogprob, Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.prefixes import PrefixSharing
from pocketlm.engine.requests import _Request, _Sample
from pocketlm.engine.sampling import log_softmax, sample
from pocketlm.engine.slots import SlotPool
from pocketlm.engine.streams import RequestStream, send
from pocketlm.errors import EngineStopped, GenerationFailed, Overloaded, PocketLMError

# Most logits one step computes for scored prompts (64 MB of float32): a prompt's chunk gets at most this many
# rows divided by the vocabulary (341 for SmolLM2's 49k tokens, 64 for Gemma 3's 262k), not 512 x 262k floats.
SCORED_LOGITS = 1 << 24

# While streams decode, a step that reads someone's prompt may take at most this many times the decoding rows'
# own step (by the measured costs), and reads at least PREFILL_LEAST prompt tokens so that a prompt always advances.
STALL = 1.5
PREFILL_LEAST = 16


@dataclass(frozen=True)
class EngineStats:
    """The engine's counts at one moment, as /metrics reports them."""

    slots: int
    active_slots: int
    queued: int
    running_requests: int
    draft_tokens: int  # since start: tokens drafted by prompt lookup
    draft_tokens_accepted: int  # of which the sampler picked (each saved one step)


class Scheduler:
    """The step loop over one backend, on a thread of its own, and the queue that feeds it."""

    def __init__(self, backend: Backend, config: EngineConfig, n_ctx: int):
        self.backend = backend
        self.config = config
        self.n_ctx = n_ctx  # the most tokens one sample may hold: prompt + output
        self._lock = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._prefilling: list[_Request] = []
        self._running: list[_Request] = []
        self._slots = SlotPool(config.slots, backend)
        self._prefixes = PrefixSharing(backend)
        self._costs = StepCosts()
        self._score_rows = max(1, SCORED_LOGITS // backend.info.n_vocab)
        self._draft_tokens = self._draft_tokens_accepted = 0
        self._outbox: list = []  # events of the last step, handed over as the next pass starts (_hand_over)
        self._accepting = True
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="pocketlm-engine", daemon=True)

    # ---- caller side (asyncio thread) ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(
        self, prompt: list[int], params: SamplingParams, max_new: int, grammar: CompiledGrammar | None = None
    ) -> RequestStream:
        """Queue a checked request, or refuse it when the engine is stopping or the queue is full."""
        request = _Request(prompt, params, max_new, self.backend.eog_ids, self._cancel, grammar)
        with self._lock:
            if not self._accepting:
                raise EngineStopped("the server is shutting down and accepts no new requests")
            # Waiting requests that free slots will take at the next step are not queued for long.
            if len(self._waiting) >= self.config.max_queue + len(self._slots):
                raise Overloaded(
                    f"all {self.config.slots} slots are busy and {len(self._waiting)} requests are "
                    f"queued; retry shortly",
                    retry_after=1.0,
                )
            self._waiting.append(request)
            self._lock.notify()
        return request.stream

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                slots=self.config.slots,
                active_slots=self.config.slots - len(self._slots),
                queued=len(self._waiting),
                running_requests=len(self._running) + len(self._prefilling),
                draft_tokens=self._draft_tokens,
                draft_tokens_accepted=self._draft_tokens_accepted,
            )

    def stop(self, grace_period: float) -> None:
        """Refuse new work, let in-flight requests finish for up to ``grace_period`` seconds, cancel the rest."""
        with self._lock:
            self._accepting = False
        deadline = time.monotonic() + grace_period
        while self._busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            for r in itertools.chain(self._waiting, self._prefilling, self._running):
                r.cancelled = True
            self._stopped = True
            self._lock.notify()
        self._thread.join(timeout=10)

    def _busy(self) -> bool:
        with self._lock:
            return bool(self._waiting or self._prefilling or self._running)

    def _cancel(self, request: _Request) -> None:
        request.cancelled = True
        with self._lock:
            self._lock.notify()

    # ---- engine thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._stopped or self._waiting or self._prefilling or self._running):
                    self._hand_over()
                    self._lock.wait()
                if self._stopped and not (self._waiting or self._prefilling or self._running):
                    self._hand_over()
                    return
            try:
                with self._lock:
                    self._drop_cancelled_waiting()
                    self._admit()
                self._step()
            except Exception as e:  # a backend failure fails the requests in flight, not the server
                self._fail_all(e if isinstance(e, GenerationFailed) else GenerationFailed(f"generation failed: {e}"))

    def _drop_cancelled_waiting(self) -> None:
        for r in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(r)
            send([(r.stream, [Usage(len(r.prompt), 0)])])

    def _admit(self) -> None:
        """FIFO: the oldest waiting request goes first once it has a slot for each sample."""
        while self._waiting and len(self._slots) >= self._waiting[0].params.n:
            r = self._waiting.popleft()
            self._prefilling.append(r)  # from here on a failure ends it through _fail_all
            first, *others = r.samples
            if r.scored:  # a cached prefix has no logits: a scored prompt is read whole
                first.slot, r.cached = self._slots.take_empty(), 0
            else:
                first.slot, r.cached = self._slots.take(r.prompt)
            r.prefilled = r.cached
            for s in others:
                s.slot = self._slots.take_empty()

    def _step(self) -> None:
        chunks, decoding, prefills = self._plan()
        if not chunks:
            self._retire()
            self._hand_over()
            return
        self._hand_over()
        started = time.perf_counter()
        logits = self.backend.forward(chunks)
        self._costs.observe(sum(len(c.tokens) for c in chunks), time.perf_counter() - started)
        prefill_done = [r for r, chunk in prefills if chunk.pos + len(chunk.tokens) == len(r.prompt)]
        self._cached(decoding, prefill_done)
        drafted, row = _rows(decoding)
        events: dict[_Request, list] = {}
        picked = [(s, first) for s, _, first in drafted] + self._read_prompts(logits, row, prefills, events)
        if picked:
            self._sample(logits, picked, events)
        self._check_drafts(logits, [d for d in drafted if d[1]], events)
        self._outbox += [(request.stream, out) for request, out in events.items() if out]
        self._retire()

    def _hand_over(self) -> None:
        """Send the events of the last step to their streams.

        Called as the next pass starts, not as the events are made: the wake-up of the HTTP event loop
        (a thread that then wants the interpreter's lock, on two cores whose other one llama.cpp's worker
        holds) then falls in the pass, where the engine thread has let the lock go, instead of in the
        Python between passes, where it slowed sampling and planning (benchmarks/NOTES.md, issue 27).
        """
        if self._outbox:
            send(self._outbox)
            self._outbox = []

    def _plan(self) -> tuple[list[Chunk], list[tuple[_Sample, list[int]]], list[tuple[_Request, Chunk]]]:
        """This step's batch: one token (and maybe a draft) per decoding sample, then a prefill budget."""
        deferred = self._prefixes.share(self._prefilling, self._running)
        decoding = self._decoding()
        chunks = [Chunk(s.slot, [s.last_token, *draft], s.pos, 1 + len(draft)) for s, draft in decoding]
        prefills = self._prefill(self._prefill_budget(chunks), deferred)
        chunks += [chunk for _, chunk in prefills]
        with self._lock:
            for r, chunk in prefills:
                if chunk.pos + len(chunk.tokens) == len(r.prompt):
                    self._prefilling.remove(r)
                    self._running.append(r)
        return chunks, decoding, prefills

    def _decoding(self) -> list[tuple[_Sample, list[int]]]:
        """The samples decoding this step, each with its draft."""
        # Decode rows in slot order: llama.cpp reuses the previous step's compute graph only when the
        # same slots come in the same order (benchmarks/NOTES.md, "decode rows in slot order").
        samples = sorted(
            (s for r in self._running if not r.cancelled for s in r.samples if not s.done), key=lambda s: s.slot
        )
        # A draft fits in what the sample's token limit and context leave after the token it decodes anyway.
        wanted = [
            (s.drafter, min(s.request.max_new - s.generated - 1, self.n_ctx - s.pos - 1), _valid_prefix(s))
            for s in samples
        ]
        costs = self._costs if self.config.draft_policy == "measured" else None
        return list(zip(samples, step_drafts(wanted, self.config.draft_tokens, costs)))

    def _prefill_budget(self, chunks: list[Chunk]) -> int:
        """How many prompt tokens this step may read beside its decoding ``chunks`` (module docstring)."""
        decoding = len(chunks)
        if len(self._prefilling) > decoding:  # nobody decodes, or more streams start than the step holds up
            return self.config.prefill_chunk
        rows = sum(len(c.tokens) for c in chunks)
        alone = self._costs.estimate(rows)
        if alone is None:
            return PREFILL_LEAST
        return self._costs.rows_within(STALL * alone, rows + PREFILL_LEAST, rows + self.config.prefill_chunk) - rows

    def _prefill(self, budget: int, deferred: set[_Request]) -> list[tuple[_Request, Chunk]]:
        """Up to ``budget`` prompt tokens, oldest request first, as one chunk per request."""
        prefills = []
        for r in self._prefilling:
            if budget <= 0:
                break
            if r.cancelled or r in deferred:
                continue
            take = min(budget, len(r.prompt) - r.prefilled, self._score_rows if r.scored else budget)
            last = r.prefilled + take == len(r.prompt)
            tokens = r.prompt[r.prefilled : r.prefilled + take]
            # Logits for the last row of a prompt (its first new token), or for every row of a scored one.
            prefills.append((r, Chunk(r.samples[0].slot, tokens, r.prefilled, take if r.scored else int(last))))
            r.prefilled += take
            budget -= take
        return prefills

    def _cached(self, decoding: list[tuple[_Sample, list[int]]], prefill_done: list[_Request]) -> None:
        """Take in what the pass cached: each decoding sample's last token, and each prompt now whole,
        which the request's other samples get a copy of."""
        for s, _ in decoding:
            s.fed.append(s.last_token)
            s.pos += 1
        for r in prefill_done:
            for s in r.samples[1:]:
                self.backend.copy_slot(r.samples[0].slot, s.slot)
            for s in r.samples:
                s.pos = len(r.prompt)

    def _read_prompts(
        self, logits: np.ndarray, row: int, prefills: list[tuple[_Request, Chunk]], events: dict
    ) -> list[tuple[_Sample, int]]:
        """Score the prompt rows of this pass (from ``row`` on); return the row each sample of a prompt now
        read whole takes its first token from. A prompt with no tokens to generate ends here."""
        picked = []
        for r, chunk in prefills:
            if r.scored:
                self._score(r, chunk, logits[row : row + chunk.n_logits])
            row += chunk.n_logits
            if chunk.pos + len(chunk.tokens) < len(r.prompt):
                continue
            out = events.setdefault(r, [])
            if r.scored:
                out.append(PromptLogprobs(tuple(r.prompt_logprobs)))
            if r.max_new == 0:
                for s in r.samples:
                    self._finish(s, "length", None, out)
            else:
                picked.extend((s, row - 1) for s in r.samples)
        return picked

    def _score(self, r: _Request, chunk: Chunk, rows: np.ndarray) -> None:
        """Each prompt token's log-probability from the rows that predict it (row i: after ``chunk.tokens[i]``)."""
        k = r.params.prompt_logprobs
        if chunk.pos == 0:  # nothing predicts the first token
            piece = self.backend.token_bytes(r.prompt[0])
            r.prompt_logprobs.append(TokenLogprob(_show(piece), r.prompt[0], None, piece))
        targets = r.prompt[chunk.pos + 1 : chunk.pos + 1 + len(rows)]  # the prompt's last row predicts no prompt token
        if targets:
            scored = log_softmax(rows[: len(targets)])
            r.prompt_logprobs.extend(self._logprob(t, scored[i], k) for i, t in enumerate(targets))

    def _check_drafts(self, logits: np.ndarray, drafted: list[tuple[_Sample, list[int], int]], events: dict) -> None:
        """Keep each draft's tokens for as long as the sampler picks them; forget the cache of the rest.

        Row ``j + 1`` of a drafted sample was computed after draft token ``j``: it is sampled only
        when the token sampled from row ``j`` was that draft token, so every token kept is the
        sample's own choice and its sampler draws exactly as often as without drafting.
        """
        start = {s: s.pos for s, _, _ in drafted}
        live, j = drafted, 0
        while live := [(s, d, row) for s, d, row in live if j < len(d) and not s.done and s.last_token == d[j]]:
            for s, d, _ in live:
                s.fed.append(d[j])  # the draft token's cache entry is now the sample's own
                s.pos += 1
            j += 1
            self._sample(logits, [(s, row + j) for s, _, row in live], events)
        for s, draft, _ in drafted:
            accepted = s.pos - start[s]
            if accepted < len(draft):
                self.backend.clear_slot(s.slot, s.pos)
            self._draft_tokens += len(draft)
            self._draft_tokens_accepted += accepted

    def _sample(self, logits: np.ndarray, picked: list[tuple[_Sample, int]], events: dict) -> None:
        """Sample a token for each sample from its row and take it in, adding text events to ``events``."""
        samples = [s for s, _ in picked]
        rows = _rows_of(logits, [row for _, row in picked])
        want_logprobs = [s for s in samples if s.sampler.params.logprobs is not None]
        logprob_rows = log_softmax(rows) if want_logprobs else None  # of the raw model logits
        tokens = sample(rows, [s.sampler for s in samples])
        for i, (s, token) in enumerate(zip(samples, tokens.tolist())):
            error = s.sampler.constraint.error if s.sampler.constraint is not None else None
            if error is not None:  # its grammar ran out of fuel: this request fails, the batch goes on
                self._fail(s.request, error, events.setdefault(s.request, []))
                continue
            if s.done:  # another sample of a request that failed in this loop
                continue
            k = s.sampler.params.logprobs
            lp = self._logprob(token, logprob_rows[i], k) if k is not None else None
            self._advance(s.request, s, token, lp, events.setdefault(s.request, []))

    def _advance(self, r: _Request, s: _Sample, token: int, lp: TokenLogprob | None, out: list) -> None:
        """Take a sampled token into sample ``s``: text, stop strings, limits."""
        s.generated += 1
        if token in self.backend.eog_ids and not r.params.ignore_eos:
            # The end-of-generation token counts in usage, so it is reported too, with no text.
            out.append(TextDelta(s.index, "", (token,), (lp,) if lp else ()))
            self._finish(s, "stop", None, out)
            return
        s.last_token = token
        s.drafter.append(token)
        text, stop = s.text.feed(self.backend.token_bytes(token))
        if text or lp is not None:
            out.append(TextDelta(s.index, text, (token,), (lp,) if lp else ()))
        elif not stop:
            out.append(TextDelta(s.index, "", (token,)))
        if stop is not None:
            self._finish(s, "stop", stop, out)
        elif s.sampler.constraint is not None and s.sampler.constraint.must_end:
            self._finish(s, "stop", None, out)  # the output is complete: no pass just to sample its EOS
        elif s.generated >= r.max_new or s.pos >= self.n_ctx:
            self._finish(s, "length", None, out)

    def _finish(self, s: _Sample, reason: str, stop: str | None, out: list) -> None:
        tail = "" if stop is not None else s.text.flush()
        if tail:
            out.append(TextDelta(s.index, tail))
        s.done = True
        out.append(SampleFinished(s.index, reason, stop))

    def _fail(self, r: _Request, error: PocketLMError, out: list) -> None:
        """End request ``r`` alone with ``error`` (its stream raises it); its slots are freed when it retires."""
        for s in r.samples:
            s.done = True
        r.cancelled = True
        out.append(error)

    def _logprob(self, token: int, row: np.ndarray, k: int) -> TokenLogprob:
        piece = self.backend.token_bytes
        top: tuple[TopLogprob, ...] = ()
        if k:
            ids = np.argpartition(row, -k)[-k:]
            ids = ids[np.argsort(-row[ids], kind="stable")]
            top = tuple(TopLogprob(_show(piece(int(t))), int(t), float(row[t]), piece(int(t))) for t in ids)
        return TokenLogprob(_show(piece(token)), token, float(row[token]), piece(token), top)

    def _retire(self) -> None:
        """Free the slots of finished or cancelled requests; send their usage."""
        with self._lock:
            for group in (self._running, self._prefilling):
                for r in [r for r in group if r.cancelled or all(s.done for s in r.samples)]:
                    group.remove(r)
                    self._release(r)
                    self._outbox.append((r.stream, [Usage(len(r.prompt), r.completion_tokens, r.cached)]))

    def _release(self, r: _Request, failed: bool = False) -> None:
        for s in r.samples:
            if s.slot >= 0:  # a failure during admission can leave samples without a slot
                self._slots.give_back(s.slot, [] if failed else s.held())  # after a failure: trust nothing

    def _fail_all(self, error: Exception) -> None:
        self._hand_over()  # what the requests made before the failure reaches them first
        with self._lock:
            for group in (self._running, self._prefilling):
                for r in list(group):
                    group.remove(r)
                    self._release(r, failed=True)
                    send([(r.stream, [error])])


def _rows(decoding: list[tuple[_Sample, list[int]]]) -> tuple[list[tuple[_Sample, list[int], int]], int]:
    """Where each decoding sample's logits lie in the pass's output: its draft with its first row (the draft's
    rows follow it, and the first is the one it samples its next token from); and the first row after them."""
    row = 0
    drafted = []
    for s, draft in decoding:
        drafted.append((s, draft, row))
        row += 1 + len(draft)
    return drafted, row


def _valid_prefix(s: _Sample):
    """How many of a draft's tokens the sample's grammar allows in a row (None: it has no grammar)."""
    return s.sampler.constraint.valid_prefix if s.sampler.constraint is not None else None


def _rows_of(logits: np.ndarray, index: list[int]) -> np.ndarray:
    """``logits[index]``, to be sampled from (and changed) in place. The pass's buffer is the engine's until the
    next pass, so rows that follow one another are taken as they lie: a step of 16 decoding samples would
    otherwise copy 16 x 49k floats (3 MB) before sampling."""
    first = index[0]
    return logits[first : first + len(index)] if index == list(range(first, first + len(index))) else logits[index]


def _show(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
