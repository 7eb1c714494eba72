"""``pocketlm convert``: Hugging Face directory <-> GGUF file, or GGUF -> GGUF of another type.

pocketlm convert --model ./my-finetuned-gpt2 -o my-gpt2.gguf --quantization q8_0
pocketlm convert --model smollm2-135m-instruct -o ./smollm2-hf          # GGUF -> HF, e.g. to fine-tune it
pocketlm convert --model smollm2-135m-instruct -o smollm2-q4_0.gguf --quantization q4_0   # requantize
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import click

from pocketlm.commandline import options
from pocketlm.models.options import ModelOptions
from pocketlm.models.quantization import CONVERT_QUANTIZATION
from pocketlm.settings import Declared, setting


@dataclass(frozen=True)
class ConvertOptions(Declared):
    COMMAND: ClassVar[str] = "convert"

    output: Path = setting(
        short="-o",
        old=("--out",),
        directory=True,
        help="What to write: a .gguf file, or a directory for a Hugging Face model.",
    )


@click.command()
@options(
    ModelOptions,
    "model_options",
    only=("model", "quantization", "allow_pickle"),
    help_texts={
        "quantization": f"GGUF type to write. Default: {CONVERT_QUANTIZATION} for a new GGUF file (f32 exact, "
        "f16 ~exact, q8_0 near-exact at half of f16, q4_0 smallest and fastest, a little less accurate); "
        "a Hugging Face directory is always written in fp32."
    },
)
@options(ConvertOptions, "own")
def convert(model_options: ModelOptions, own: ConvertOptions):
    """Convert --model to --output: an HF model directory to a .gguf file, a GGUF model to an HF directory,
    or a GGUF model to a .gguf file of another --quantization.

    --model may be a path, a built-in alias (smollm2-135m-instruct) or a hub id.
    """
    from pocketlm.errors import InvalidParameter
    from pocketlm.models.gguf_to_hf import gguf_to_hf
    from pocketlm.models.gguf_writer import hf_to_gguf, requantize_gguf
    from pocketlm.models.registry import resolve

    out = own.output
    ref = resolve(model_options.model)
    quantization = model_options.quantization or CONVERT_QUANTIZATION
    if ref.format == "hf":
        if out.suffix.lower() != ".gguf":
            raise InvalidParameter(
                "output", f"converting a Hugging Face directory writes a GGUF file: name it *.gguf (got {out})"
            )
        written = hf_to_gguf(ref.path, out, quantization, allow_pickle=model_options.allow_pickle)
        click.echo(
            f"wrote {written} ({written.stat().st_size / 1e6:,.0f} MB, {quantization}); "
            f"run it with `pocketlm serve --model {written}`"
        )
    elif out.suffix.lower() == ".gguf":
        written = requantize_gguf(ref.path, out, quantization)
        click.echo(
            f"wrote {written} ({written.stat().st_size / 1e6:,.0f} MB, {quantization}); check its quality "
            f"with `pocketlm eval --model {written}`, then run it with `pocketlm serve --model {written}`"
        )
    else:
        if model_options.quantization:
            raise InvalidParameter("quantization", "a Hugging Face directory is written in fp32; drop --quantization")
        written = gguf_to_hf(ref.path, out)
        click.echo(
            f"wrote {written} (fp32 safetensors + tokenizer); run it with `pocketlm serve --model {written} "
            "--backend torch` or fine-tune it"
        )
