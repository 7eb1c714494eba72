"""`pocketlm eval`: perplexity and bits per byte of any model on any text.

pocketlm eval --model smollm2-135m-instruct --data shakespeare:valid --max-scored-tokens 50000
pocketlm eval --model ./shakespeare-smollm2 --data shakespeare:valid --n-ctx 512 --stride 256
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from typing import ClassVar

import click

from pocketlm.commandline import options
from pocketlm.models.options import ModelOptions
from pocketlm.settings import Declared, setting

EVAL_N_CTX = 1024  # the window `eval` scores with, unless the model sees less or --n-ctx says otherwise


@dataclass(frozen=True)
class Scoring(Declared):
    """What to score, and through which window."""

    COMMAND: ClassVar[str] = "eval"

    data: str = setting(
        help="Text to score: .txt, .jsonl, .csv, a directory of them, a saved dataset, "
        "or a dataset name: shakespeare:valid, shakespeare:train, shakespeare:sample (fetched once, cached).",
    )
    text_field: str = setting("text", help="JSONL field / CSV column with the text.")
    n_ctx: int | None = setting(
        None, low=2, help=f"Tokens the model sees per window [default: its context, at most {EVAL_N_CTX}]."
    )
    stride: int | None = setting(None, low=1, help="Tokens the window moves each step [default: n-ctx / 2].")
    max_scored_tokens: int | None = setting(
        None, low=2, old=("--max-tokens",), help="Score only the first N tokens of the text."
    )
    json: bool = setting(False, help="Print the result as JSON.")


@click.command(name="eval")
@options(ModelOptions, "model_options")
@options(Scoring, "scoring")
def eval_command(model_options: ModelOptions, scoring: Scoring):
    """Perplexity and bits per byte of --model on --data, with a sliding window."""
    from pocketlm.backends import load_backend
    from pocketlm.errors import InvalidParameter
    from pocketlm.evaluation.perplexity import text_perplexity
    from pocketlm.models.prepare import prepare
    from pocketlm.texts import iter_documents

    text = "\n\n".join("".join(doc) for doc in iter_documents(scoring.data, scoring.text_field, param="data"))
    if not text.strip():
        raise InvalidParameter("data", f"{scoring.data} has no text to score")
    model = prepare(model_options)
    if model.backend == "llama.cpp" and model_options.kv_type == "auto":
        # Scoring reads each window in one pass and never drafts: f16 keys give the closest numbers, and
        # llama.cpp's tiled kernel for them reads a window fastest.
        model_options = replace(model_options, kv_type="f16")
    b = load_backend(model, model_options, slots=1, n_ctx=scoring.n_ctx or EVAL_N_CTX)
    n_ctx = scoring.n_ctx or min(EVAL_N_CTX, b.info.n_ctx_train or EVAL_N_CTX)
    stride = scoring.stride or max(1, n_ctx // 2)
    try:
        with click.progressbar(length=1, label="scoring", file=sys.stderr) as bar:

            def progress(done, total):
                bar.length = total
                bar.update(done - bar.pos)

            result = text_perplexity(
                b, text, n_ctx, stride, max_scored_tokens=scoring.max_scored_tokens, progress=progress
            )
    finally:
        b.close()
    row = {"model": b.info.name, "backend": type(b).__name__, "data": scoring.data, **result.as_dict()}
    if scoring.json:
        click.echo(json.dumps(row, indent=2))
    else:
        click.echo(
            f"{row['model']} ({row['backend']}): perplexity {result.perplexity:.4f}, "
            f"{result.bits_per_byte:.4f} bits/byte over {result.n_tokens:,} tokens "
            f"(n-ctx {n_ctx}, stride {stride})"
        )
