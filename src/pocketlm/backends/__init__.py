"""Inference backends behind one interface, and the choice between them.

``llama.cpp`` is the fast path (GGUF files, and Hugging Face directories whose
architecture converts to GGUF); ``torch`` runs any Hugging Face causal LM.
"""

from __future__ import annotations

from dataclasses import replace

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.errors import InvalidParameter, ModelLoadError
from pocketlm.models.adapters import merged_for
from pocketlm.models.hf import is_adapter_dir
from pocketlm.models.registry import ModelRef

BACKENDS = ("llama.cpp", "torch")


def load_backend(ref: ModelRef, backend: str | None = None, *, n_seq: int = 16, n_ctx: int = 1024,
                 n_threads: int | None = None, quantization: str | None = None, allow_pickle: bool | None = None,
                 trust_remote_code: bool | None = None) -> Backend:
    """Load ``ref`` on the requested backend, or on the fastest one that can run it.

    ``quantization`` (f32, f16, q8_0, q4_0) is the GGUF type llama.cpp runs: a GGUF
    file is requantized to it, a Hugging Face directory converted to it (cached);
    None: the model's own (a built-in alias may name one, see ``EmbeddedModel.runs_as``).
    ``allow_pickle`` / ``trust_remote_code``: the opt-ins of ``pocketlm.models.hf``
    for a Hugging Face directory (None: their environment variables decide).
    """
    if backend not in (None, "auto", *BACKENDS):
        raise InvalidParameter("backend", f"must be one of auto, {', '.join(BACKENDS)}; got {backend!r}")
    quantization = quantization or ref.runs_as
    if ref.format == "hf" and is_adapter_dir(ref.path):  # served as base + adapter: merged once, cached
        ref = replace(ref, path=merged_for(ref.path, allow_pickle=allow_pickle))
    if ref.format == "gguf":
        if backend == "torch":
            raise ModelLoadError(f"{ref.path} is a GGUF file; convert it first (`pocketlm convert {ref.path} DIR`) "
                                 "to run it on the torch backend")
        if quantization:
            from pocketlm.models.convert import requantized

            return _llamacpp(requantized(ref.path, quantization), ref.name, n_seq, n_ctx, n_threads)
        return _llamacpp(ref.path, ref.name, n_seq, n_ctx, n_threads)
    if backend != "torch":
        from pocketlm.models.convert import gguf_for  # needs the torch extra

        gguf = gguf_for(ref, required=backend == "llama.cpp", qtype=quantization, allow_pickle=allow_pickle)
        if gguf is not None:
            return _llamacpp(gguf, ref.name, n_seq, n_ctx, n_threads)
    from pocketlm.backends.torch_backend import TorchBackend

    return TorchBackend(ref, n_seq=n_seq, n_ctx=n_ctx, n_threads=n_threads, allow_pickle=allow_pickle,
                        trust_remote_code=trust_remote_code)


def _llamacpp(path, name, n_seq, n_ctx, n_threads) -> Backend:
    from pocketlm.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(path, name=name, n_seq=n_seq, n_ctx=n_ctx, n_threads=n_threads)


__all__ = ["BACKENDS", "Backend", "Chunk", "ModelInfo", "load_backend"]
