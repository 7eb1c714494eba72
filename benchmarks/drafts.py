"""The measurements behind drafting by prompt lookup (engine/drafts.py), on the file `pocketlm serve` runs.

    python benchmarks/drafts.py            # all three parts, ~3 min on 2 cores
    python benchmarks/drafts.py --part cost

1. identity: a draft verified in one pass gives the same logits, bit for bit, as decoding its tokens
   one at a time (per KV type): why drafting cannot change the text.
2. cost: one llama_decode step for 1, 2, 4, 8, 16 slots carrying 1-5 rows each (ms, median of 15):
   what a drafted row costs beside the rows a step has anyway.
3. policy: greedy and sampled continuations of the serving benchmark's prompts, and the speed-up each
   drafting policy (tokens drafted, n-gram length; always drafting, or as far as pays by the measured
   costs and each sample's guesses, as the engine does) would give one stream under the measured costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pocketlm.backends.base import Chunk
from pocketlm.backends.llamacpp import LlamaCppBackend
from pocketlm.engine.costs import StepCosts
from pocketlm.engine.drafts import Drafter, step_drafts
from profile_engine import served_file
from prompts import GGUFTokenizer, build_prompts


def identity(path, prompts) -> None:
    for kv in ("q8_0", "q8_0/f16", "f16"):
        be = LlamaCppBackend(path, slots=1, n_ctx=512, kv_type=kv)
        same = total = 0
        for p in prompts[:8]:
            ids = be.tokenize(p)
            be.clear_slot(0)
            row = be.forward([Chunk(0, ids, 0, 1)])[-1]
            tokens, one_by_one = [], []
            for pos in range(len(ids), len(ids) + 8):
                tokens.append(int(np.argmax(row)))
                row = be.forward([Chunk(0, tokens[-1:], pos, 1)])[0].copy()
                one_by_one.append(row)
            be.clear_slot(0, len(ids))
            together = be.forward([Chunk(0, tokens, len(ids), len(tokens))])
            same += sum(np.array_equal(a, b) for a, b in zip(one_by_one, together))
            total += len(tokens)
        print(f"identity, KV {kv}: {same}/{total} rows bit-identical", flush=True)
        be.close()


def cost(path) -> dict[int, float]:
    be = LlamaCppBackend(path, slots=16, n_ctx=1024)
    ids = be.tokenize("ROMEO: But, soft! what light through yonder window breaks? It is the east. " * 8)[:150]
    for s in range(16):
        be.forward([Chunk(s, ids, 0, 1)])
    one_slot = {}
    for slots in (1, 2, 4, 8, 16):
        cells = []
        for rows in (1, 2, 3, 4, 5):
            times = []
            for _ in range(15):
                t = time.perf_counter()
                be.forward([Chunk(s, ids[:rows], 150, rows) for s in range(slots)])
                times.append(time.perf_counter() - t)
                for s in range(slots):
                    be.clear_slot(s, 150)
            cells.append(1000 * statistics.median(times))
            if slots == 1:
                one_slot[rows] = cells[-1]
        print(f"cost, {slots:2d} slots x 1-5 rows: " + " / ".join(f"{c:.1f}" for c in cells) + " ms", flush=True)
    be.close()
    return one_slot


def policy(path, prompts, step_ms: dict[int, float]) -> None:
    be = LlamaCppBackend(path, slots=1, n_ctx=512)
    rng = np.random.default_rng(0)

    def continuation(ids, temperature, n=128):
        be.clear_slot(0)
        row, out = be.forward([Chunk(0, ids, 0, 1)])[-1], []
        for pos in range(len(ids), len(ids) + n):
            logits = row.astype(np.float64)
            logits[list(be.eog_ids)] = -np.inf
            if temperature:
                p = np.exp((logits - logits.max()) / temperature)
                out.append(int(rng.choice(p.size, p=p / p.sum())))
            else:
                out.append(int(np.argmax(logits)))
            row = be.forward([Chunk(0, out[-1:], pos, 1)])[0]
        return out

    for temperature in (0.0, 0.8):
        texts = [(ids, continuation(ids, temperature)) for ids in map(be.tokenize, prompts[:12])]
        print(f"policy, temperature {temperature}: speed-up over no drafts (accepted share of drafted tokens)")
        costs = StepCosts()
        for rows, ms in step_ms.items():
            costs.observe(rows, ms / 1000)
        for most in (2, 3, 4):
            cells = []
            for ngram in (1, 2, 3):
                for measured in (False, True):
                    x, a = _simulate(texts, most, ngram, costs if measured else None, step_ms)
                    cells.append(f"n={ngram}{' as pays' if measured else ''} {x:.2f}x ({a:.2f})")
            print(f"  up to {most} drafted: " + "  ".join(cells), flush=True)
    be.close()


def _simulate(texts, most, ngram, costs, step_ms) -> tuple[float, float]:
    """One stream decoding each text with drafts as step_drafts makes them (costs None: always), n-grams of `ngram`."""
    ms = drafted = accepted = 0
    for ids, out in texts:
        d, i = Drafter(ids, ngram), 0
        while i < len(out):
            [draft] = step_drafts([(d, len(out) - i - 1)], most, costs)
            ok = 0
            while ok < len(draft) and draft[ok] == out[i + ok]:
                ok += 1
            for t in out[i : i + ok + 1]:
                d.append(t)
            ms += step_ms[1 + len(draft)]
            drafted, accepted, i = drafted + len(draft), accepted + ok, i + ok + 1
    return sum(len(o) for _, o in texts) * step_ms[1] / ms, accepted / max(drafted, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["identity", "cost", "policy", "all"], default="all")
    args = ap.parse_args()
    path = served_file()
    prompts = build_prompts(GGUFTokenizer(path), n=16)
    if args.part in ("identity", "all"):
        identity(path, prompts)
    if args.part in ("cost", "policy", "all"):
        step_ms = cost(path)
        if args.part != "cost":
            policy(path, prompts, step_ms)


if __name__ == "__main__":
    main()
