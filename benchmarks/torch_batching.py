"""Torch backend decode throughput: batched decoding (SlotCache) vs one model call per slot.

    python benchmarks/torch_batching.py HF_DIR [--batch 1,4,16] [--steps 32] [--runs 3]

Backend level, no engine: every row decodes one token per step. "batched" runs all
rows of a step as one model call (weights read once); "sequential" is what a plain
transformers loop with a DynamicCache per request does. Run it on an idle machine:
with other processes on the cores, torch's 2-thread parallel regions stall at barriers.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pocketlm.backends.base import Chunk
from pocketlm.backends.torch_backend import TorchBackend

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def decode_tok_s(backend: TorchBackend, prompt: list[int], batch: int, steps: int) -> float:
    backend.forward([Chunk(i, prompt, 0, 1) for i in range(batch)])
    start = time.perf_counter()
    for s in range(steps):
        backend.forward([Chunk(i, [100], len(prompt) + s, 1) for i in range(batch)])
    elapsed = time.perf_counter() - start
    for i in range(batch):
        backend.clear_slot(i)
    return batch * steps / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", default="1,4,16")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(b) for b in args.batch.split(",")]
    modes = {
        m: TorchBackend(args.model, slots=max(sizes), n_ctx=8192, batched=m == "batched")
        for m in ("batched", "sequential")
    }
    prompt = modes["batched"].tokenize(PROMPT)
    print("batch | batched tok/s | sequential tok/s   (medians; modes interleaved)")
    for batch in sizes:
        runs = {m: [] for m in modes}
        for _ in range(args.runs):
            for m, backend in modes.items():
                runs[m].append(decode_tok_s(backend, prompt, batch, args.steps))
        print(
            f"{batch:>5} | {statistics.median(runs['batched']):>13.1f} | {statistics.median(runs['sequential']):>16.1f}"
        )


if __name__ == "__main__":
    main()
