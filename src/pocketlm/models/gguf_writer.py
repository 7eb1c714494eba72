"""Writing GGUF files: a Hugging Face directory converted, or a GGUF requantized.

HF -> GGUF lets llama.cpp (several times faster than torch on a CPU) run models
that come out of transformers: GPT-2 / DistilGPT2 and the Llama family
(SmolLM2, TinyLlama, Llama 3). Tensor names come from the ``gguf`` package's
name maps; only what those maps cannot know is done here:

- GPT-2 stores its linear layers as ``Conv1D`` ([in, out]), GGUF wants [out, in];
- Llama's q/k projections are reordered from HF's "rotate half" RoPE layout to
  the interleaved one llama.cpp uses;
- the hyperparameters each architecture needs (the tokenizer is ``vocab``'s job).

GGUF -> GGUF of another type goes through llama.cpp's own quantizer. Both write
to a temporary path and rename at the end: a failed conversion never leaves a
file that looks complete.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from pocketlm.errors import ModelLoadError
from pocketlm.files import atomic_path
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.hf import HFDir, inspect_hf_dir
from pocketlm.models.quantization import CONVERT_QUANTIZATION, check_quantization, file_type
from pocketlm.models.vocab import add_tokenizer, fast_tokenizer
from pocketlm.settings import cores

CONVERTER_VERSION = "1"  # part of the cache key of a conversion: bump when the output of hf_to_gguf changes

# HF `model_type` -> GGUF architecture name. DistilGPT2 is a GPT-2; SmolLM2, TinyLlama and Llama 3 are Llamas.
ARCHITECTURES = {"gpt2": "gpt2", "llama": "llama"}


# ---------------------------------------------------------------- what converts


def architecture_converts(hf: HFDir) -> str | None:
    """Why ``hf`` cannot become a GGUF, or None if it can."""
    if hf.model_type not in ARCHITECTURES:
        return (
            f"architecture '{hf.architecture}' (model_type '{hf.model_type}') has no GGUF conversion in pocketlm "
            f"(supported: GPT-2/DistilGPT2 and Llama/SmolLM2/TinyLlama)"
        )
    c = hf.config
    if hf.model_type == "gpt2":
        if c.get("scale_attn_by_inverse_layer_idx") or c.get("reorder_and_upcast_attn"):
            return "this GPT-2 variant scales attention per layer, which llama.cpp does not implement"
        if c.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            return f"GPT-2 activation '{c.get('activation_function')}' differs from llama.cpp's tanh GELU"
    if hf.model_type == "llama":
        rope = _rope_parameters(c)
        if rope.get("rope_type", "default") not in ("default", "linear"):
            return f"RoPE scaling '{rope.get('rope_type')}' is not converted"
    return None


def check_convertible(hf: HFDir) -> None:
    """Raise the error `--backend llama.cpp` gives for a model llama.cpp cannot run."""
    reason = architecture_converts(hf)
    if reason:
        raise ModelLoadError(
            f"{hf.path}: {reason}, so it cannot run on llama.cpp; use `--backend torch` "
            "(any Hugging Face causal LM) instead"
        )


def _rope_parameters(config: dict) -> dict:
    # transformers 5 writes `rope_parameters`; older configs have rope_theta / rope_scaling at the top level.
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    return rope


# ---------------------------------------------------------------- HF -> GGUF


def hf_to_gguf(
    src: str | Path,
    dst: str | Path,
    quantization: str = CONVERT_QUANTIZATION,
    *,
    allow_pickle: bool = False,
    progress: bool = True,
) -> Path:
    """Convert the HF directory ``src`` into the GGUF file ``dst``; returns ``dst``."""
    import gguf

    check_quantization(quantization)
    hf = inspect_hf_dir(src, allow_pickle=allow_pickle)
    check_convertible(hf)
    tokenizer = fast_tokenizer(hf)
    dst = Path(dst)
    arch = ARCHITECTURES[hf.model_type]
    with atomic_path(dst) as tmp:
        _write_gguf(gguf.GGUFWriter(tmp, arch), hf, arch, tokenizer, quantization, progress)
    return dst


def _write_gguf(writer, hf: HFDir, arch: str, tokenizer, quantization: str, progress: bool) -> None:
    import gguf

    try:
        writer.add_name(hf.path.name)
        writer.add_file_type(file_type(quantization))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _HPARAMS[arch](writer, hf.config)
        add_tokenizer(writer, tokenizer, hf)
        for name, data, raw_type in _converted_tensors(hf, arch, quantization, progress):
            writer.add_tensor(name, data, raw_dtype=raw_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()


def _gpt2_hparams(w, c: dict) -> None:
    w.add_context_length(c["n_positions"])
    w.add_embedding_length(c["n_embd"])
    w.add_feed_forward_length(c.get("n_inner") or 4 * c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_head_count(c["n_head"])
    w.add_layer_norm_eps(c.get("layer_norm_epsilon", 1e-5))


def _llama_hparams(w, c: dict) -> None:
    import gguf

    n_head = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // n_head
    w.add_vocab_size(c["vocab_size"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_head_count(n_head)
    w.add_head_count_kv(c.get("num_key_value_heads") or n_head)
    w.add_layer_norm_rms_eps(c.get("rms_norm_eps", 1e-6))
    w.add_rope_dimension_count(head_dim)
    if head_dim != c["hidden_size"] // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    rope = _rope_parameters(c)
    w.add_rope_freq_base(float(rope["rope_theta"]))
    if rope.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))


_HPARAMS = {"gpt2": _gpt2_hparams, "llama": _llama_hparams}


def _read_tensors(hf: HFDir):
    """(name, float32 numpy array) for every tensor in the checkpoint, one at a time."""
    import torch

    if hf.pickle:  # only reached with allow_pickle; weights_only still refuses arbitrary objects
        for file in hf.weights:
            for name, t in torch.load(file, map_location="cpu", weights_only=True).items():
                yield name, t.float().numpy()
        return
    from safetensors import safe_open

    for file in hf.weights:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name).float().numpy()


def _converted_tensors(hf: HFDir, arch: str, quantization: str, progress: bool):
    """(gguf name, data, raw ggml type or None) in GGUF layout and the requested type."""
    import gguf
    from tqdm import tqdm

    c = hf.config
    n_layer = c.get("n_layer") or c["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2 if arch == "gpt2" else gguf.MODEL_ARCH.LLAMA, n_layer)
    tied = c.get("tie_word_embeddings", True)
    seen = set()
    for name, data in tqdm(
        list(_read_tensors(hf)), desc=f"converting to {quantization}", unit="tensor", disable=None if progress else True
    ):
        if name.endswith((".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")):
            continue  # GPT-2's causal-mask buffers and RoPE's cached frequencies: recomputed by llama.cpp
        if name == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ModelLoadError(
                f"{hf.path}: tensor '{name}' has no GGUF name for {arch}; this checkpoint has a "
                "layout pocketlm does not convert: use `--backend torch`"
            )
        data = _to_gguf_layout(arch, name, data, c)
        seen.add(new)
        yield (new, *_quantize(data, quantization))
    if "token_embd.weight" not in seen:
        raise ModelLoadError(f"{hf.path}: no token embedding found in the weights; the checkpoint is incomplete")


def _to_gguf_layout(arch: str, name: str, data: np.ndarray, c: dict) -> np.ndarray:
    if arch == "gpt2" and name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
        return np.ascontiguousarray(data.T)  # Conv1D keeps [in, out]
    if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
        n_head = c["num_attention_heads"]
        if name.endswith("k_proj.weight"):
            n_head = c.get("num_key_value_heads") or n_head
        return _interleave_rope_rows(data, n_head)
    return data


def _interleave_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder each head's rows from [x0..x(d/2-1), y0..y(d/2-1)] (HF) to [x0, y0, x1, y1, ...] (llama.cpp).

    HF rotates pairs (i, i + d/2) of a head; llama.cpp's default RoPE rotates
    pairs (2i, 2i + 1). Reordering the projection rows gives identical outputs.
    """
    out_dim = w.shape[0]
    return np.ascontiguousarray(
        w.reshape(n_head, 2, out_dim // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def _quantize(data: np.ndarray, quantization: str):
    """Vectors (norms, biases) stay f32; matrices get ``quantization``, or f16 if a row does not split
    into the type's blocks."""
    import gguf

    data = data.astype(np.float32)
    if data.ndim < 2 or quantization == "f32":
        return data, None
    if quantization != "f16":
        ggml_type = gguf.GGMLQuantizationType[quantization.upper()]
        block_size, _ = gguf.GGML_QUANT_SIZES[ggml_type]
        if data.shape[-1] % block_size == 0:
            return gguf.quants.quantize(data, ggml_type), ggml_type
    return data.astype(np.float16), None


# ---------------------------------------------------------------- GGUF -> GGUF


def requantize_gguf(src: str | Path, dst: str | Path, quantization: str, *, n_threads: int | None = None) -> Path:
    """Rewrite the GGUF file ``src`` with its weights in ``quantization``, through llama.cpp's own quantizer.

    Serving speed depends on the type: llama.cpp's Q4_0 and Q8_0 kernels are the
    most tuned for AVX2 CPUs, so a model shipped as Q4_1 decodes faster once
    requantized (see benchmarks/NOTES.md). Going down from a 4-bit type adds a
    second rounding: check it with `pocketlm eval` before serving the result.
    ``n_threads``: the CPU threads llama.cpp quantizes with (None: every core).
    """
    from pocketlm.llama_library import C

    check_quantization(quantization)
    src, dst = Path(src), Path(dst)
    read_gguf_info(src)  # clear errors for a missing / non-GGUF / damaged file
    params = C.llama_model_quantize_default_params()
    params.ftype = file_type(quantization)
    params.nthread = n_threads or cores()
    params.allow_requantize = True  # the source may itself be quantized (the embedded model is Q4_1)
    with atomic_path(dst) as tmp:
        if C.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise ModelLoadError(f"llama.cpp could not requantize {src} to {quantization}")
    return dst
