"""`pocketlm finetune`.

    pocketlm finetune --model smollm2-135m-instruct --data shakespeare:train --valid shakespeare:valid \\
        --out shakespeare-smollm2 --max-steps 200 --block-size 256
    pocketlm serve --model shakespeare-smollm2
"""

from __future__ import annotations

import click

from pocketlm.models.options import model_options


@click.command()
@model_options("model", "threads", "allow_pickle", "trust_remote_code")
@click.option(
    "--data",
    required=True,
    help="Training text: .txt, .jsonl, .csv, a directory of them, a saved `datasets` dataset, "
    "or a dataset name: shakespeare:train, shakespeare:valid, shakespeare:sample (fetched once, cached).",
)
@click.option(
    "--valid", default=None, help="Validation text, same formats (default: the last 5% of --data is held out)."
)
@click.option(
    "--out", required=True, help="Output directory: the fine-tuned model, checkpoints, metrics.json, loss.png."
)
@click.option(
    "--text-field", default="text", show_default=True, help="JSONL field / CSV column / dataset column with the text."
)
@click.option("--block-size", type=int, default=256, show_default=True, help="Tokens per training example.")
@click.option(
    "--epochs", type=float, default=1.0, show_default=True, help="Passes over the data (ignored with --max-steps)."
)
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
@click.option(
    "--lora-target", "lora_targets", multiple=True, help="Module name to adapt (repeatable; default: peft's choice)."
)
@click.option(
    "--merge", is_flag=True, help="With --lora: merge the adapters into the weights (a plain model directory)."
)
@click.option("--resume", is_flag=True, help="Continue from the newest complete checkpoint in --out.")
def finetune(model_options, learning_rate, **kwargs):
    """Fine-tune the causal LM --model (alias, .gguf, HF directory or hub id) on your text."""
    from pocketlm.training.finetune import FinetuneConfig
    from pocketlm.training.finetune import finetune as run

    kwargs["lora_targets"] = tuple(kwargs["lora_targets"])
    if learning_rate is None:
        learning_rate = 2e-4 if kwargs["lora"] else 5e-5
    m = run(FinetuneConfig(model_options=model_options, learning_rate=learning_rate, **kwargs))
    before, after = m["valid_ppl_before"], m["valid_ppl_after"]
    click.echo(
        f"done: {m['steps']} steps in {m['wall_time_s']:.0f} s ({m['steps_per_s']} steps/s), "
        f"peak RAM {m['peak_rss_mb']:.0f} MB"
    )
    if before is not None and after is not None:
        click.echo(f"validation perplexity: {before:.2f} -> {after:.2f}")
    click.echo(
        f"model: {kwargs['out']}  (metrics.json, loss.png inside; serve it: pocketlm serve --model {kwargs['out']})"
    )
