"""Hugging Face directory <-> GGUF file.

HF -> GGUF lets llama.cpp (several times faster than torch on a CPU) run models
that come out of transformers: GPT-2 / DistilGPT2 and the Llama family
(SmolLM2, TinyLlama, Llama 3). Tensor names come from the ``gguf`` package's
name maps; only what those maps cannot know is done here:

- GPT-2 stores its linear layers as ``Conv1D`` ([in, out]), GGUF wants [out, in];
- Llama's q/k projections are reordered from HF's "rotate half" RoPE layout to
  the interleaved one llama.cpp uses;
- the tokenizer: byte-level BPE (GPT-2 style) or SentencePiece-style BPE with
  byte fallback, its pre-tokenizer name, special tokens and chat template.

GGUF -> HF goes through transformers (which dequantizes to fp32), so GGUF models
can be fine-tuned and inspected. Both directions write to a temporary path and
rename at the end: a failed conversion never leaves a file that looks complete.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketlm.errors import InvalidParameter, ModelLoadError
from pocketlm.files import atomic_path, cache_dir, cache_key, cached, entry_intact, remove_entry, write_text
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.hf import HFDir, inspect_hf_dir, model_files

log = logging.getLogger("pocketlm.models")

QUANTIZATIONS = ("f32", "f16", "q8_0", "q4_0")
CONVERTER_VERSION = "1"  # part of the cache key: bump when the output of hf_to_gguf changes
# What a Hugging Face directory becomes for llama.cpp unless --quantization says otherwise:
# q8_0 is within noise of f16 quality at half the bytes per token.
DEFAULT_QUANTIZATION = "q8_0"

# HF `model_type` -> GGUF architecture name. DistilGPT2 is a GPT-2; SmolLM2, TinyLlama and Llama 3 are Llamas.
ARCHITECTURES = {"gpt2": "gpt2", "llama": "llama"}

# Byte-level pre-tokenizers we recognise, by the name llama.cpp knows them under.
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# ---------------------------------------------------------------- what converts


def check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise InvalidParameter("quantization", f"must be one of {', '.join(QUANTIZATIONS)}; got {quantization!r}")


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
    src: str | Path, dst: str | Path, quantization: str = "f16", *, allow_pickle: bool = False, progress: bool = True
) -> Path:
    """Convert the HF directory ``src`` into the GGUF file ``dst``; returns ``dst``."""
    import gguf

    check_quantization(quantization)
    hf = inspect_hf_dir(src, allow_pickle=allow_pickle)
    check_convertible(hf)
    tokenizer = _load_tokenizer(hf)
    dst = Path(dst)
    arch = ARCHITECTURES[hf.model_type]
    with atomic_path(dst) as tmp:
        _write_gguf(gguf.GGUFWriter(tmp, arch), hf, arch, tokenizer, quantization, progress)
    return dst


def _write_gguf(writer, hf: HFDir, arch: str, tokenizer, quantization: str, progress: bool) -> None:
    import gguf

    try:
        writer.add_name(hf.path.name)
        writer.add_file_type(_FILE_TYPES[quantization])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _HPARAMS[arch](writer, hf.config)
        _add_tokenizer(writer, tokenizer, hf)
        for name, data, raw_type in _converted_tensors(hf, arch, quantization, progress):
            writer.add_tensor(name, data, raw_dtype=raw_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()


_FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}  # gguf.LlamaFileType values


def requantize_gguf(src: str | Path, dst: str | Path, quantization: str, *, n_threads: int | None = None) -> Path:
    """Rewrite the GGUF file ``src`` with its weights in ``quantization``, through llama.cpp's own quantizer.

    Serving speed depends on the type: llama.cpp's Q4_0 and Q8_0 kernels are the
    most tuned for AVX2 CPUs, so a model shipped as Q4_1 decodes faster once
    requantized (see benchmarks/NOTES.md). Going down from a 4-bit type adds a
    second rounding: check it with `pocketlm eval` before serving the result.
    """
    from pocketlm.llama_library import C

    check_quantization(quantization)
    src, dst = Path(src), Path(dst)
    read_gguf_info(src)  # clear errors for a missing / non-GGUF / damaged file
    params = C.llama_model_quantize_default_params()
    params.ftype = _FILE_TYPES[quantization]
    params.nthread = n_threads or os.cpu_count() or 1
    params.allow_requantize = True  # the source may itself be quantized (the embedded model is Q4_1)
    with atomic_path(dst) as tmp:
        if C.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise ModelLoadError(f"llama.cpp could not requantize {src} to {quantization}")
    return dst


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
    into 32-blocks."""
    import gguf

    data = data.astype(np.float32)
    if data.ndim < 2 or quantization == "f32":
        return data, None
    if quantization == "f16" or data.shape[-1] % 32:
        return data.astype(np.float16), None
    ggml_type = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[quantization]
    return gguf.quants.quantize(data, ggml_type), ggml_type


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Vocab:
    model: str  # "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE with byte fallback)
    pre: str | None
    tokens: list[str]
    types: list[int]
    scores: list[float] | None
    merges: list[str]
    add_space_prefix: bool


