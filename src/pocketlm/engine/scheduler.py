"""Continuous batching: many requests share each forward pass of the model.

One engine thread runs the loop below; callers on an asyncio loop submit
requests and read their streams.

    every step:
      1. admit waiting requests while slots are free
      2. batch one token for every decoding sequence (and, while the batch is
         small, a few drafted tokens after it: engine/lookup.py), plus at most
         ``prefill_chunk`` prompt tokens of newly admitted requests
      3. one backend.forward() over that batch
      4. sample, keep the drafted tokens the sampler agrees with, turn tokens
         into text, check stops, stream deltas out
      5. finished or cancelled sequences leave at once, freeing their slot

Prompts are prefilled in chunks so a long prompt delays running streams by one
chunk per step instead of stalling them. A request with ``n`` samples prefills
its prompt once and then forks the cached prefix to ``n`` slots.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from pocketlm.backends.base import Backend, Chunk
from pocketlm.engine.chat import ChatTemplate
from pocketlm.engine.config import EngineConfig
from pocketlm.engine.lookup import Drafter
from pocketlm.engine.outputs import Completion, SampleFinished, TextDelta, TokenLogprob, TopLogprob, Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.sampling import SequenceSampler, log_softmax, sample
from pocketlm.engine.slots import SlotPool, common_prefix
from pocketlm.engine.text import TextAssembler
from pocketlm.errors import ContextLengthExceeded, EngineStopped, GenerationFailed, InvalidParameter, Overloaded

# Fewest prompt tokens worth copying from another slot (or waiting for): a copy moves the slot's whole
# KV buffer (~12 MB for SmolLM2 at 1,024 q8_0 cells), about the cost of computing a few tokens.
_SHARE_MIN = 16

# Drafted tokens fill a step up to this many rows. Measured with SmolLM2 on 2 cores (benchmarks/drafts.py):
# one sequence's step takes 9 ms with one row and 22 ms with four, so drafts pay at one stream when about half
# of them are kept; at 8 streams a second row per sequence costs 1.5x: the step's rows already keep the cores busy.
_DRAFT_ROWS = 8


@dataclass(frozen=True)
class EngineStats:
    slots: int
    active_slots: int
    queued: int
    running_requests: int
    drafted_tokens: int  # since start: tokens guessed by prompt lookup
    accepted_tokens: int  # of which the sampler picked (each saved one step)


class _Sequence:
    """One sample of a request, living in one slot."""

    def __init__(self, index: int, request: _Request, eog_ids):
        self.index = index
        self.request = request
        self.slot = -1
        self.pos = 0
        self.last_token = -1
        self.generated = 0
        self.fed: list[int] = []  # generated tokens whose KV is in the slot (decode inputs)
        self.done = False
        self.sampler = SequenceSampler(request.params, request.prompt, index, eog_ids)
        self.text = TextAssembler(request.params.stop)
        self.drafter = Drafter(request.prompt)


class _Request:
    def __init__(self, rid: int, prompt: list[int], params: SamplingParams, max_new: int, stream: RequestStream):
        self.id = rid
        self.prompt = prompt
        self.params = params
        self.max_new = max_new
        self.stream = stream
        self.prefilled = 0  # prompt tokens in the first sample's slot
        self.cached = 0  # of which were already there (a prefix kept from an earlier request)
        self.seqs: list[_Sequence] = []
        self.cancelled = False

    @property
    def completion_tokens(self) -> int:
        return sum(s.generated for s in self.seqs)


class RequestStream:
    """The caller's handle: an async iterator of engine events, cancellable."""

    def __init__(self, engine: Engine, prompt_ids: list[int]):
        self.prompt_ids = prompt_ids  # the prompt as the model reads it (after tokenizing and checks)
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._request: _Request | None = None
        self._finished = False

    def _push(self, events: list) -> None:
        """Called from the engine thread."""
        _push_all([(self, events)])

    def cancel(self) -> None:
        if self._request is not None and not self._finished:
            self._request.cancelled = True
            self._engine._wake()

    def __aiter__(self):
        return self._events()

    async def _events(self):
        try:
            while True:
                for event in await self._queue.get():
                    if isinstance(event, Exception):
                        self._finished = True
                        raise event
                    yield event
                    if isinstance(event, Usage):
                        self._finished = True
                        return
        finally:
            self.cancel()


