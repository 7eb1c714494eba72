"""The same weights for the torch-based peers: the served GGUF dequantized to a safetensors dir.

`transformers serve` and the Flask app load Hugging Face directories. They get the GGUF that
pocketlm and llama.cpp serve, dequantized to fp32, so every server runs the same weights
(the torch peers just run them in fp32 instead of Q4_1). The directory is built once and cached.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CACHE = Path(os.environ.get("POCKETLM_BENCH_CACHE", Path.home() / ".cache" / "pocketlm-bench"))


def hf_dir_for(gguf: Path, cache: Path = CACHE) -> Path:
    """The cached HF directory for `gguf`, built on first use with pocketlm's own GGUF -> HF conversion."""
    from pocketlm.models.gguf_to_hf import gguf_to_hf

    gguf = Path(gguf)
    stat = gguf.stat()
    out = cache / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}-hf"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    shutil.rmtree(out, ignore_errors=True)  # left by an interrupted build
    return gguf_to_hf(gguf, out)  # writes a temporary directory, then renames it: never half a model


if __name__ == "__main__":
    from pocketlm.models import resolve

    print(hf_dir_for(resolve(None).path))
