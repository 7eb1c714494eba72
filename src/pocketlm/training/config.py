"""What one fine-tuning run is: the model to start from, the data, where to write, and how to train.

Every field is ``pocketlm finetune``'s own flag (``--max-steps``) and variable
(``POCKETLM_FINETUNE_MAX_STEPS``); the model's flags are the shared ones (``--model`` is
``POCKETLM_MODEL``). Python callers build the same object: the same checks apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pocketlm.errors import InvalidParameter
from pocketlm.models.options import ModelOptions
from pocketlm.settings import Declared, setting

DATA_HELP = (
    "Training text: .txt, .jsonl, .csv, a directory of them, a saved `datasets` dataset, "
    "or a dataset name: shakespeare:train, shakespeare:valid, shakespeare:sample (fetched once, cached)."
)


@dataclass(kw_only=True)
class FinetuneConfig(Declared):
    COMMAND: ClassVar[str] = "finetune"

    model_options: ModelOptions = field(default_factory=ModelOptions)  # the model to start from and its opt-ins
    data: str = setting(help=DATA_HELP)
    valid: str | None = setting(  # None: hold out the last 5% of the training blocks
        None, help="Validation text, same formats (default: the last 5% of --data is held out)."
    )
    output: str = setting(
        short="-o",
        old=("--out",),
        help="Output directory: the fine-tuned model, checkpoints, metrics.json, loss.png.",
    )
    text_field: str = setting("text", help="JSONL field / CSV column / dataset column with the text.")
    block_size: int = setting(256, low=1, help="Tokens per training example.")
    epochs: float = setting(1.0, low=0.0, low_open=True, help="Passes over the data (ignored with --max-steps).")
    max_steps: int | None = setting(None, low=1, help="Optimizer steps to run (overrides --epochs).")
    learning_rate: float | None = setting(  # None: the usual peak for the method, filled in below
        None, low=0.0, low_open=True, help="Peak learning rate [default: 5e-5 full, 2e-4 LoRA]."
    )
    batch_size: int = setting(8, low=1, help="Blocks per forward pass.")
    grad_accum: int = setting(1, low=1, help="Forward passes per optimizer step.")
    warmup_steps: int = setting(0, low=0, help="Steps over which the learning rate rises to its peak.")
    weight_decay: float = setting(0.0, low=0.0, help="AdamW's weight decay.")
    seed: int = setting(0, low=0, help="Same seed and data, same weights.")
    save_steps: int = setting(100, low=1, help="Write a checkpoint every N steps.")
    keep_checkpoints: int = setting(2, low=0, help="Newest checkpoints to keep (0: every one).")
    logging_steps: int = setting(10, low=1, help="Record the loss every N steps.")
    max_valid_tokens: int | None = setting(  # caps validation cost on a slow CPU
        None, low=1, help="Use at most this many validation tokens (faster)."
    )
    lora: bool = setting(False, help="Train small LoRA adapters instead of every weight.")
    lora_r: int = setting(8, low=1, help="LoRA rank.")
    lora_alpha: int = setting(16, low=1, help="LoRA scaling: the adapters' update is multiplied by alpha / r.")
    lora_dropout: float = setting(0.05, low=0.0, high=1.0, help="Dropout on the LoRA adapters' input.")
    lora_targets: tuple[str, ...] = setting(  # empty: peft's default for the architecture
        (), help="Module name to adapt (default: peft's choice)."
    )
    merge: bool = setting(False, help="With --lora: merge the adapters into the weights (a plain model directory).")
    resume: bool = setting(False, help="Continue from the newest complete checkpoint in --output.")
    progress: bool = True  # a progress bar on stderr

    def __post_init__(self):
        super().__post_init__()
        if self.merge and not self.lora:
            raise InvalidParameter("merge", "only applies to LoRA: add --lora, or drop --merge")
        if self.learning_rate is None:
            self.learning_rate = 2e-4 if self.lora else 5e-5
