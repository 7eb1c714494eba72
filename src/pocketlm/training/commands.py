"""`pocketlm finetune`.

    pocketlm finetune --model smollm2-135m-instruct --data shakespeare:train --valid shakespeare:valid \\
        -o shakespeare-smollm2 --max-steps 200 --block-size 256
    pocketlm serve --model shakespeare-smollm2
"""

from __future__ import annotations

import click

from pocketlm.commandline import options
from pocketlm.training.config import FinetuneConfig


@click.command()
@options(FinetuneConfig, "config", skip=("backend", "quantization", "kv_type"))  # training runs on torch
def finetune(config: FinetuneConfig):
    """Fine-tune the causal LM --model (alias, .gguf, HF directory or hub id) on your text."""
    from pocketlm.training.finetune import finetune as run

    m = run(config)
    before, after = m["valid_ppl_before"], m["valid_ppl_after"]
    click.echo(
        f"done: {m['steps']} steps in {m['wall_time_s']:.0f} s ({m['steps_per_s']} steps/s), "
        f"peak RAM {m['peak_rss_mb']:.0f} MB"
    )
    if before is not None and after is not None:
        click.echo(f"validation perplexity: {before:.2f} -> {after:.2f}")
    click.echo(
        f"model: {config.output}  (metrics.json, loss.png inside; serve it: pocketlm serve --model {config.output})"
    )
