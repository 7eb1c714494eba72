"""Checkpoints that are either complete or invisible.

transformers' ``Trainer`` writes ``checkpoint-N`` file by file (weights,
optimizer, scheduler, RNG state, trainer state). Killed half-way, or out of
disk half-way, that directory looks like a checkpoint but cannot be resumed.
So the Trainer writes into a staging directory; only when it has finished
(its ``on_save`` event fires after the last file) are the files flushed to disk
and the directory renamed into ``checkpoints/``. A rename within one
filesystem is atomic: ``checkpoints/`` only ever holds complete checkpoints,
and the newest one there is always safe to resume from.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

from pocketlm.files import fsync, fsync_tree

STAGING = ".staging"  # the Trainer's output_dir: scratch space, never resumed from
CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_steps(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``out``, oldest first."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and _complete(p):
            found.append((int(m.group(1)), p))
    return sorted(found)


def _complete(ckpt: Path) -> bool:
    """A second line of defence after the rename: weights (written first) and trainer state (written last)."""
    return any(ckpt.glob("*.safetensors")) and (ckpt / "trainer_state.json").is_file()


def latest_checkpoint(out: Path) -> Path | None:
    steps = checkpoint_steps(out)
    return steps[-1][1] if steps else None


def clear_staging(out: Path) -> None:
    """Whatever is in staging was interrupted: it is garbage."""
    shutil.rmtree(out / STAGING, ignore_errors=True)


def publish(staged: Path, out: Path, keep: int) -> Path:
    """Move a finished checkpoint from staging into ``checkpoints/`` and drop the oldest beyond ``keep``."""
    root = out / CHECKPOINTS
    root.mkdir(exist_ok=True)
    final = root / staged.name
    fsync_tree(staged)  # the data must be on disk before the rename makes it visible
    if final.exists():  # the same step saved again (a resumed run that had nothing left to do)
        shutil.rmtree(final)
    os.rename(staged, final)
    fsync(root)
    for _step, old in checkpoint_steps(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


class AtomicCheckpoints(TrainerCallback):
    """Publish each checkpoint once the Trainer has completely written it."""

    def __init__(self, out: Path, keep: int = 2):
        self.out, self.keep = out, keep

    def on_save(self, args, state, control, **kwargs):
        staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if staged.is_dir():
            publish(staged, self.out, self.keep)
        return control
