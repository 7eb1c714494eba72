"""Engine throughput without HTTP: decode tok/s for one stream and total tok/s for N concurrent.

    python benchmarks/engine.py                 # embedded model, 1 and 16 streams, 128 new tokens, 3 runs
    python benchmarks/engine.py --model DIR --backend torch --concurrency 1,16

This is the engine's own ceiling: what the HTTP server can at best deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from pocketlm.engine import SamplingParams, load_engine

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


async def run_once(engine, concurrency: int, max_new_tokens: int) -> tuple[float, float]:
    """(total output tok/s, median time to first token) for `concurrency` simultaneous requests."""
    params = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True, temperature=0.8, seed=0)

    async def one(i):
        start = time.perf_counter()
        first = None
        tokens = 0
        async for ev in engine.submit(f"{PROMPT} ({i})", params):
            n = len(getattr(ev, "token_ids", ()))
            if n and first is None:
                first = time.perf_counter() - start
            tokens += n
        return tokens, first

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    return sum(t for t, _ in results) / elapsed, statistics.median(f for _, f in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    engine = load_engine(args.model, args.backend, n_seq=max(levels), n_ctx=1024)
    asyncio.run(run_once(engine, 1, 8))  # warm-up
    print(f"model {engine.info.name} ({engine.info.quantization}), backend {type(engine.backend).__name__}")
    print("concurrency | total tok/s (median of runs) | per-stream tok/s | median TTFT s")
    for c in levels:
        runs = [asyncio.run(run_once(engine, c, args.max_new_tokens)) for _ in range(args.runs)]
        tps = statistics.median(r[0] for r in runs)
        ttft = statistics.median(r[1] for r in runs)
        print(f"{c:>11} | {tps:>28.1f} | {tps / c:>16.1f} | {ttft:>13.3f}")
    engine.stop(0)


if __name__ == "__main__":
    main()
