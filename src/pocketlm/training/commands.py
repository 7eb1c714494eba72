"""`pocketlm finetune` and `pocketlm eval`.

    pocketlm finetune smollm2-135m-instruct --data shakespeare:train \\
        --valid shakespeare:valid --out shakespeare-smollm2 --max-steps 200 --block-size 256
    pocketlm serve --model shakespeare-smollm2
    pocketlm eval shakespeare-smollm2 --data shakespeare:valid --context 512 --stride 256
"""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("base")
@click.option("--data", required=True, help="Training text: .txt, .jsonl, .csv, a directory of them, a saved `datasets` dataset, "
              "or a dataset name: shakespeare:train, shakespeare:valid, shakespeare:sample (fetched once, cached).")
@click.option("--valid", default=None, help="Validation text, same formats (default: the last 5% of --data is held out).")
@click.option("--out", required=True, help="Output directory: the fine-tuned model, checkpoints, metrics.json, loss.png.")
@click.option("--text-field", default="text", show_default=True, help="JSONL field / CSV column / dataset column with the text.")
@click.option("--block-size", type=int, default=256, show_default=True, help="Tokens per training example.")
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Passes over the data (ignored with --max-steps).")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps to run (overrides --epochs).")
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate [default: 5e-5 full, 2e-4 LoRA].")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Blocks per forward pass.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Forward passes per optimizer step.")
@click.option("--warmup-steps", type=int, default=0, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and data, same weights.")
@click.option("--save-steps", type=int, default=100, show_default=True, help="Write a checkpoint every N steps.")
@click.option("--keep-checkpoints", type=int, default=2, show_default=True, help="Newest checkpoints to keep.")
@click.option("--logging-steps", type=int, default=10, show_default=True, help="Record the loss every N steps.")
@click.option("--max-valid-tokens", type=int, default=None, help="Use at most this many validation tokens (faster).")
@click.option("--lora", is_flag=True, help="Train small LoRA adapters instead of every weight.")
@click.option("--lora-r", type=int, default=8, show_default=True, help="LoRA rank.")
@click.option("--lora-alpha", type=int, default=16, show_default=True)
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option("--lora-target", "lora_targets", multiple=True, help="Module name to adapt (repeatable; default: peft's choice).")
@click.option("--merge", is_flag=True, help="With --lora: merge the adapters into the weights (a plain model directory).")
@click.option("--resume", is_flag=True, help="Continue from the newest complete checkpoint in --out.")
def finetune(base, learning_rate, **kwargs):
    """Fine-tune the causal LM BASE (alias, .gguf, HF directory or hub id) on your text."""
    from pocketlm.training.finetune import FinetuneConfig
    from pocketlm.training.finetune import finetune as run

    kwargs["lora_targets"] = tuple(kwargs["lora_targets"])
    if learning_rate is None:
        learning_rate = 2e-4 if kwargs["lora"] else 5e-5
    m = run(FinetuneConfig(base=base, learning_rate=learning_rate, **kwargs))
    before, after = m["valid_ppl_before"], m["valid_ppl_after"]
    click.echo(f"done: {m['steps']} steps in {m['wall_time_s']:.0f} s ({m['steps_per_s']} steps/s), "
               f"peak RAM {m['peak_rss_mb']:.0f} MB")
    if before is not None and after is not None:
        click.echo(f"validation perplexity: {before:.2f} -> {after:.2f}")
    click.echo(f"model: {kwargs['out']}  (metrics.json, loss.png inside; serve it: pocketlm serve --model {kwargs['out']})")


@click.command(name="eval")
@click.argument("model")
@click.option("--data", required=True, help="Text to score: .txt, .jsonl, .csv, a directory of them, a saved dataset, "
              "or a dataset name: shakespeare:valid, shakespeare:train, shakespeare:sample (fetched once, cached).")
@click.option("--text-field", default="text", show_default=True, help="JSONL field / CSV column with the text.")
@click.option("--context", type=int, default=1024, show_default=True, help="Tokens the model sees per window.")
@click.option("--stride", type=int, default=None, help="Tokens the window moves each step [default: context / 2].")
@click.option("--max-tokens", type=int, default=None, help="Score only the first N tokens of the text.")
@click.option("--backend", type=click.Choice(["auto", "llama.cpp", "torch"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_command(model, data, text_field, context, stride, max_tokens, backend, as_json):
    """Perplexity and bits per byte of MODEL on --data, with a sliding window."""
    from pocketlm.backends import load_backend
    from pocketlm.evaluation.perplexity import text_perplexity
    from pocketlm.models import resolve
    from pocketlm.training.data import iter_documents

    text = "\n\n".join("".join(doc) for doc in iter_documents(data, text_field, param="data"))
    if not text.strip():
        from pocketlm.errors import InvalidParameter

        raise InvalidParameter("data", f"{data} has no text to score")
    stride = stride or max(1, context // 2)
    b = load_backend(resolve(model), None if backend == "auto" else backend, n_seq=1, n_ctx=context)
    try:
        with click.progressbar(length=1, label="scoring", file=sys.stderr) as bar:
            def progress(done, total):
                bar.length = total
                bar.update(done - bar.pos)

            result = text_perplexity(b, text, context, stride, max_tokens=max_tokens, progress=progress)
    finally:
        b.close()
    row = {"model": b.info.name, "backend": type(b).__name__, "data": data, **result.as_dict()}
    if as_json:
        click.echo(json.dumps(row, indent=2))
    else:
        click.echo(f"{row['model']} ({row['backend']}): perplexity {result.perplexity:.4f}, "
                   f"{result.bits_per_byte:.4f} bits/byte over {result.n_tokens:,} tokens "
                   f"(context {context}, stride {stride})")
