"""``pocketlm convert``: Hugging Face directory <-> GGUF file, or GGUF -> GGUF of another type.

    pocketlm convert ./my-finetuned-gpt2 my-gpt2.gguf --type q8_0
    pocketlm convert smollm2-135m-instruct ./smollm2-hf      # GGUF -> HF, e.g. to fine-tune it
    pocketlm convert smollm2-135m-instruct smollm2-q4_0.gguf --type q4_0   # requantize for speed
"""

from __future__ import annotations

from pathlib import Path

import click

from pocketlm.models.convert import QTYPES
from pocketlm.models.hf import ALLOW_PICKLE_HELP


@click.command()
@click.argument("src")
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--type", "qtype", type=click.Choice(QTYPES), default="f16", show_default=True,
              help="GGUF tensor type when DST is a .gguf file: f32 exact, f16 ~exact, q8_0 near-exact at half of f16, "
                   "q4_0 smallest and fastest, a little less accurate.")
@click.option("--allow-pickle", is_flag=True, envvar="POCKETLM_ALLOW_PICKLE", help=ALLOW_PICKLE_HELP)
def convert(src, dst, qtype, allow_pickle):
    """Convert SRC to DST: an HF model directory to DST.gguf, a GGUF model to the HF directory DST,
    or a GGUF model to DST.gguf with its weights requantized to --type.

    SRC may be a path, a built-in alias (smollm2-135m-instruct) or a hub id.
    """
    from pocketlm.errors import InvalidParameter
    from pocketlm.models.convert import gguf_to_hf, hf_to_gguf, requantize_gguf
    from pocketlm.models.registry import resolve

    ref = resolve(src)
    if ref.format == "hf":
        if dst.suffix.lower() != ".gguf":
            raise InvalidParameter("dst", f"converting a Hugging Face directory writes a GGUF file: name it *.gguf "
                                          f"(got {dst})")
        out = hf_to_gguf(ref.path, dst, qtype, allow_pickle=allow_pickle)
        click.echo(f"wrote {out} ({out.stat().st_size / 1e6:,.0f} MB, {qtype}); "
                   f"run it with `pocketlm serve --model {out}`")
    elif dst.suffix.lower() == ".gguf":
        out = requantize_gguf(ref.path, dst, qtype)
        click.echo(f"wrote {out} ({out.stat().st_size / 1e6:,.0f} MB, {qtype}); check its quality with "
                   f"`pocketlm eval --model {out}`, then run it with `pocketlm serve --model {out}`")
    else:
        out = gguf_to_hf(ref.path, dst)
        click.echo(f"wrote {out} (fp32 safetensors + tokenizer); run it with `pocketlm serve --model {out} "
                   "--backend torch` or fine-tune it")
