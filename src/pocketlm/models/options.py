"""How to load a model: the settings every command that loads one shares, declared once.

``pocketlm serve``, ``generate``, ``chat``, ``eval``, ``finetune``, ``convert``
(and the packages' commands) all take the same flags with the same names and
environment variables (``--model`` is ``POCKETLM_MODEL``). Each command picks the
flags that apply to it; what it gets is one ``ModelOptions``, with the opt-ins
already plain booleans: nothing below the command line reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketlm.errors import InvalidParameter
from pocketlm.models.quantization import QUANTIZATIONS
from pocketlm.settings import Declared, setting

BACKENDS = ("auto", "llama.cpp", "torch")
KV_TYPES = ("auto", "q8_0", "q8_0/f16", "f16")  # llama.cpp KV cache storage: one type, or keys/values


@dataclass(frozen=True)
class ModelOptions(Declared):
    model: str | None = setting(
        None,
        short="-m",
        help="Alias, .gguf file, Hugging Face directory or hub id (default: the embedded SmolLM2).",
    )
    backend: str = setting(
        "auto",
        choices=BACKENDS,
        help="Inference backend; auto: llama.cpp when the model converts to GGUF, else torch.",
    )
    quantization: str | None = setting(
        None,
        choices=QUANTIZATIONS,
        old=("POCKETLM_CONVERT_TYPE",),
        help="GGUF type llama.cpp runs, made once and cached. Default: q8_0 for the embedded models and for "
        "Hugging Face directories (converted), a .gguf file's own type for a .gguf file.",
    )
    threads: int | None = setting(
        None, low=1, help="CPU threads for the model (default: every core this process may run on)."
    )
    kv_type: str = setting(
        "auto",
        choices=KV_TYPES,
        help="How llama.cpp stores the KV cache (keys/values). auto: f16 where `make install` built pocketlm's "
        "attention kernel (an x86 CPU with AVX2), else q8_0/f16 (q8_0 keys, f16 values; f16 for heads not a "
        "multiple of 32 wide); f16 for `pocketlm eval`. q8_0: the least memory, slower at long contexts and many "
        "streams. f16: the fastest long prompts, the most memory; without pocketlm's kernel a seeded text past "
        "256 tokens may then change with what shares its passes, its own drafts included. Measured: BENCHMARKS.md.",
    )
    allow_pickle: bool = setting(
        False,
        help="Load .bin/.pt (pickle) checkpoints of a Hugging Face directory. Unpickling can run any code "
        "hidden in the file: only for files you trust. Default: safetensors only.",
    )
    trust_remote_code: bool = setting(
        False,
        help="Run the Python code a Hugging Face model ships (auto_map). It runs with your user's rights: "
        "read it first. Default: off.",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.kv_type != "auto" and self.backend == "torch":
            raise InvalidParameter(
                "kv_type",
                "sets llama.cpp's KV cache; the torch backend keeps its own: drop --kv-type or use --backend llama.cpp",
            )
