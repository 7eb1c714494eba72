"""Read what a GGUF file says about its model, without loading the weights.

`pocketlm models` uses this to show size, quantization and context length, and
the loaders use it to reject a corrupt file with a clear message before
llama.cpp sees it.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
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
    metadata: dict = field(repr=False, compare=False, hash=False)  # scalar keys; long arrays skipped

    def kv_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        """KV cache cost of one token (K and V, every layer); 2 bytes per value is f16."""
        return 2 * self.n_layer * self.n_head_kv * self.head_dim * bytes_per_value

    def estimate_ram(self, n_ctx: int) -> int:
        """Weights (memory-mapped) + KV cache for n_ctx tokens + ~10% compute buffers."""
        return int(self.file_size * 1.1 + self.kv_bytes_per_token() * n_ctx)


@lru_cache(maxsize=32)
def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header of a GGUF file; ModelLoadError if it is not a valid, complete one."""
    from gguf import LlamaFileType

    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != GGUF_MAGIC:
                raise ModelLoadError(f"{path} is not a GGUF file (bad magic bytes); re-download or re-convert it")
            meta, n_vocab, n_params, data_end = _read_header(f)
    except OSError as e:
        raise ModelLoadError(f"cannot read model file {path}: {e.strerror}") from None
    except (struct.error, ValueError, KeyError, UnicodeDecodeError) as e:
        raise ModelLoadError(
            f"{path} is a damaged GGUF file ({e or 'header ends early'}); re-download or re-convert it"
        ) from None
    size = path.stat().st_size
    if data_end > size:
        raise ModelLoadError(
            f"{path} is truncated: its tensors need {data_end:,} bytes but the file has {size:,}; "
            "re-download or re-convert it"
        )
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
        file_size=size,
        metadata=meta,
    )


# GGUF value types: id -> struct format of one scalar (8 = string, 9 = array)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _read_header(f) -> tuple[dict, int, int, int]:
    """Metadata (scalars and short arrays), vocabulary size, parameter count, end of tensor data.

    Long arrays (the vocabulary, merges) are skipped, not decoded: that is what keeps a
    model listing or a load check fast.
    """
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    version, n_tensors, n_kv = _unpack(f, "<IQQ")
    if version < 2:
        raise ValueError(f"GGUF version {version} is too old")
    meta, n_vocab = {}, 0
    for _ in range(n_kv):
        key = _string(f)
        (vtype,) = _unpack(f, "<I")
        if vtype == 9:
            item_type, count = _unpack(f, "<IQ")
            if key == "tokenizer.ggml.tokens":
                n_vocab = count
            _skip_array(f, item_type, count)
        else:
            meta[key] = _value(f, vtype)
    alignment = int(meta.get("general.alignment", 32))
    n_params, data_size = 0, 0
    for _ in range(n_tensors):
        _string(f)
        (n_dims,) = _unpack(f, "<I")
        dims = _unpack(f, f"<{n_dims}Q")
        ttype, offset = _unpack(f, "<IQ")
        n = 1
        for d in dims:
            n *= d
        block, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
        n_params += n
        data_size = max(data_size, offset + n // block * nbytes)
    data_start = -(-f.tell() // alignment) * alignment
    return meta, n_vocab, n_params, data_start + data_size


_U64 = struct.Struct("<Q")


def _unpack(f, fmt: str):
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("header ends early")
    return struct.unpack(fmt, data)


def _string(f) -> str:
    (n,) = _unpack(f, "<Q")
    if n > 1 << 24:
        raise ValueError("implausible string length")
    return f.read(n).decode("utf-8")


def _value(f, vtype: int):
    if vtype == 8:
        return _string(f)
    return _unpack(f, "<" + _SCALARS[vtype])[0]


def _skip_array(f, item_type: int, count: int) -> None:
    if item_type == 8:
        # Walk the length prefixes in a memory map: one read per string made the vocabulary and
        # merges of SmolLM2 (98k strings) most of a model's start-up (benchmarks/NOTES.md, "start-up").
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos, length = f.tell(), _U64.unpack_from
            for _ in range(count):
                pos += 8 + length(mm, pos)[0]  # struct.error past the end: a damaged file
            if pos > len(mm):
                raise ValueError("header ends early")
        f.seek(pos)
    else:
        f.seek(struct.calcsize("<" + _SCALARS[item_type]) * count, 1)