def _push_all(items: list[tuple[RequestStream, list]]) -> None:
    """Hand events to their streams from the engine thread: one wake-up of each event loop per step.

    Each ``call_soon_threadsafe`` writes to the loop's self-pipe, a system call made while llama.cpp's
    threads wait; at 16 streams one per stream was 16 per step.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for stream, events in items:
        by_loop.setdefault(stream._loop, []).append((stream._queue, events))
    for loop, batch in by_loop.items():
        loop.call_soon_threadsafe(_deliver, batch)


def _deliver(batch: list[tuple[asyncio.Queue, list]]) -> None:
    for queue, events in batch:
        queue.put_nowait(events)


class Engine:
    def __init__(self, backend: Backend, config: EngineConfig = EngineConfig()):
        if config.slots > backend.slots:
            raise ValueError(f"engine wants {config.slots} slots but the backend holds {backend.slots}")
        self.backend = backend
        self.config = config
        self.info = backend.info
        self.n_ctx_seq = min(backend.info.n_ctx_train or backend.n_ctx, backend.n_ctx)
        self.chat_template = ChatTemplate(backend.info)
        # The most text one token stands for: bounds a prompt's token count from below before tokenizing it.
        self._max_token_chars = max(len(backend.token_bytes(t) or b"") for t in range(backend.info.n_vocab)) or 1
        self._ids = itertools.count()
        self._lock = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._prefilling: list[_Request] = []
        self._running: list[_Request] = []
        self._slots = SlotPool(config.slots, backend)
        self._drafted = self._accepted = 0
        self._accepting = True
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="pocketlm-engine", daemon=True)

    # ---- caller side (asyncio thread) ---------------------------------------------------------

    def start(self) -> Engine:
        self._thread.start()
        return self

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.backend.tokenize(text, add_special)

    def detokenize(self, tokens: list[int]) -> str:
        bad = [t for t in tokens if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.info.n_vocab]
        if bad:
            raise InvalidParameter("tokens", f"token ids must be integers in [0, {self.info.n_vocab}), got {bad[0]!r}")
        return self.backend.detokenize(tokens)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.chat_template.render(messages, add_generation_prompt)

    def chat_params(self, params: SamplingParams) -> SamplingParams:
        """``params`` plus the stop strings that end a turn of this model's chat transcript."""
        return replace(params, stop=tuple(params.stop) + self.chat_template.stop) if self.chat_template.stop else params

    def submit_chat(self, messages: list[dict], params: SamplingParams) -> RequestStream:
        """Render ``messages`` with the model's chat template and queue the assistant's answer."""
        return self.submit(self.render_chat(messages), self.chat_params(params))

    def submit(self, prompt: str | list[int], params: SamplingParams) -> RequestStream:
        """Queue a request; errors in its parameters are raised here, before anything runs."""
        params = params.validated(self.config.limits)
        if params.n > self.config.slots:
            raise InvalidParameter("n", f"must be <= {self.config.slots}, the number of slots this server runs")
        tokens = self.prompt_ids(prompt)
        room = self.n_ctx_seq - len(tokens)
        # Like OpenAI's servers, a max_new_tokens beyond the context ends with finish_reason "length".
        max_new = min(params.max_new_tokens or self.config.limits.max_new_tokens, room)
        stream = RequestStream(self, tokens)
        request = _Request(next(self._ids), tokens, params, max_new, stream)
        request.seqs = [_Sequence(i, request, self.backend.eog_ids) for i in range(params.n)]
        stream._request = request
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
        return stream

    async def complete(self, prompt: str | list[int], params: SamplingParams) -> Completion:
        """Run a request to the end and collect its samples."""
        completion = Completion.empty(params.n)
        async for event in self.submit(prompt, params):
            completion.add(event)
        return completion

    def stats(self) -> EngineStats:
        with self._lock:
            return EngineStats(
                slots=self.config.slots,
                active_slots=self.config.slots - len(self._slots),
                queued=len(self._waiting),
                running_requests=len(self._running) + len(self._prefilling),
                drafted_tokens=self._drafted,
                accepted_tokens=self._accepted,
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

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify()

    def prompt_ids(self, prompt: str | list[int]) -> list[int]:
        """The prompt's token ids, checked: known tokens, not empty, within --max-prompt-tokens and the context.

        Every prompt check lives here; errors name ``prompt`` (callers rename it to their client's spelling).
        """
        if isinstance(prompt, str):
            self._check_text_length(prompt)
            tokens = self.backend.tokenize(prompt)
        elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            tokens = list(prompt)
            bad = next((t for t in tokens if not 0 <= t < self.info.n_vocab), None)
            if bad is not None:
                raise InvalidParameter(
                    "prompt", f"token id {bad} is outside the vocabulary (0..{self.info.n_vocab - 1})"
                )
        else:
            raise InvalidParameter("prompt", "must be a string or a list of token ids")
        if not tokens:
            raise InvalidParameter("prompt", "is empty; give at least one character of text")
        limit = self.config.limits.max_prompt_tokens
        if limit is not None and len(tokens) > limit:
            raise ContextLengthExceeded(
                "prompt",
                f"has {len(tokens)} tokens; this server accepts at most {limit} (--max-prompt-tokens); shorten it",
            )
        if len(tokens) >= self.n_ctx_seq:
            raise ContextLengthExceeded(
                "prompt",
                f"has {len(tokens)} tokens but the context holds {self.n_ctx_seq}; "
                "shorten it, or start the server with a larger --n-ctx",
            )
        return tokens

    def _check_text_length(self, text: str) -> None:
        """Refuse, without tokenizing it, a text far too long to fit: tokenizing 1 MiB takes ~0.25 s on
        the event loop, time every other client would wait. One token stands for at most
        ``_max_token_chars`` characters; the factor 4 leaves room for tokenizers that normalize text."""
        limit = self.config.limits.max_prompt_tokens
        ceiling = min(self.n_ctx_seq, limit) if limit is not None else self.n_ctx_seq
        if len(text) > 4 * self._max_token_chars * ceiling:
            where = "this server accepts (--max-prompt-tokens)" if ceiling != self.n_ctx_seq else "the context holds"
            raise ContextLengthExceeded(
                "prompt", f"has {len(text)} characters, far more than the {ceiling} tokens {where}; shorten it"
            )

    # ---- engine thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._stopped or self._waiting or self._prefilling or self._running):
                    self._lock.wait()
                if self._stopped and not (self._waiting or self._prefilling or self._running):
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
            r.stream._push([Usage(len(r.prompt), 0)])

    def _admit(self) -> None:
        """FIFO: the oldest waiting request goes first once it has a slot for each sample."""
        while self._waiting and len(self._slots) >= self._waiting[0].params.n:
            r = self._waiting.popleft()
            self._prefilling.append(r)  # from here on a failure ends it through _fail_all
            first, *others = r.seqs
            first.slot, r.cached = self._slots.take(r.prompt)
            r.prefilled = r.cached
            for s in others:
                s.slot = self._slots.take_empty()

    def _step(self) -> None:
        chunks, decoding, prefill_done = self._plan()
        if not chunks:
            self._retire()
            return
        logits = self.backend.forward(chunks)
        for s, _ in decoding:
            s.fed.append(s.last_token)  # its last token is now in the cache
            s.pos += 1
        row = 0
        drafted: list[tuple[_Sequence, list[int], int]] = []  # each sequence's draft and its first row
        for s, draft in decoding:
            drafted.append((s, draft, row))
            row += 1 + len(draft)
        picked = [(s, first) for s, _, first in drafted]
        for r in prefill_done:
            for s in r.seqs[1:]:
                self.backend.copy_sequence(r.seqs[0].slot, s.slot)
            for s in r.seqs:
                s.pos = len(r.prompt)
            picked.extend((s, row) for s in r.seqs)
            row += 1
        events: dict[_Request, list] = {}
        if picked:
            self._sample(logits, picked, events)
        self._check_drafts(logits, [d for d in drafted if d[1]], events)
        _push_all([(request.stream, out) for request, out in events.items() if out])
        self._retire()

    def _plan(self) -> tuple[list[Chunk], list[tuple[_Sequence, list[int]]], list[_Request]]:
        """This step's batch: one token (and maybe a draft) per decoding sequence, then a prefill budget."""
        deferred = self._share_prefixes()
        # Decode rows in slot order: llama.cpp reuses the previous step's compute graph only when
        # the same sequences come in the same order (a decode-only step at 16 streams: ~10% faster).
        seqs = sorted((s for r in self._running if not r.cancelled for s in r.seqs if not s.done), key=lambda s: s.slot)
        decoding = list(zip(seqs, self._drafts(seqs)))
        chunks = [Chunk(s.slot, [s.last_token, *draft], s.pos, 1 + len(draft)) for s, draft in decoding]
        budget = self.config.prefill_chunk
        prefill_done = []
        for r in self._prefilling:
            if budget <= 0:
                break
            if r.cancelled or r in deferred:
                continue
            take = min(budget, len(r.prompt) - r.prefilled)
            last = r.prefilled + take == len(r.prompt)
            chunks.append(Chunk(r.seqs[0].slot, r.prompt[r.prefilled : r.prefilled + take], r.prefilled, int(last)))
            r.prefilled += take
            budget -= take
            if last:
                prefill_done.append(r)
        with self._lock:
            for r in prefill_done:
                self._prefilling.remove(r)
                self._running.append(r)
        return chunks, decoding, prefill_done

    def _drafts(self, seqs: list[_Sequence]) -> list[list[int]]:
        """Each decoding sequence's draft, all of one length, within the step's spare rows and each one's limits.

        llama.cpp computes a batch in one pass only when every sequence brings as many rows (each slot's
        cache is a stream of its own, and a pass takes an equal share from each): so a step drafts only
        when every sequence has a guess, each as long as the shortest. At 4 streams, drafts of unequal
        length split steps in two and made them slower than no drafts at all (benchmarks/NOTES.md).
        """
        if not seqs:
            return []
        most = min(self.config.draft_tokens, (_DRAFT_ROWS - len(seqs)) // len(seqs))
        drafts = [
            s.drafter.draft(min(most, s.request.max_new - s.generated - 1, self.n_ctx_seq - s.pos - 1)) for s in seqs
        ]
        k = min(map(len, drafts))
        return [d[:k] for d in drafts]

    def _check_drafts(self, logits: np.ndarray, drafted: list[tuple[_Sequence, list[int], int]], events: dict) -> None:
        """Keep each draft's tokens for as long as the sampler picks them; forget the cache of the rest.

        Row ``j + 1`` of a drafted sequence was computed after draft token ``j``: it is sampled only
        when the token sampled from row ``j`` was that draft token, so every token kept is the
        sequence's own choice and its sampler draws exactly as often as without drafting.
        """
        start = {s: s.pos for s, _, _ in drafted}
        live, j = drafted, 0
        while live := [(s, d, row) for s, d, row in live if j < len(d) and not s.done and s.last_token == d[j]]:
            for s, d, _ in live:
                s.fed.append(d[j])  # the draft token's cache entry is now the sequence's own
                s.pos += 1
            j += 1
            self._sample(logits, [(s, row + j) for s, _, row in live], events)
        for s, draft, _ in drafted:
            accepted = s.pos - start[s]
            s.drafter.checked(len(draft), accepted)
            if accepted < len(draft):
                self.backend.clear_sequence(s.slot, s.pos)
            self._drafted += len(draft)
            self._accepted += accepted

    def _share_prefixes(self) -> set[_Request]:
        """Start requests from a prefix another busy slot already holds; defer those that will soon find one.

        Free slots' prefixes are taken at admission (SlotPool). Here the sources are the busy slots:
        when 16 chat requests with one system prompt arrive together, the first prefills it and the
        others copy its KV (one memory copy per slot, ~ms) instead of each computing ~400 tokens.
        A request whose prompt shares more with a request ahead of it that is still prefilling waits
        for that one, rather than computing the same tokens a second time. Run before this step's
        chunks are planned, so every source position counted here is already in its slot's cache.
        """
        fresh = [r for r in self._prefilling if r.prefilled == r.cached and not r.cancelled]
        if not fresh:
            return set()
        held = [(s.slot, self._held(r, s)) for r in self._running if not r.cancelled for s in r.seqs]
        held += [(r.seqs[0].slot, r.prompt[: r.prefilled]) for r in self._prefilling if r.prefilled and not r.cancelled]
        deferred: set[_Request] = set()
        for r in fresh:
            limit = len(r.prompt) - 1  # the last prompt token is always computed: its logits pick the first token
            slot, n = max(
                ((slot, min(common_prefix(toks, r.prompt), limit)) for slot, toks in held if slot != r.seqs[0].slot),
                key=lambda x: x[1],
                default=(-1, 0),
            )
            ahead = self._prefilling[: self._prefilling.index(r)]
            coming = max(
                (min(common_prefix(o.prompt, r.prompt), limit) for o in ahead if o not in deferred and not o.cancelled),
                default=0,
            )
            if coming >= max(n, r.prefilled) + _SHARE_MIN:
                deferred.add(r)
            elif n >= r.prefilled + _SHARE_MIN:
                self.backend.copy_sequence(slot, r.seqs[0].slot)
                self.backend.clear_sequence(r.seqs[0].slot, n)
                r.prefilled = r.cached = n
                held.append((r.seqs[0].slot, r.prompt[:n]))
        return deferred

    def _sample(self, logits: np.ndarray, picked: list[tuple[_Sequence, int]], events: dict) -> None:
        """Sample a token for each sequence from its row and take it in, adding text events to ``events``."""
        seqs = [s for s, _ in picked]
        rows = logits[[row for _, row in picked]]
        want_logprobs = [s for s in seqs if s.sampler.params.logprobs is not None]
        logprob_rows = log_softmax(rows) if want_logprobs else None  # of the raw model logits
        tokens = sample(rows, [s.sampler for s in seqs])
        for i, (s, token) in enumerate(zip(seqs, tokens.tolist())):
            k = s.sampler.params.logprobs
            lp = self._logprob(token, logprob_rows[i], k) if k is not None else None
            self._advance(s.request, s, token, lp, events.setdefault(s.request, []))

    def _advance(self, r: _Request, s: _Sequence, token: int, lp: TokenLogprob | None, out: list) -> None:
        """Take a sampled token into sequence ``s``: text, stop strings, limits."""
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
        elif s.generated >= r.max_new or s.pos >= self.n_ctx_seq:
            self._finish(s, "length", None, out)

    def _finish(self, s: _Sequence, reason: str, stop: str | None, out: list) -> None:
        tail = "" if stop is not None else s.text.flush()
        if tail:
            out.append(TextDelta(s.index, tail))
        s.done = True
        out.append(SampleFinished(s.index, reason, stop))

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
                for r in [r for r in group if r.cancelled or all(s.done for s in r.seqs)]:
                    group.remove(r)
                    self._release(r)
                    r.stream._push([Usage(len(r.prompt), r.completion_tokens, r.cached)])

    def _release(self, r: _Request, failed: bool = False) -> None:
        for s in r.seqs:
            if s.slot >= 0:  # a failure during admission can leave samples without a slot
                self._slots.give_back(s.slot, [] if failed else self._held(r, s))  # after a failure: trust nothing

    @staticmethod
    def _held(r: _Request, s: _Sequence) -> list[int]:
        """The tokens whose KV sits in ``s``'s slot: what a later prompt may reuse."""
        if s.pos == 0:  # not decoding yet: only the first sample's slot has (part of) the prompt
            return r.prompt[: r.prefilled] if s is r.seqs[0] else []
        return r.prompt + s.fed[: s.pos - len(r.prompt)]

    def _fail_all(self, error: Exception) -> None:
        with self._lock:
            for group in (self._running, self._prefilling):
                for r in list(group):
                    group.remove(r)
                    self._release(r, failed=True)
                    r.stream._push([error])


def _show(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
