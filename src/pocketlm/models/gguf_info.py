"""Read what a GGUF file says about its model, without loading the weights.

`pocketlm models` uses this to show size, quantization and context length, and
the loaders use it to reject a corrupt file with a clear message before
llama.cpp sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pocketlm.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    name: str
    architecture: str
    n_params: int
    quantization: str
    n_ctx_train: int
    n_layer: int
    n_embd: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    chat_template: str | None
    file_size: int

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """KV cache cost of one token (K and V, every layer) at f16."""
        return 2 * self.n_layer * self.n_head_kv * self.head_dim * bytes_per_value

    def estimate_ram(self, n_ctx: int) -> int:
        """Weights (memory-mapped) + KV cache for n_ctx tokens + ~10% compute buffers."""
        return int(self.file_size * 1.1 + self.kv_bytes_per_token() * n_ctx)


@lru_cache(maxsize=32)
def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header of a GGUF file; ModelLoadError if it is not a valid one."""
    from gguf import GGUFReader, LlamaFileType

    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad magic bytes); re-download or re-convert it")
    try:
        reader = GGUFReader(path, "r")
        meta = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.ggml.")}
        n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
        n_params = sum(int(t.n_elements) for t in reader.tensors)
    except (ValueError, KeyError, IndexError, OSError) as e:
        raise ModelLoadError(f"{path} is a damaged GGUF file ({e}); re-download or re-convert it") from None
    arch = meta.get("general.architecture", "unknown")
    n_embd = int(meta.get(f"{arch}.embedding_length", 0))
    n_head = int(meta.get(f"{arch}.attention.head_count", 1) or 1)
    file_type = meta.get("general.file_type")
    try:
        quant = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else "unknown"
    except ValueError:
        quant = f"type {file_type}"
    return GGUFInfo(
        path=path,
        name=str(meta.get("general.name", path.stem)),
        architecture=arch,
        n_params=n_params,
        quantization=quant,
        n_ctx_train=int(meta.get(f"{arch}.context_length", 0)),
        n_layer=int(meta.get(f"{arch}.block_count", 0)),
        n_embd=n_embd,
        n_head_kv=int(meta.get(f"{arch}.attention.head_count_kv", n_head) or n_head),
        head_dim=int(meta.get(f"{arch}.attention.key_length", n_embd // n_head)),
        n_vocab=n_vocab,
        chat_template=meta.get("tokenizer.chat_template"),
        file_size=path.stat().st_size,
    )
