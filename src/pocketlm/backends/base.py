"""The one small interface every inference backend implements.

The engine speaks only this: tokenize, run a forward pass over a batch of
per-slot chunks, read back logits, and manage each slot's KV cache. Sampling,
stop strings and streaming live in the engine, so a backend is just "tokens
in, logits out" and swapping llama.cpp for torch changes nothing above it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What the rest of pocketlm may know about a loaded model."""

    name: str  # the id clients use (alias, file stem or directory name)
    path: str
    architecture: str
    n_ctx_train: int
    n_vocab: int
    n_params: int
    quantization: str  # "Q4_1", "F16", "F32", ...
    chat_template: str | None
    bos_token: str
    eos_token: str
    kv_cache: str = ""  # how the serving KV cache is stored and its size, e.g. "q8_0, 200 MB for 16 x 1024 tokens"


@dataclass
class Chunk:
    """Tokens to append to one slot's KV cache in one forward pass.

    ``n_logits`` trailing positions get logits back: 0 for a prefill chunk
    that is not the last, 1 for decoding, ``len(tokens)`` for scoring text.
    """

    slot: int
    tokens: list[int]
    pos: int
    n_logits: int = 1


class Backend(ABC):
    info: ModelInfo
    slots: int  # slots the KV cache holds at once, each the tokens of one sample (or of a text being scored)
    n_ctx: int  # KV cache cells of each slot: the longest prompt + output one request may have
    eog_ids: frozenset[int]  # tokens that end generation (EOS, end-of-turn)

    @abstractmethod
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Text to ids; ``add_special`` adds BOS where the model expects one and parses special tokens."""

    @abstractmethod
    def token_bytes(self, token: int) -> bytes:
        """The raw bytes one token stands for (may be part of a UTF-8 character)."""

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    @abstractmethod
    def forward(self, chunks: list[Chunk]) -> np.ndarray:
        """Run one batch; return float32 logits, one row per requested position, in chunk order.

        The array may be a view of the backend's own buffer, valid until the next ``forward``; the engine
        samples from it in place (penalties and banned tokens change its rows), so it must be writable.
        """

    @abstractmethod
    def copy_slot(self, src: int, dst: int) -> None:
        """Make slot ``dst`` hold what slot ``src`` has cached (``n`` samples of one prompt, a shared prefix)."""

    @abstractmethod
    def clear_slot(self, slot: int, keep: int = 0) -> None:
        """Forget what ``slot`` has cached from position ``keep`` on (0: everything), so it can be reused."""

    def close(self) -> None:
        """Release native resources; the backend is unusable afterwards."""
        return None  # an optional hook: a backend that holds no native resources has nothing to release
