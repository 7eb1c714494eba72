"""The engine's front: what callers ask of a model, checked before anything runs.

``Engine`` tokenizes and checks prompts, validates sampling parameters, compiles
grammars, renders chat transcripts, and hands each request to the scheduler (engine/scheduler.py), whose
thread batches every request's steps together. Errors in a request are raised here,
in the caller's thread, naming the parameter at fault; nothing reaches the step loop
that it could fail on.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from pocketlm.backends.base import Backend
from pocketlm.engine.chat import ChatTemplate
from pocketlm.engine.config import EngineConfig
from pocketlm.engine.constraints import CompiledGrammar, Grammar, Vocabulary
from pocketlm.engine.outputs import Completion
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.scheduler import EngineStats, Scheduler
from pocketlm.engine.streams import RequestStream
from pocketlm.engine.tools import Function, Tools
from pocketlm.errors import ContextLengthExceeded, InvalidParameter


class Engine:
    def __init__(self, backend: Backend, config: EngineConfig = EngineConfig()):
        if config.slots > backend.slots:
            raise ValueError(f"engine wants {config.slots} slots but the backend holds {backend.slots}")
        self.backend = backend
        self.config = config
        self.info = backend.info
        # The context of each slot as the model can use it: --n-ctx, capped by what the model was trained on.
        self.n_ctx = min(backend.info.n_ctx_train or backend.n_ctx, backend.n_ctx)
        self.chat_template = ChatTemplate(backend.info)
        # The most text one token stands for: bounds a prompt's token count from below before tokenizing it.
        self._max_token_chars = max(len(backend.token_bytes(t) or b"") for t in range(backend.info.n_vocab)) or 1
        self._scheduler = Scheduler(backend, config, self.n_ctx)
        self._vocabulary: Vocabulary | None = None  # for grammars: read from the token bytes on first use
        self._vocabulary_lock = threading.Lock()

    def start(self) -> Engine:
        self._scheduler.start()
        return self

    def stop(self, grace_period: float) -> None:
        """Refuse new work, let in-flight requests finish for up to ``grace_period`` seconds, cancel the rest."""
        self._scheduler.stop(grace_period)

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    # ---- requests -----------------------------------------------------------------------------

    def submit(self, prompt: str | list[int], params: SamplingParams) -> RequestStream:
        """Queue a request; errors in its parameters are raised here, before anything runs."""
        params = params.validated(self.config.limits)
        if params.n > self.config.slots:
            raise InvalidParameter("n", f"must be <= {self.config.slots}, the number of slots this server runs")
        tokens = self.prompt_ids(prompt)
        grammar = self.constrain(params.grammar) if params.grammar is not None else None
        room = self.n_ctx - len(tokens)
        # Like OpenAI's servers, a max_new_tokens beyond the context ends with finish_reason "length".
        asked = params.max_new_tokens if params.max_new_tokens is not None else self.config.limits.max_new_tokens
        return self._scheduler.submit(tokens, params, min(asked, room), grammar)

    def submit_chat(self, messages: list[dict], params: SamplingParams, tools: Tools | None = None) -> RequestStream:
        """Render ``messages`` with the model's chat template and queue the assistant's answer.

        With ``tools`` the prompt offers their functions and the answer follows their grammar (calls whose
        arguments follow each function's schema, or a text answer with "auto"; engine/tools.py)."""
        params = self.chat_params(params)
        if tools is not None:
            params = replace(params, grammar=tools.constrained(params.grammar))
        return self.submit(self.render_chat(messages, tools=tools.offered if tools else ()), params)

    async def complete(self, prompt: str | list[int], params: SamplingParams) -> Completion:
        """Run a request to the end and collect its samples."""
        completion = Completion.empty(params.n)
        async for event in self.submit(prompt, params):
            completion.add(event)
        return completion

    def constrain(self, grammar: Grammar) -> CompiledGrammar:
        """``grammar`` compiled for this model, or InvalidParameter naming its field.

        Compiled grammars are cached, so a caller on an event loop compiles in a worker thread first
        (``asyncio.to_thread``) and ``submit`` finds it ready. The first call also reads the vocabulary
        (0.2 s for SmolLM2, ~3 s for Gemma 3's 262k tokens); compiling itself takes milliseconds, and
        llguidance's fuel bounds it for hostile grammars (engine/constraints.py).
        """
        with self._vocabulary_lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary.from_backend(self.backend)
        return self._vocabulary.compile(grammar)

    # ---- text ---------------------------------------------------------------------------------

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.backend.tokenize(text, add_special)

    def detokenize(self, tokens: list[int]) -> str:
        bad = [t for t in tokens if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.info.n_vocab]
        if bad:
            raise InvalidParameter("tokens", f"token ids must be integers in [0, {self.info.n_vocab}), got {bad[0]!r}")
        return self.backend.detokenize(tokens)

    def render_chat(
        self, messages: list[dict], add_generation_prompt: bool = True, tools: tuple[Function, ...] = ()
    ) -> str:
        return self.chat_template.render(messages, add_generation_prompt, tools)

    def chat_params(self, params: SamplingParams) -> SamplingParams:
        """``params`` plus the stop strings that end a turn of this model's chat transcript."""
        return replace(params, stop=tuple(params.stop) + self.chat_template.stop) if self.chat_template.stop else params

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
        if len(tokens) >= self.n_ctx:
            raise ContextLengthExceeded(
                "prompt",
                f"has {len(tokens)} tokens but the context holds {self.n_ctx}; "
                "shorten it, or start the server with a larger --n-ctx",
            )
        return tokens

    def _check_text_length(self, text: str) -> None:
        """Refuse, without tokenizing it, a text far too long to fit: tokenizing a long text holds the event
        loop, time every other client would wait (RELIABILITY.md). One token stands for at most
        ``_max_token_chars`` characters; the factor 4 leaves room for tokenizers that normalize text."""
        limit = self.config.limits.max_prompt_tokens
        ceiling = min(self.n_ctx, limit) if limit is not None else self.n_ctx
        if len(text) > 4 * self._max_token_chars * ceiling:
            where = "this server accepts (--max-prompt-tokens)" if ceiling != self.n_ctx else "the context holds"
            raise ContextLengthExceeded(
                "prompt", f"has {len(text)} characters, far more than the {ceiling} tokens {where}; shorten it"
            )
