"""Every knob of `pocketlm serve`, in one frozen object.

Each field is a command-line flag (``--max-body-bytes``) and an environment
variable named after the flag (``POCKETLM_MAX_BODY_BYTES``; ``--api-key`` ->
``POCKETLM_API_KEY``), both declared in ``commands.py``.
A field left at ``None`` means "use the engine's own default" (slots, queue,
limits), so defaults live in one place: ``pocketlm.engine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ENV_PREFIX = "POCKETLM_"


def env_name(name: str) -> str:
    """``max_body_bytes`` -> ``POCKETLM_MAX_BODY_BYTES``."""
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # None: the embedded default model
    backend: str | None = None  # None: chosen from the model's format
    host: str = "127.0.0.1"  # 0.0.0.0 inside containers
    port: int = 5000  # the seeds' Flask port
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    cors_origins: tuple[str, ...] = ()  # empty: CORS off
    max_body_bytes: int = 1 << 20  # 1 MiB: far more than any prompt that fits the context
    max_prompt_tokens: int | None = None  # None: whatever fits the model's context
    max_new_tokens: int | None = None  # per sample; None: engine's Limits default
    max_n: int | None = None
    max_stop: int | None = None
    max_queue: int | None = None  # waiting requests beyond the busy slots
    slots: int | None = None  # sequences decoded together (continuous batching)
    n_ctx: int | None = None  # context of each slot (prompt + new tokens)
    threads: int | None = None  # CPU threads for the model; None: every core
    quantization: str | None = None  # GGUF type llama.cpp runs (requantized once, cached); None: the file's own
    allow_pickle: bool = False  # load .bin/.pt checkpoints (unpickling can run code); False: the env var decides
    trust_remote_code: bool = False  # run Python shipped with a HF model; False: the env var decides
    request_timeout: float = 600.0  # seconds from arrival to the last token
    log_format: Literal["text", "json"] = "text"
    grace_period: float = 30.0  # seconds SIGTERM waits for in-flight requests

    def engine_overrides(self) -> dict:
        """Keyword arguments for ``load_engine`` from the fields that were set."""
        from pocketlm.engine import Limits

        overrides: dict = {}
        if self.slots is not None:
            overrides["n_seq"] = self.slots
        if self.n_ctx is not None:
            overrides["n_ctx"] = self.n_ctx
        if self.threads is not None:
            overrides["n_threads"] = self.threads
        if self.quantization is not None:
            overrides["quantization"] = self.quantization
        if self.max_queue is not None:
            overrides["max_queue"] = self.max_queue
        for opt_in in ("allow_pickle", "trust_remote_code"):
            if getattr(self, opt_in):
                overrides[opt_in] = True
        limits = {
            name: value
            for name, value in (("max_new_tokens", self.max_new_tokens), ("max_n", self.max_n), ("max_stop", self.max_stop))
            if value is not None
        }
        if limits:
            overrides["limits"] = Limits(**limits)
        return overrides
