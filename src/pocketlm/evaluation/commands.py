"""`pocketlm eval`: perplexity and bits per byte of any model on any text.

pocketlm eval --model smollm2-135m-instruct --data shakespeare:valid --max-tokens 50000
pocketlm eval --model ./shakespeare-smollm2 --data shakespeare:valid --n-ctx 512 --stride 256
"""

from __future__ import annotations

import json
import sys

import click

from pocketlm.models.options import model_options

EVAL_N_CTX = 1024  # the window `eval` scores with, unless the model sees less or --n-ctx says otherwise


@click.command(name="eval")
@model_options()
@click.option(
    "--data",
    required=True,
    help="Text to score: .txt, .jsonl, .csv, a directory of them, a saved dataset, "
    "or a dataset name: shakespeare:valid, shakespeare:train, shakespeare:sample (fetched once, cached).",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL field / CSV column with the text.")
@click.option(
    "--n-ctx",
    type=click.IntRange(min=2),
    default=None,
    help=f"Tokens the model sees per window [default: its context, at most {EVAL_N_CTX}].",
)
@click.option(
    "--stride", type=click.IntRange(min=1), default=None, help="Tokens the window moves each step [default: n-ctx / 2]."
)
@click.option(
    "--max-tokens", type=click.IntRange(min=2), default=None, help="Score only the first N tokens of the text."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_command(model_options, data, text_field, n_ctx, stride, max_tokens, as_json):
    """Perplexity and bits per byte of --model on --data, with a sliding window."""
    from pocketlm.backends import load_backend
    from pocketlm.errors import InvalidParameter
    from pocketlm.evaluation.perplexity import text_perplexity
    from pocketlm.models.prepare import prepare
    from pocketlm.texts import iter_documents

    text = "\n\n".join("".join(doc) for doc in iter_documents(data, text_field, param="data"))
    if not text.strip():
        raise InvalidParameter("data", f"{data} has no text to score")
    b = load_backend(prepare(model_options), model_options, slots=1, n_ctx=n_ctx or EVAL_N_CTX)
    n_ctx = n_ctx or min(EVAL_N_CTX, b.info.n_ctx_train or EVAL_N_CTX)
    stride = stride or max(1, n_ctx // 2)
    try:
        with click.progressbar(length=1, label="scoring", file=sys.stderr) as bar:

            def progress(done, total):
                bar.length = total
                bar.update(done - bar.pos)

            result = text_perplexity(b, text, n_ctx, stride, max_tokens=max_tokens, progress=progress)
    finally:
        b.close()
    row = {"model": b.info.name, "backend": type(b).__name__, "data": data, **result.as_dict()}
    if as_json:
        click.echo(json.dumps(row, indent=2))
    else:
        click.echo(
            f"{row['model']} ({row['backend']}): perplexity {result.perplexity:.4f}, "
            f"{result.bits_per_byte:.4f} bits/byte over {result.n_tokens:,} tokens "
            f"(n-ctx {n_ctx}, stride {stride})"
        )
