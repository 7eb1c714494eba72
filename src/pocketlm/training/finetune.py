"""Causal-LM fine-tuning with transformers' Trainer: full or LoRA, resumable.

    out/
      model.safetensors, config.json, tokenizer files   the result: `pocketlm serve --model out`
        (or adapter_model.safetensors + adapter_config.json for LoRA without --merge)
      metrics.json, loss.png                             what happened, in numbers and as a curve
      checkpoints/checkpoint-N/                          complete checkpoints only (see checkpoints.py)
      .staging/  .data/                                  scratch: the Trainer's output_dir, token files

The recipe is the classic one: tokenize everything, concatenate, cut into
blocks of ``block_size`` tokens, labels = inputs (the model shifts them by one
position itself), AdamW with a linear schedule.
"""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import time
from dataclasses import asdict
from pathlib import Path

from transformers import TrainerCallback

from pocketlm.errors import InvalidParameter
from pocketlm.files import write_text
from pocketlm.models.options import ModelOptions
from pocketlm.training.checkpoints import STAGING, AtomicCheckpoints, clear_staging, latest_checkpoint
from pocketlm.training.config import FinetuneConfig
from pocketlm.training.data import BlockDataset, load_blocks
from pocketlm.training.lora import add_lora


def finetune(cfg: FinetuneConfig, callbacks: list | tuple = ()) -> dict:
    """Run (or resume) a fine-tuning; return the metrics also written to ``out/metrics.json``.

    ``callbacks`` are extra ``TrainerCallback`` objects, for callers that want to watch or steer training.
    """
    out = prepare_out(Path(cfg.output), cfg.resume)
    resume_from = latest_checkpoint(out) if cfg.resume else None
    base_dir, tokenizer, model = load_base(cfg.model_options)
    check_block_size(model, cfg.block_size)
    train, valid = _datasets(cfg, tokenizer, out / ".data")

    from transformers import Trainer, default_data_collator, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    set_seed(cfg.seed)  # LoRA's initial weights come from the RNG too
    if cfg.lora:
        model = add_lora(model, cfg)
    trainer = Trainer(
        model=model,
        args=_training_args(cfg, out),
        train_dataset=train,
        eval_dataset=valid,
        data_collator=default_data_collator,
        callbacks=[
            AtomicCheckpoints(out, cfg.keep_checkpoints),
            *([ProgressBar()] if cfg.progress else []),
            *callbacks,
        ],
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the progress bar shows the loss
    trainer.remove_callback(ProgressCallback)

    run = _run_record(out, cfg, base_dir, trainer if valid is not None and resume_from is None else None)
    started, start_step = time.perf_counter(), _step_of(resume_from)
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except Exception as e:
        if _disk_full(e):
            last = latest_checkpoint(out)
            raise InvalidParameter(
                "output",
                f"the disk holding {out} is full: writing checkpoint at step "
                f"{trainer.state.global_step} failed. "
                + (
                    f"The last good checkpoint, {last.name}, is intact: free some space and run "
                    "the same command with --resume to continue from it"
                    if last
                    else "No checkpoint was completed yet: free some space and start again"
                ),
            ) from e
        raise
    wall = time.perf_counter() - started
    steps_run = trainer.state.global_step - start_step
    ppl_after = _perplexity(trainer) if valid is not None else None
    try:
        save_result(trainer.model, tokenizer, out, merge=cfg.merge)
    except Exception as e:  # safetensors reports ENOSPC as its own error type
        if _disk_full(e):
            raise InvalidParameter(
                "output",
                f"the disk holding {out} filled up while saving the final model; free "
                "some space and run the same command with --resume",
            ) from e
        raise
    clear_staging(out)  # empty by now: every checkpoint was published
    metrics = {
        "model": cfg.model_options.model,
        "base_dir": str(base_dir),
        "data": cfg.data,
        "valid": cfg.valid,
        "method": ("lora+merge" if cfg.merge else "lora") if cfg.lora else "full",
        "block_size": cfg.block_size,
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "train_blocks": len(train),
        "valid_blocks": len(valid) if valid is not None else 0,
        "steps": trainer.state.global_step,
        "resumed_from_step": start_step,
        "steps_this_run": steps_run,
        "epochs": trainer.state.epoch,
        "final_train_loss": _last_loss(trainer.state.log_history),
        "valid_ppl_before": run.get("valid_ppl_before"),
        "valid_ppl_after": ppl_after,
        "wall_time_s": round(wall, 2),
        "steps_per_s": round(steps_run / wall, 4) if wall > 0 else None,
        "tokens_per_s": round(steps_run * cfg.batch_size * cfg.grad_accum * cfg.block_size / wall, 1)
        if wall > 0
        else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "log_history": trainer.state.log_history,
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
    }
    _write_json(out / "metrics.json", metrics)
    plot_loss(trainer.state.log_history, out / "loss.png", metrics)
    return metrics


# ---- setup --------------------------------------------------------------------------------------


def prepare_out(out: Path, resume: bool) -> Path:
    """Create ``out``, prove it is writable, and refuse to silently mix two runs."""
    out = out.expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".pocketlm-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise InvalidParameter(
            "output",
            f"cannot write to {out} ({e.strerror or e}); choose a directory you can "
            "write to, with room for the model and its checkpoints",
        ) from None
    if not resume and latest_checkpoint(out) is not None:
        raise InvalidParameter(
            "output",
            f"{out} already holds checkpoints of a fine-tuning run: add --resume to continue "
            "it, or choose another --output",
        )
    clear_staging(out)  # an interrupted save: never resumed from, so remove it
    return out