def _load_tokenizer(hf: HFDir):
    from pocketlm.models.hf import load_tokenizer

    tokenizer = load_tokenizer(hf)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{hf.path}: the tokenizer has no tokenizer.json form, which conversion needs; use `--backend torch`"
        )
    return tokenizer


def _add_tokenizer(w, tokenizer, hf: HFDir) -> None:
    vocab = read_vocab(tokenizer, hf)
    w.add_tokenizer_model(vocab.model)
    if vocab.pre:
        w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    if vocab.scores is not None:
        w.add_token_scores(vocab.scores)
    w.add_token_merges(vocab.merges)
    w.add_add_space_prefix(vocab.add_space_prefix)
    for kind in ("bos", "eos", "unk", "pad"):
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None and token_id < len(vocab.tokens):
            getattr(w, f"add_{kind}_token_id")(token_id)
    probe = tokenizer("a")["input_ids"]  # what the tokenizer adds around a text is what it means by add_bos/add_eos
    w.add_add_bos_token(tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id])
    eos = tokenizer.eos_token_id
    w.add_add_eos_token(eos is not None and len(probe) > 1 and probe[-1] == eos)
    if isinstance(tokenizer.chat_template, str):
        w.add_chat_template(tokenizer.chat_template)


def read_vocab(tokenizer, hf: HFDir) -> _Vocab:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ModelLoadError(
            f"{hf.path}: tokenizer type '{model.get('type')}' is not converted (only BPE); use `--backend torch`"
        )
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    n_vocab = max([*model["vocab"].values(), *added]) + 1
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]  # holes in the id space become unused placeholders
    types = [5] * n_vocab  # gguf.TokenType.UNUSED
    for text, i in model["vocab"].items():
        tokens[i], types[i] = text, 1  # NORMAL
    for i, a in added.items():
        tokens[i], types[i] = a["content"], 3 if a.get("special") else 4  # CONTROL / USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if model.get("byte_fallback"):
        return _sentencepiece_vocab(spec, tokens, types, merges, hf)
    if (spec.get("decoder") or {}).get("type") != "ByteLevel" or spec.get("normalizer"):
        raise ModelLoadError(
            f"{hf.path}: this BPE tokenizer is neither byte-level nor byte-fallback; use `--backend torch`"
        )
    return _Vocab("gpt2", pre_tokenizer_name(spec, hf), tokens, types, None, merges, False)


