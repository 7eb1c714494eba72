"""Inference backends behind one interface, and the one way to open a model on one.

``llama.cpp`` is the fast path (GGUF files, and Hugging Face directories whose
architecture converts to GGUF); ``torch`` runs any Hugging Face causal LM. Which
one, and the files it opens, is decided before: ``pocketlm.models.prepare``.
"""

from __future__ import annotations

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.models.options import ModelOptions
from pocketlm.models.prepare import PreparedModel


def load_backend(model: PreparedModel, options: ModelOptions, *, slots: int, n_ctx: int) -> Backend:
    """Open the prepared ``model`` on the backend it was prepared for (``models.prepare``).

    ``slots`` slots of ``n_ctx`` tokens each fit in the KV cache at once;
    ``options`` gives the threads, llama.cpp's KV cache type and the torch opt-ins.
    """
    if model.backend == "llama.cpp":
        from pocketlm.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(
            model.path, name=model.name, slots=slots, n_ctx=n_ctx, threads=options.threads, kv_type=options.kv_type
        )
    if options.kv_type != "auto":
        from pocketlm.errors import InvalidParameter

        raise InvalidParameter(
            "kv_type",
            f"sets llama.cpp's KV cache, and {model.name} runs on torch (its architecture "
            "does not convert to GGUF): drop --kv-type",
        )
    from pocketlm.backends.torch_backend import TorchBackend

    return TorchBackend(
        model.path,
        name=model.name,
        slots=slots,
        n_ctx=n_ctx,
        threads=options.threads,
        allow_pickle=options.allow_pickle,
        trust_remote_code=options.trust_remote_code,
    )


__all__ = ["Backend", "Chunk", "ModelInfo", "load_backend"]
