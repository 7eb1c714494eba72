"""How to load a model: the options every command that loads one shares, declared once.

``pocketlm serve``, ``generate``, ``chat``, ``eval``, ``finetune``, ``convert``
(and the packages' commands) all take the same flags with the same names and
environment variables (``--model`` is ``POCKETLM_MODEL``). Each command picks the
flags that apply to it; what it gets is one ``ModelOptions``, with the opt-ins
already plain booleans: nothing below the command line reads the environment.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass

import click

BACKENDS = ("auto", "llama.cpp", "torch")
KV_TYPES = ("auto", "q8_0", "q8_0/f16", "f16")  # llama.cpp KV cache storage: one type, or keys/values

ALLOW_PICKLE_HELP = (
    "Load .bin/.pt (pickle) checkpoints of a Hugging Face directory. Unpickling can run any code "
    "hidden in the file: only for files you trust. Default: safetensors only."
)
TRUST_REMOTE_CODE_HELP = (
    "Run the Python code a Hugging Face model ships (auto_map). It runs with your user's rights: "
    "read it first. Default: off."
)


@dataclass(frozen=True)
class ModelOptions:
    model: str | None = None  # alias, .gguf file, HF directory or hub id; None: the embedded default
    backend: str = "auto"  # auto: llama.cpp when the model converts to GGUF, else torch
    quantization: str | None = None  # GGUF type llama.cpp runs; None: see QUANTIZATION_HELP
    threads: int | None = None  # CPU threads for the model; None: every core
    kv_type: str = "auto"  # llama.cpp's KV cache storage; see KV_TYPE_HELP
    allow_pickle: bool = False
    trust_remote_code: bool = False

    def __post_init__(self):
        from pocketlm.errors import InvalidParameter

        if self.backend not in BACKENDS:
            raise InvalidParameter("backend", f"must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.kv_type not in KV_TYPES:
            raise InvalidParameter("kv_type", f"must be one of {', '.join(KV_TYPES)}; got {self.kv_type!r}")
        if self.kv_type != "auto" and self.backend == "torch":
            raise InvalidParameter(
                "kv_type",
                "sets llama.cpp's KV cache; the torch backend keeps its own: drop --kv-type or use --backend llama.cpp",
            )


QUANTIZATION_HELP = (
    "GGUF type llama.cpp runs, made once and cached. Default: q8_0 for the embedded SmolLM2 and for "
    "Hugging Face directories (converted), a .gguf file's own type for a .gguf file."
)


KV_TYPE_HELP = (
    "How llama.cpp stores the KV cache (keys/values). auto: q8_0 when serving several slots (half "
    "the memory of f16), f16 for one. q8_0/f16 (f16 values): 7-19% more tokens/s at 16 streams for "
    "+85 MB with the embedded SmolLM2 at 16 slots x 1024 (BENCHMARKS.md). f16: llama-server's choice, +170 MB; prompts "
    "then go through in 32-row passes to keep seeded text the same alone or batched."
)


def env_var(flag: str) -> str:
    """Every flag of pocketlm is also an environment variable: ``--max-queue`` is ``POCKETLM_MAX_QUEUE``."""
    return "POCKETLM_" + flag.lstrip("-").replace("-", "_").upper()


def _declarations() -> dict:
    """Each flag as a click.option decorator, by the ModelOptions field it fills."""
    from pocketlm.models.quantization import QUANTIZATIONS

    def option(*names, **kwargs):
        return click.option(*names, envvar=env_var(names[-1]), show_envvar=True, **kwargs)

    return {
        "model": option(
            "-m",
            "--model",
            default=None,
            help="Alias, .gguf file, Hugging Face directory or hub id (default: the embedded SmolLM2).",
        ),
        "backend": option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            show_default=True,
            help="Inference backend; auto: llama.cpp when the model converts to GGUF, else torch.",
        ),
        "quantization": option(
            "--quantization", type=click.Choice(QUANTIZATIONS), default=None, help=QUANTIZATION_HELP
        ),
        "threads": option(
            "--threads",
            type=click.IntRange(min=1),
            default=None,
            help="CPU threads for the model (default: every core).",
        ),
        "kv_type": option(
            "--kv-type", type=click.Choice(KV_TYPES), default="auto", show_default=True, help=KV_TYPE_HELP
        ),
        "allow_pickle": option("--allow-pickle", is_flag=True, help=ALLOW_PICKLE_HELP),
        "trust_remote_code": option("--trust-remote-code", is_flag=True, help=TRUST_REMOTE_CODE_HELP),
    }


def model_options(*names: str):
    """Add the model flags ``names`` (default: all of them) to a click command.

    The command receives them as one ``model_options: ModelOptions`` argument.
    """
    declared = _declarations()
    chosen = names or tuple(declared)

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in chosen}
            if "quantization" in values and values["quantization"] is None:
                values["quantization"] = _deprecated_quantization_env()
            return f(*args, model_options=ModelOptions(**values), **kwargs)

        for name in reversed(chosen):
            command = declared[name](command)
        return command

    return decorate


def _deprecated_quantization_env() -> str | None:
    """POCKETLM_CONVERT_TYPE was the old name of POCKETLM_QUANTIZATION for converted directories."""
    value = os.environ.get("POCKETLM_CONVERT_TYPE")
    if value:
        warnings.warn(
            "POCKETLM_CONVERT_TYPE is deprecated: set POCKETLM_QUANTIZATION instead", FutureWarning, stacklevel=2
        )
        from pocketlm.models.quantization import check_quantization

        check_quantization(value)
    return value or None
