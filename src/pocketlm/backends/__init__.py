"""Inference backends behind one interface, and the choice between them.

``llama.cpp`` is the fast path (GGUF files, and Hugging Face directories whose
architecture converts to GGUF); ``torch`` runs any Hugging Face causal LM.
"""

from __future__ import annotations

from dataclasses import replace

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.models.adapters import merged_for
from pocketlm.models.hf import is_adapter_dir
from pocketlm.models.options import ModelOptions
from pocketlm.models.registry import ModelRef


def load_backend(ref: ModelRef, options: ModelOptions, *, slots: int, n_ctx: int) -> Backend:
    """Load ``ref`` on the backend ``options`` asks for, or on the fastest one that can run it.

    ``slots`` sequences of ``n_ctx`` tokens each fit in the KV cache at once.
    ``options.quantization`` is the GGUF type llama.cpp runs: a GGUF file is
    requantized to it, a Hugging Face directory converted to it (both cached);
    None: a built-in alias's choice (``EmbeddedModel.runs_as``), a GGUF file's own
    type, or q8_0 for a directory. A GGUF file asked to run on torch is converted
    to a Hugging Face directory once (cached), as a directory is converted to GGUF.
    """
    if ref.format == "hf" and is_adapter_dir(ref.path):  # served as base + adapter: merged once, cached
        ref = replace(ref, path=merged_for(ref.path, allow_pickle=options.allow_pickle))
    if ref.format == "gguf" and options.backend == "torch":
        from pocketlm.models.convert import hf_dir_for  # needs the torch extra

        ref = replace(ref, path=hf_dir_for(ref.path), format="hf")
    quantization = options.quantization or ref.runs_as
    if ref.format == "gguf":
        if quantization:
            from pocketlm.models.convert import requantized

            return _llamacpp(requantized(ref.path, quantization), ref.name, options, slots, n_ctx)
        return _llamacpp(ref.path, ref.name, options, slots, n_ctx)
    if options.backend != "torch":
        from pocketlm.models.convert import gguf_for  # needs the torch extra

        gguf = gguf_for(
            ref, required=options.backend == "llama.cpp", quantization=quantization, allow_pickle=options.allow_pickle
        )
        if gguf is not None:
            return _llamacpp(gguf, ref.name, options, slots, n_ctx)
    if options.kv_type != "auto":
        from pocketlm.errors import InvalidParameter

        raise InvalidParameter(
            "kv_type",
            f"sets llama.cpp's KV cache, and {ref.name} runs on torch (its architecture "
            "does not convert to GGUF): drop --kv-type",
        )
    from pocketlm.backends.torch_backend import TorchBackend

    return TorchBackend(
        ref.path,
        name=ref.name,
        slots=slots,
        n_ctx=n_ctx,
        threads=options.threads,
        allow_pickle=options.allow_pickle,
        trust_remote_code=options.trust_remote_code,
    )


def _llamacpp(path, name, options: ModelOptions, slots: int, n_ctx: int) -> Backend:
    from pocketlm.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(path, name=name, slots=slots, n_ctx=n_ctx, threads=options.threads, kv_type=options.kv_type)


__all__ = ["Backend", "Chunk", "ModelInfo", "load_backend"]