def _sentencepiece_vocab(spec, tokens, types, merges, hf) -> _Vocab:
    """TinyLlama-style tokenizers: SentencePiece BPE rebuilt by transformers as BPE with byte fallback.

    llama.cpp's SentencePiece tokenizer merges the adjacent pair whose result has
    the highest score, so a token's score is minus the rank of the merge that
    makes it: earlier merges win, as in BPE.
    """
    rank = {}
    for r, merge in enumerate(merges):
        rank.setdefault(merge.replace(" ", ""), r)
    scores = [-float(rank.get(t, len(merges))) if ty == 1 else 0.0 for t, ty in zip(tokens, types)]
    unk = spec["model"].get("unk_token")
    for i, t in enumerate(tokens):
        if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
            types[i] = 6  # BYTE
        elif t == unk:
            types[i] = 2  # UNKNOWN
    # Llama-2-era files prepend "▁" in the normalizer; transformers 5 rebuilds them with a Metaspace pre-tokenizer.
    text = json.dumps(spec.get("normalizer") or {}) + json.dumps(spec.get("pre_tokenizer") or {})
    prefix = any(
        marker in text for marker in ('"prepend": "\\u2581"', '"prepend_scheme": "always"', '"prepend_scheme": "first"')
    )
    return _Vocab("llama", None, tokens, types, scores, merges, prefix)


def pre_tokenizer_name(spec: dict, hf: HFDir) -> str:
    """llama.cpp's name for the byte-level pre-tokenizer described in tokenizer.json."""
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == _LLAMA3_REGEX:
        return "llama-bpe"
    raise ModelLoadError(
        f"{hf.path}: pre-tokenizer {json.dumps(pre)[:200]} is not one llama.cpp is known to "
        "reproduce; use `--backend torch`"
    )


def set_pre_tokenizer(tokenizer, pre: str | None) -> None:
    """Give an HF tokenizer built from a GGUF the pre-tokenizer its ``tokenizer.ggml.pre`` names.

    transformers reads GGUF byte-level tokenizers with a plain GPT-2 pre-tokenizer,
    whatever the GGUF says; SmolLM2's splits digits one by one, so without this
    "2024" would tokenize differently than in the original model.
    """
    from tokenizers import pre_tokenizers as P

    byte_level = P.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre == "smollm":
        tokenizer.backend_tokenizer.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True), byte_level])
    elif pre == "gpt-2":
        tokenizer.backend_tokenizer.pre_tokenizer = byte_level


# ---------------------------------------------------------------- GGUF -> HF


