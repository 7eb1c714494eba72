"""What sampling one row costs on the caches a forward pass leaves behind, against warm caches.

    python benchmarks/sampling_cold.py
    python benchmarks/sampling_cold.py --against /path/to/other/checkout/src   # two versions, interleaved

A pass streams the model's weights through the caches (145 MB for the served SmolLM2), so the engine's
Python after it finds neither its data nor its code there, and numbers timed in a warm loop understate it
(benchmarks/NOTES.md, issue 27). Here a 64 MB array is read before each call instead, then one fresh row
of 49,152 logits shaped like a small model's (a few dozen tokens stand out) is sampled, for greedy,
top-p (temperature 0.8, top_p 0.95: the sampled workload) and temperature alone. Medians of --calls.
With --against, the other checkout's engine/sampling.py is timed too, call for call in alternating order,
so that the machine's drift falls on both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from pocketlm.engine import sampling
from pocketlm.engine.params import SamplingParams

SETTINGS = {
    "greedy": SamplingParams(temperature=0),
    "top-p": SamplingParams(temperature=0.8, top_p=0.95, seed=1),
    "temperature": SamplingParams(temperature=0.8, seed=1),
}


def small_model_row(n_vocab: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian logits with 200 tokens lifted 4-14 above: a peaked row, as a small instruct model gives."""
    row = rng.standard_normal(n_vocab).astype(np.float32) * 2.0
    row[rng.choice(n_vocab, 200, replace=False)] += rng.uniform(4, 14, 200).astype(np.float32)
    return row


def other_sampling(src: Path) -> ModuleType:
    """Another checkout's engine/sampling.py, loaded beside this one."""
    spec = importlib.util.spec_from_file_location("other_sampling", src / "pocketlm" / "engine" / "sampling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def medians_ms(versions: list[ModuleType], params, row, calls: int, evict: np.ndarray | None) -> list[float]:
    samplers = [v.Sampler(params, [1, 2, 3], 0, frozenset()) for v in versions]
    times: list[list[float]] = [[] for _ in versions]
    for i in range(calls):
        order = range(len(versions)) if i % 2 else reversed(range(len(versions)))
        for k in order:
            if evict is not None:
                evict.sum()  # as a pass does: the caches now hold other data
            logits = row[None, :].copy()  # fresh, as llama.cpp just wrote it
            started = time.perf_counter()
            versions[k].sample(logits, [samplers[k]])
            times[k].append(time.perf_counter() - started)
    return [float(np.median(t)) * 1e3 for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--vocab", type=int, default=49152, help="SmolLM2's; Gemma 3's is 262,144")
    ap.add_argument("--against", type=Path, default=None, help="another checkout's src/ directory")
    args = ap.parse_args()
    versions = [sampling] + ([other_sampling(args.against)] if args.against else [])
    names = ["this checkout"] + ([str(args.against)] if args.against else [])
    row = small_model_row(args.vocab, np.random.default_rng(0))
    evict = np.ones(64 << 20, dtype=np.uint8)
    for setting, params in SETTINGS.items():
        warm = medians_ms(versions, params, row, args.calls, None)
        cold = medians_ms(versions, params, row, args.calls, evict)
        for name, w, c in zip(names, warm, cold):
            print(f"{setting:12s} sample() warm {w:.3f} ms, cold {c:.3f} ms  ({name})")


if __name__ == "__main__":
    main()
