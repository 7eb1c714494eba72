"""Where the shared data of tests and benchmarks lives: the Shakespeare corpus and GPT-2's tokenizer files.

It sits beside the checkout, in ``../shared/data``. A clone made somewhere else
(``git clone . /tmp/x``) finds it beside the checkout it was cloned from (its
``origin``); ``POCKETLM_SHARED_DATA`` names the directory outright.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = "POCKETLM_SHARED_DATA"
NEEDED = ("shakespeare", "gpt2-tokenizer")


def _candidates() -> list[Path]:
    if os.environ.get(ENV):
        return [Path(os.environ[ENV]).expanduser()]
    found = [REPO.parent / "shared" / "data"]
    origin = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip().removeprefix("file://")
    if origin and Path(origin).is_dir():
        found.append(Path(origin).resolve().parent / "shared" / "data")
    return found


def shared_data_dir() -> Path:
    candidates = _candidates()
    for path in candidates:
        if all((path / name).is_dir() for name in NEEDED):
            return path
    raise FileNotFoundError(f"the shared data ({', '.join(NEEDED)}) is not in {' or '.join(map(str, candidates))}; "
                            f"set {ENV} to the directory that holds it")