def gguf_to_hf(src: str | Path, dst: str | Path) -> Path:
    """Write the GGUF file ``src`` as an fp32 safetensors HF directory ``dst`` (which must not exist)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, dst = Path(src), Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InvalidParameter("dst", f"{dst} exists and is not empty; choose a new directory")
    info = read_gguf_info(src)  # clear errors for a missing / non-GGUF / damaged file
    try:
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    except Exception as e:
        raise ModelLoadError(f"transformers cannot read {src} (architecture '{info.architecture}'): {e}") from None
    set_pre_tokenizer(tokenizer, info.metadata.get("tokenizer.ggml.pre"))
    # The model remembers it came from a GGUF "quantizer", and save_pretrained refuses to serialise such a
    # model; the weights are plain fp32 now, so forget it.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(dst, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return dst


# ---------------------------------------------------------------- cached conversions


def hf_dir_for(gguf: str | Path) -> Path:
    """The dequantized (fp32) Hugging Face directory of a GGUF file, converted once and cached.

    For what needs transformers rather than llama.cpp: the torch backend,
    fine-tuning, looking inside the model. Keyed by the file's identity (see ``requantized``).
    """
    gguf = Path(gguf)
    dst = cache_dir(CONVERTED, f"{gguf.stem}-{_file_identity(gguf)[:16]}-hf")
    if entry_intact(dst):
        return dst

    def convert(scratch: Path) -> None:
        print(f"converting {gguf.name} to a Hugging Face directory (once; cached in {dst.parent})", file=sys.stderr)
        gguf_to_hf(gguf, scratch)

    cached(dst, convert, directory=True)
    _record_source(dst, gguf, "hf")
    return dst


def _file_identity(path: Path) -> str:
    """A cache key for a big file from its path, size and modification time.

    Hashing a GGUF's bytes would cost every start a read of the whole file; a
    replaced file (other size or time) gets a new key anyway.
    """
    stat = path.stat()
    return cache_key(text=("pocketlm-file", str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)))


CONVERTED = "converted"  # the cache's folder for conversions: $POCKETLM_CACHE/converted


def gguf_for(
    ref, *, required: bool = False, quantization: str | None = None, progress: bool = True, allow_pickle: bool = False
) -> Path | None:
    """The cached GGUF conversion of the HF model ``ref`` (a ModelRef or a path), converting on first use.

    None when the architecture does not convert (the caller falls back to
    torch); with ``required`` (``--backend llama.cpp``) that is an error instead.
    The cache is keyed by the content hash, so an edited model converts again.
    """
    quantization = quantization or DEFAULT_QUANTIZATION
    check_quantization(quantization)
    path = Path(getattr(ref, "path", ref))
    hf = inspect_hf_dir(path, allow_pickle=allow_pickle)
    if required:
        check_convertible(hf)
    elif architecture_converts(hf) is not None:
        return None
    key = cache_key(files=model_files(hf), text=(f"pocketlm-convert-{CONVERTER_VERSION}",))
    out = cache_dir(CONVERTED, f"{path.name}-{key[:16]}-{quantization}.gguf")
    if entry_intact(out):
        return out

    def convert(scratch: Path) -> None:
        if progress:
            print(
                f"converting {path.name} to GGUF {quantization} for llama.cpp (once; cached in {out.parent})",
                file=sys.stderr,
            )
        hf_to_gguf(path, scratch, quantization, allow_pickle=allow_pickle, progress=progress)

    try:
        cached(out, convert)
    except ModelLoadError:
        if required:
            raise
        return None  # e.g. an unusual tokenizer: torch can still run the model
    _record_source(out, path, quantization)
    return out


def _source_record(entry: Path) -> Path:
    return entry.with_name(entry.name.removesuffix(".gguf") + ".json")


def _record_source(entry: Path, source: Path, kind: str) -> None:
    """What a cached conversion was made from (for `pocketlm models`), replacing conversions it supersedes.

    Keys change when the source does (a reinstalled package, an edited model directory): the entries
    made from the same source path into the same kind before it changed can never be asked for again,
    and each is a whole model's size, so they go.
    """
    source_text = str(source.resolve())
    write_text(_source_record(entry), json.dumps({"source": source_text, "type": kind}))
    for record in entry.parent.glob("*.json"):
        if record.name.endswith(".integrity.json") or record == _source_record(entry):
            continue
        try:
            old = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if old == {"source": source_text, "type": kind}:
            stale = record.with_name(record.name.removesuffix(".json") + ("" if kind == "hf" else ".gguf"))
            log.info("removing %s: a conversion of %s before it changed", stale.name, source_text)
            remove_entry(stale)
            record.unlink(missing_ok=True)


def requantized(path: str | Path, quantization: str, *, progress: bool = True) -> Path:
    """The GGUF file ``path`` requantized to ``quantization``, cached; ``path`` itself when already of that type."""
    path = Path(path)
    check_quantization(quantization)
    if (read_gguf_info(path).quantization or "").lower() == quantization:
        return path
    out = cache_dir(CONVERTED, f"{path.stem}-{_file_identity(path)[:16]}-{quantization}.gguf")
    if entry_intact(out):
        return out

    def convert(scratch: Path) -> None:
        if progress:
            print(f"requantizing {path.name} to {quantization} (once; cached in {out.parent})", file=sys.stderr)
        requantize_gguf(path, scratch, quantization)

    cached(out, convert)
    _record_source(out, path, quantization)
    return out


def converted_models() -> list[tuple[Path, str]]:
    """(GGUF file, source directory) for every cached conversion, for `pocketlm models`."""
    rows = []
    for file in sorted(cache_dir(CONVERTED).glob("*.gguf")):
        try:
            source = json.loads(file.with_suffix(".json").read_text())["source"]
        except (OSError, ValueError, KeyError):
            source = "?"
        rows.append((file, source))
    return rows
