"""The generation engine: continuous batching, sampling and stop handling over a backend."""

from __future__ import annotations

from dataclasses import fields

from pocketlm.engine.outputs import Completion, Sample, SampleFinished, TextDelta, TokenLogprob, Usage
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.engine.scheduler import Engine, EngineConfig, EngineStats, RequestStream


def load_engine(model: str | None = None, backend: str | None = None, *, n_threads: int | None = None,
                quantization: str | None = None, allow_pickle: bool | None = None,
                trust_remote_code: bool | None = None, **config) -> Engine:
    """Resolve ``model``, load it on a backend and start an engine (``config``: EngineConfig fields).

    ``quantization``: the GGUF type llama.cpp should run (see ``load_backend``); None keeps the file's.
    ``allow_pickle`` / ``trust_remote_code``: opt-ins for Hugging Face directories (see ``load_backend``).
    """
    from pocketlm.backends import load_backend
    from pocketlm.models import resolve

    known = {f.name for f in fields(EngineConfig)}
    unknown = set(config) - known
    if unknown:
        raise TypeError(f"unknown engine options: {', '.join(sorted(unknown))}")
    cfg = EngineConfig(**config)
    ref = resolve(model)
    backend_ = load_backend(ref, backend, n_seq=cfg.n_seq, n_ctx=cfg.n_ctx, n_threads=n_threads,
                            quantization=quantization, allow_pickle=allow_pickle,
                            trust_remote_code=trust_remote_code)
    return Engine(backend_, cfg).start()


__all__ = [
    "Completion", "Engine", "EngineConfig", "EngineStats", "Limits", "RequestStream", "Sample", "SampleFinished",
    "SamplingParams", "TextDelta", "TokenLogprob", "Usage", "load_engine",
]
