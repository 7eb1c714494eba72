"""The engine's own work per token, apart from the model: sampling, drafts, text, events, bookkeeping.

    python benchmarks/overhead.py                     # CPU time per token, greedy and sampled, c = 1 and 16
    python benchmarks/overhead.py --callgrind         # the same counted in instructions (valgrind), repeatable

The model is replaced by its recording: one stream's logits, taken once from the file `pocketlm serve`
runs (the embedded model at q8_0), are handed back step after step by a backend that does nothing
else. What remains is exactly the Python and numpy work the scheduler does between `llama_decode`
calls, on a real vocabulary's rows (49,152 floats), which is the time llama.cpp's threads wait each
step. CPU time of one thread is little disturbed by other work on the machine; instruction counts
(callgrind runs the whole script under valgrind, ~2 min) are not disturbed at all, so two commits can
be compared on a busy machine. llama.cpp itself cannot run under valgrind here (AVX-512).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from pocketlm.backends.base import Backend, Chunk, ModelInfo
from pocketlm.engine import Engine, EngineConfig, SamplingParams

RECORDING = Path(os.environ.get("POCKETLM_BENCH_CACHE", Path.home() / ".cache" / "pocketlm-bench")) / "logits.npz"
STEPS = 64  # recorded decode steps: the replay cycles through them


def record(path: Path = RECORDING) -> Path:
    """One greedy stream of the served model: its token bytes, EOS ids and STEPS rows of logits, saved once."""
    if path.exists():
        return path
    from pocketlm.backends.llamacpp import LlamaCppBackend
    from profile_engine import served_file
    from prompts import GGUFTokenizer, build_prompts

    model = served_file()
    be = LlamaCppBackend(model, slots=1, n_ctx=512)
    ids = be.tokenize(build_prompts(GGUFTokenizer(model), n=1)[0])
    row = be.forward([Chunk(0, ids, 0, 1)])[-1].copy()
    rows = []
    for pos in range(len(ids), len(ids) + STEPS):
        rows.append(row)
        row = be.forward([Chunk(0, [int(np.argmax(row))], pos, 1)])[0].copy()
    pieces = np.array([be.token_bytes(t) for t in range(be.n_vocab)], dtype=object)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), rows=np.stack(rows), pieces=pieces, eog=np.array(sorted(be.eog_ids)))
    path.with_suffix(".tmp.npz").rename(path)
    be.close()
    return path


class Replay(Backend):
    """A backend whose every logits row is the next one of the recording: no model, the same vocabulary."""

    def __init__(self, path: Path, slots: int):
        data = np.load(path, allow_pickle=True)
        self.rows, self._pieces = data["rows"], list(data["pieces"])
        self.slots, self.n_ctx = slots, 1024
        self.eog_ids = frozenset(int(t) for t in data["eog"])
        n_vocab = self.rows.shape[1]
        self.info = ModelInfo("replay", str(path), "replay", 1024, n_vocab, 0, "F32", None, "", "")
        self._next = 0
        self._out = np.empty((0, n_vocab), np.float32)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return [ord(c) % 1000 for c in text]  # any ids: the replay does not read them

    def token_bytes(self, token: int) -> bytes:
        return self._pieces[token]

    def forward(self, chunks: list[Chunk]) -> np.ndarray:
        n = sum(c.n_logits for c in chunks)
        if self._out.shape[0] != n:
            self._out = np.empty((n, self.rows.shape[1]), np.float32)
        for i in range(n):  # what llama.cpp's buffer holds after a pass: fresh rows each step
            self._out[i] = self.rows[self._next % len(self.rows)]
            self._next += 1
        return self._out

    def copy_slot(self, src: int, dst: int) -> None:
        pass

    def clear_slot(self, slot: int, keep: int = 0) -> None:
        pass


async def _load(engine: Engine, c: int, requests: int, params: SamplingParams) -> int:
    tokens = 0

    async def client(i):
        nonlocal tokens
        for _ in range(i, requests, c):
            async for ev in engine.submit("ROMEO: But, soft! what light through yonder window breaks?", params):
                tokens += getattr(ev, "completion_tokens", 0)

    await asyncio.gather(*(client(i) for i in range(c)))
    return tokens


WORKLOADS = {
    "greedy": SamplingParams(max_new_tokens=128, temperature=0.0, ignore_eos=True),
    "sampled": SamplingParams(max_new_tokens=128, temperature=0.8, top_p=0.95, seed=1, ignore_eos=True),
}


def measure(c: int, workload: str, requests: int, draft_tokens: int) -> tuple[int, float]:
    """Tokens generated and the engine thread's CPU seconds for them (after a warm-up request per client)."""
    engine = Engine(Replay(record(), slots=c), EngineConfig(slots=c, draft_tokens=draft_tokens)).start()
    try:
        asyncio.run(_load(engine, c, c, WORKLOADS[workload]))  # imports, first allocations
        clock = time.pthread_getcpuclockid(next(t for t in threading.enumerate() if t.name == "pocketlm-engine").ident)
        before = time.clock_gettime(clock)
        tokens = asyncio.run(_load(engine, c, requests, WORKLOADS[workload]))
        return tokens, time.clock_gettime(clock) - before
    finally:
        engine.stop(0)


def callgrind(c: int, workload: str, draft_tokens: int) -> float:
    """Instructions per token, all threads: the difference between runs of 2 and 6 requests per client."""
    counts = []
    for requests in (2 * c, 6 * c):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
            + ["--one", f"{c},{workload},{requests},{draft_tokens}"],
            capture_output=True,
            text=True,
            check=True,
        )
        counts.append(int(re.search(r"Collected : (\d+)", out.stderr).group(1)))
    return (counts[1] - counts[0]) / (4 * c * 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--workloads", default="greedy,sampled")
    ap.add_argument("--requests-per-client", type=int, default=8)
    ap.add_argument(
        "--draft-tokens",
        type=int,
        default=EngineConfig.draft_tokens,
        help="as serve's; the replayed text repeats every 64 tokens, so drafts are mostly kept",
    )
    ap.add_argument("--callgrind", action="store_true", help="count instructions under valgrind instead")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # c,workload,requests,drafts: callgrind's run
    args = ap.parse_args()
    if args.one:
        c, workload, requests, drafts = args.one.split(",")
        measure(int(c), workload, int(requests), int(drafts))
        return
    record()
    for c in map(int, args.concurrency.split(",")):
        for workload in args.workloads.split(","):
            if args.callgrind:
                n = callgrind(c, workload, args.draft_tokens)
                print(f"c={c:2d} {workload:8s} {n / 1e6:.2f} M instructions per token", flush=True)
            else:
                tokens, cpu = measure(c, workload, c * args.requests_per_client, args.draft_tokens)
                print(f"c={c:2d} {workload:8s} {cpu / tokens * 1e6:.0f} µs of engine CPU per token", flush=True)


if __name__ == "__main__":
    main()
