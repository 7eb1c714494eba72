"""Engine throughput without HTTP: the ceiling the server can at best deliver.

    python benchmarks/engine.py                 # embedded model (as q8_0), 1 and 16 streams, 128 new tokens, 3 runs
    python benchmarks/engine.py --model FILE.gguf --threads 1    # a GGUF exactly as it is, one thread
    python benchmarks/engine.py --model DIR --backend torch --concurrency 1,16

Each run submits `concurrency` requests at once, with the serving benchmark's own ~100-token
Shakespeare prompts (prompts.py), temperature 0 and EOS ignored, so tok/s here and in
BENCHMARKS.md differ only by what HTTP, SSE and the load generator cost. Prefill is included:
`total tok/s` = output tokens / wall time from the first submit to the last token.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from prompts import build_prompts


class EngineTokenizer:
    """prompts.py's tokenizer interface over the served model's own vocabulary."""

    def __init__(self, engine):
        self.engine = engine

    def encode(self, text: str) -> list[int]:
        return self.engine.tokenize(text, add_special=False)

    def decode(self, ids: list[int]) -> str:
        return self.engine.detokenize(ids)


async def run_once(engine, prompts: list[str], max_new_tokens: int, temperature: float = 0.0) -> tuple[float, float]:
    """(total output tok/s, median time to first token) for all `prompts` submitted at once."""
    params = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True, temperature=temperature, seed=0)

    async def one(prompt):
        start = time.perf_counter()
        first = None
        tokens = 0
        async for ev in engine.submit(prompt, params):
            n = len(getattr(ev, "token_ids", ()))
            if n and first is None:
                first = time.perf_counter() - start
            tokens += n
        return tokens, first

    start = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in prompts))
    elapsed = time.perf_counter() - start
    return sum(t for t, _ in results) / elapsed, statistics.median(f for _, f in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--quantization", default=None, help="GGUF type llama.cpp runs (as pocketlm serve --quantization)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp / torch threads (default: all cores)")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    engine = load_engine(
        ModelOptions(args.model, backend=args.backend, threads=args.threads, quantization=args.quantization),
        EngineConfig(slots=max(levels)),
    )
    prompts = build_prompts(EngineTokenizer(engine), n=max(levels))
    asyncio.run(run_once(engine, prompts[:1], 8))  # warm-up
    print(
        f"model {engine.info.name} ({engine.info.quantization}), backend {type(engine.backend).__name__}, "
        f"threads {args.threads or 'all'}"
    )
    print("concurrency | total tok/s (median of runs) | per-stream tok/s | median TTFT s")
    for c in levels:
        runs = [
            asyncio.run(run_once(engine, prompts[:c], args.max_new_tokens, args.temperature)) for _ in range(args.runs)
        ]
        tps = statistics.median(r[0] for r in runs)
        ttft = statistics.median(r[1] for r in runs)
        print(f"{c:>11} | {tps:>28.1f} | {tps / c:>16.1f} | {ttft:>13.3f}")
    engine.stop(0)


if __name__ == "__main__":
    main()
