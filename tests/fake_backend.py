"""A scripted backend: the engine and the HTTP app run in-process, in milliseconds, on known tokens.

Its vocabulary is the 256 single bytes plus two specials (BOS, EOS), so any text
tokenizes (one token per UTF-8 byte: "ç" is two tokens, as with real byte-level
tokenizers). Its "model" ignores what the prompt says: after any prompt, sample k
of every request reads ``script`` token by token and then ends with EOS. Each
position's logits put the scripted token far ahead (sampling at any temperature
picks it), ``ALTERNATIVE`` second, so logprobs and top alternatives are known too.
The KV cache is a list of token ids per slot, so copying and clearing slots are real.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.engine import Engine, EngineConfig, Limits

BOS, EOS = 256, 257
SPECIALS = {"<s>": BOS, "</s>": EOS}
N_VOCAB = 258
LEAD = 30.0  # the scripted token's logit over the alternative's: e^-30, no sampler strays
ALTERNATIVE = ord("?")  # always the second most likely token


class FakeBackend(Backend):
    def __init__(
        self,
        script: str = " Paris is lovely.",
        *,
        slots: int = 4,
        n_ctx: int = 128,
        chat_template: str | None = None,
        step_seconds: float = 0.0,
        row_seconds: float = 0.0,
        path: str = "",
    ):
        self.step_seconds = step_seconds  # > 0: a slow model, for timeouts and shutdowns mid-request
        self.row_seconds = row_seconds  # > 0: each row (token) adds to a pass, as on a real model
        self.passes: list[list[Chunk]] = []  # every forward's batch, in order: what the scheduler planned
        self.script = list(script.encode("utf-8")) + [EOS]
        self.slots, self.n_ctx = slots, n_ctx
        self.eog_ids = frozenset({EOS})
        self.info = ModelInfo(
            name="fake-model",
            path=path,
            architecture="fake",
            n_ctx_train=n_ctx,
            n_vocab=N_VOCAB,
            n_params=0,
            quantization="F32",
            chat_template=chat_template,
            bos_token="<s>",
            eos_token="</s>",
        )
        self.cache: list[list[int]] = [[] for _ in range(slots)]
        self.prompt_end: list[int | None] = [None] * slots  # where the scripted answer starts in each slot

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        ids = [BOS] if add_special else []
        while text:
            special = next((s for s in SPECIALS if add_special and text.startswith(s)), None)
            if special:
                ids.append(SPECIALS[special])
                text = text[len(special) :]
            else:
                ids.extend(text[0].encode("utf-8"))
                text = text[1:]
        return ids

    def token_bytes(self, token: int) -> bytes:
        return {BOS: b"", EOS: b""}.get(token) if token >= 256 else bytes([token])

    def forward(self, chunks: list[Chunk]) -> np.ndarray:
        self.passes.append(list(chunks))
        time.sleep(self.step_seconds + self.row_seconds * sum(len(c.tokens) for c in chunks))
        rows = []
        for chunk in chunks:
            cache = self.cache[chunk.slot]
            assert len(cache) == chunk.pos, (
                f"slot {chunk.slot}: cache holds {len(cache)} tokens, chunk starts at {chunk.pos}"
            )
            for i, token in enumerate(chunk.tokens):
                cache.append(token)
                if i >= len(chunk.tokens) - chunk.n_logits:
                    rows.append(self._logits(chunk.slot))
        return np.array(rows, dtype=np.float32).reshape(len(rows), N_VOCAB)

    def _logits(self, slot: int) -> np.ndarray:
        if self.prompt_end[slot] is None:  # the first logits asked for: the prompt ends here
            self.prompt_end[slot] = len(self.cache[slot])
        k = len(self.cache[slot]) - self.prompt_end[slot]
        row = np.zeros(N_VOCAB, dtype=np.float32)
        row[ALTERNATIVE] = LEAD / 2
        row[self.script[min(k, len(self.script) - 1)]] = LEAD
        return row

    def copy_slot(self, src: int, dst: int) -> None:
        self.cache[dst] = list(self.cache[src])
        self.prompt_end[dst] = self.prompt_end[src]

    def clear_slot(self, slot: int, keep: int = 0) -> None:
        self.cache[slot] = self.cache[slot][:keep]
        # Cut back into the prompt: a new request, whose prompt ends where it first asks for logits. Cut
        # within the answer (rejected draft tokens): the same answer goes on.
        if self.prompt_end[slot] is None or keep <= self.prompt_end[slot]:
            self.prompt_end[slot] = None


@contextlib.contextmanager
def fake_engine(
    script: str = " Paris is lovely.",
    *,
    slots: int = 4,
    n_ctx: int = 128,
    step_seconds: float = 0.0,
    row_seconds: float = 0.0,
    max_queue: int = EngineConfig.max_queue,
    path: str = "",
    **limits,
):
    """A started engine on a FakeBackend; ``limits`` fill ``Limits`` (max_prompt_tokens=..., max_n=...).

    ``path``: the model directory ``engine.info.path`` names (what the inspection routes open on torch)."""
    backend = FakeBackend(
        script, slots=slots, n_ctx=n_ctx, step_seconds=step_seconds, row_seconds=row_seconds, path=path
    )
    engine = Engine(backend, EngineConfig(slots=slots, n_ctx=n_ctx, max_queue=max_queue, limits=Limits(**limits)))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop(0)
