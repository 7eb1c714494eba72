"""What a JSON schema costs pocketlm's engine: tokens/s with a schema over without, at 1 and 16 streams.

    PYTHONPATH=src python benchmarks/structured_engine.py [--repeats 2] [--tokens 128]

The engine in-process on the embedded SmolLM2 (llama.cpp, the server's defaults: 16 slots, q8_0 KV, drafts
on). Every request is greedy and generates exactly ``--tokens`` tokens: without a grammar the end of
sequence is ignored; with one the schema is an array of at least 8 records of benchmarks/structured.py's
20-field schema, longer than that, so the token limit ends it too. At 1 stream, 4 requests one after
another; at 16, 32 requests 16 at a time. The two alternate, ``--repeats`` times each; medians.
Also: reading the vocabulary for llguidance (once per model) and compiling the 20-field schema.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.engine.constraints import Grammar, Vocabulary
from structured import SCHEMA_20

PROMPT = "<|im_start|>user\nList some user records as JSON.<|im_end|>\n<|im_start|>assistant\n"
RECORDS = {"type": "array", "items": SCHEMA_20, "minItems": 8}


async def wave(engine, params: SamplingParams, requests: int, concurrency: int) -> tuple[int, float]:
    """Tokens generated and seconds taken by ``requests`` requests, ``concurrency`` at a time."""
    pending = list(range(requests))
    tokens = 0

    async def worker():
        nonlocal tokens
        while pending:
            pending.pop()
            result = await engine.complete(PROMPT, params)
            tokens += result.usage.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    engine = load_engine(ModelOptions(), EngineConfig())
    try:
        started = time.perf_counter()
        vocabulary = Vocabulary.from_backend(engine.backend)
        read = time.perf_counter() - started
        compiles = []
        for i in range(5):  # a fresh schema each time (a new maxLength): no cache
            schema = json.loads(json.dumps(SCHEMA_20))
            schema["properties"]["name"]["maxLength"] = 40 + i
            started = time.perf_counter()
            vocabulary.compile(Grammar.json_schema(schema, field="x"))
            compiles.append(time.perf_counter() - started)
        print(
            f"vocabulary read: {read:.2f} s; 20-field schema compiled (to its first mask): "
            f"median {statistics.median(compiles) * 1e3:.1f} ms of 5"
        )
        grammar = Grammar.json_schema(RECORDS, field="x")
        engine.constrain(grammar)
        plain = SamplingParams(temperature=0, max_new_tokens=args.tokens, ignore_eos=True)
        constrained = SamplingParams(temperature=0, max_new_tokens=args.tokens, grammar=grammar)
        for streams, requests in ((1, 4), (16, 32)):
            rates: dict[str, list[float]] = {"plain": [], "schema": []}
            asyncio.run(wave(engine, plain, streams, streams))  # warm: the prompt cached in the slots
            for _ in range(args.repeats):
                for name, params in (("plain", plain), ("schema", constrained)):
                    tokens, seconds = asyncio.run(wave(engine, params, requests, streams))
                    assert tokens == requests * args.tokens, "every request must reach the token limit"
                    rates[name].append(tokens / seconds)
            p, s = statistics.median(rates["plain"]), statistics.median(rates["schema"])
            print(
                f"{streams:2d} streams: without {p:6.1f} tok/s, with schema {s:6.1f} tok/s: {s / p:.2f}x "
                f"(runs: {[round(r, 1) for r in rates['plain']]} / {[round(r, 1) for r in rates['schema']]})"
            )
    finally:
        engine.stop(0)


if __name__ == "__main__":
    main()
