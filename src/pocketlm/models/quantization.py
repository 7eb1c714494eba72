"""The GGUF types pocketlm writes, and its two defaults: what llama.cpp runs, and what `convert` writes.

Two defaults because there are two jobs:

- ``RUN_QUANTIZATION``: the type llama.cpp runs a model as when ``--quantization`` does not say.
  A Hugging Face directory is converted to it and the embedded models (SmolLM2 shipped as Q4_1,
  Gemma 3 as Q4_K_M) are requantized to it, once, into the cache; a ``.gguf`` file named by path
  runs as it is. q8_0 is within noise of f16's quality at half its bytes per token, it is one of
  llama.cpp's fastest CPU types (benchmarks/NOTES.md, "Levers"), and llama.cpp computes a q8_0 row
  the same in a pass of any size, which keeps a seeded text the same alone or batched (measured:
  its kernels for f16 and bf16 take another path from 2 rows, for Q4_K from 4, which round differently).
- ``CONVERT_QUANTIZATION``: the type ``pocketlm convert`` writes when not told: f16, near-exact,
  so any other type can be made from the file later without a second rounding.
"""

from __future__ import annotations

from pocketlm.errors import InvalidParameter

QUANTIZATIONS = ("f32", "f16", "q8_0", "q4_0")
BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}  # q8_0, q4_0: blocks of 32 + a scale
RUN_QUANTIZATION = "q8_0"
CONVERT_QUANTIZATION = "f16"


def check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise InvalidParameter("quantization", f"must be one of {', '.join(QUANTIZATIONS)}; got {quantization!r}")


def file_type(quantization: str):
    """The ``gguf.LlamaFileType`` a GGUF of this type records in ``general.file_type``."""
    from gguf import LlamaFileType

    check_quantization(quantization)
    return LlamaFileType.ALL_F32 if quantization == "f32" else LlamaFileType[f"MOSTLY_{quantization.upper()}"]