def load_base(options: ModelOptions):
    """(HF directory, tokenizer, model in train mode) for any model pocketlm can load (``models.prepare``:
    a GGUF is converted to a Hugging Face directory, an adapter merged into its base, both once)."""
    from pocketlm.models.hf import inspect_hf_dir, load_model, load_tokenizer
    from pocketlm.models.prepare import prepare

    path = prepare(options, "torch").path
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    hf = inspect_hf_dir(path, allow_pickle=options.allow_pickle)
    model = load_model(hf, trust_remote_code=options.trust_remote_code)
    tokenizer = load_tokenizer(hf, trust_remote_code=options.trust_remote_code)
    return path, tokenizer, model.train().requires_grad_(True)


def model_context(model) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_block_size(model, block_size: int) -> None:
    n_ctx = model_context(model)
    if n_ctx is not None and block_size > n_ctx:
        raise InvalidParameter(
            "block_size",
            f"{block_size} is above the model's context of {n_ctx} tokens; use --block-size {n_ctx} or less",
        )


def _datasets(cfg: FinetuneConfig, tokenizer, work: Path) -> tuple[BlockDataset, BlockDataset | None]:
    train = load_blocks(cfg.data, tokenizer, work, "train", cfg.block_size, text_field=cfg.text_field)
    cap = None if cfg.max_valid_tokens is None else max(1, cfg.max_valid_tokens // cfg.block_size)
    if cfg.valid is not None:
        valid = load_blocks(
            cfg.valid,
            tokenizer,
            work,
            "valid",
            cfg.block_size,
            text_field=cfg.text_field,
            param="valid",
            split=("validation", "valid", "test"),
        )
        return train, BlockDataset(valid.path, cfg.block_size, 0, cap)
    if len(train) < 2:
        return train, None  # one block: nothing to hold out
    held = max(1, len(train) // 20)
    if cap is not None:
        held = min(held, cap)
    n = len(train)
    return BlockDataset(train.path, cfg.block_size, 0, n - held), BlockDataset(train.path, cfg.block_size, n - held, n)


def _training_args(cfg: FinetuneConfig, out: Path):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / STAGING),  # the Trainer writes checkpoints here; AtomicCheckpoints publishes them
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        logging_steps=cfg.logging_steps,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )


def _run_record(out: Path, cfg: FinetuneConfig, base_dir: Path, trainer) -> dict:
    """Facts fixed at the start of a run (validation perplexity before training), kept across --resume."""
    path = out / "run.json"
    if trainer is None and path.is_file():
        return json.loads(path.read_text())
    record = {
        "model": cfg.model_options.model,
        "base_dir": str(base_dir),
        "valid_ppl_before": _perplexity(trainer) if trainer is not None else None,
    }
    _write_json(path, record)
    return record


def _perplexity(trainer) -> float:
    loss = trainer.evaluate()["eval_loss"]  # mean token NLL: every block has the same length
    return round(math.exp(loss), 4)


def _step_of(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0


def _last_loss(history: list[dict]) -> float | None:
    losses = [h["loss"] for h in history if "loss" in h]
    return losses[-1] if losses else None


def _disk_full(e: BaseException) -> bool:
    """ENOSPC surfaces as OSError from Python, and as other types (with the OS message) from Rust/C++ writers."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "StorageFull" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


# ---- results ------------------------------------------------------------------------------------


def save_result(model, tokenizer, out: Path, *, merge: bool) -> None:
    """Write the servable model into ``out``; each file lands whole (written aside, then renamed)."""
    if merge:
        model = model.merge_and_unload()
    tmp = out / ".final"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))


def plot_loss(history: list[dict], dest: Path, metrics: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history if "loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, marker=".", label="training loss")
    # Trainer.train() starts a fresh log, so the evaluation before training is plotted from the metrics.
    before, after = metrics.get("valid_ppl_before"), metrics.get("valid_ppl_after")
    evals = [(0, math.log(before))] if before else []
    evals += [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if evals:
        ax.plot(*zip(*evals), "o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    title = f"fine-tuning {metrics.get('model') or Path(str(metrics.get('base_dir'))).name}"
    if before and after:
        title += f"\nvalidation perplexity {before:.2f} -> {after:.2f}"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(dest, dpi=100)
    plt.close(fig)


# ---- progress -----------------------------------------------------------------------------------


class ProgressBar(TrainerCallback):
    """One tqdm bar: steps done, steps/s, ETA, and the latest training loss."""

    bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.max_steps, initial=state.global_step, desc="fine-tuning", unit="step", dynamic_ncols=True
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
