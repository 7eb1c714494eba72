"""Where the engine's time goes, per step: llama_decode, sampling, logits copies, batch building, events.

    python benchmarks/profile_engine.py                        # 16 clients, completions workload, py-spy on
    python benchmarks/profile_engine.py --workload chat --ubatch 512 --kv-type f16

Runs the engine in-process (no HTTP) on the file `pocketlm serve` runs (the embedded model requantized
to q8_0), under the serving benchmark's workloads (prompts.py) with `--concurrency` closed-loop
clients, and reports:
- output tok/s, TTFT p50/p99 and ITL p50/p99 (gaps between a request's token events) of the measured
  requests;
- llama.cpp's own timers (`llama_perf_context`): time inside its evaluation, tokens, graphs reused;
- the engine thread's wall time between two passes (its Python: sampling, events, planning), median;
- with py-spy (`--py-spy`, default on; needs ptrace rights), the engine thread's samples sorted into
  the parts of a step: llama_decode, logits copy, batch building, sampling, token/text/event
  delivery, bookkeeping; and how much the other Python threads (HTTP would live there) took.

Backend settings (`--ubatch`, `--kv-type`, `--prefill-chunk`, `--threads`) are the levers of
benchmarks/NOTES.md, one at a time against the default.

`--cpu-clock` measures on a busy machine: llama.cpp computes on one thread, the engine's own, and every
time above is read from that thread's CPU clock instead of the wall clock, so the time other programs
take from the cores does not count (what they take from the caches still does: compare runs that
alternate). Speeds are then per core, and the scheduler still plans with wall-clock step costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pocketlm.backends.llamacpp import LlamaCppBackend
from pocketlm.engine import Engine, EngineConfig, SamplingParams
from pocketlm.models.options import KV_TYPES
from prompts import GGUFTokenizer, build_chat, build_prompts

REPO = Path(__file__).resolve().parents[1]


def served_file() -> Path:
    """The GGUF `pocketlm serve` runs by default (the embedded model as its registry asks, cached)."""
    from pocketlm.models import DEFAULT_MODEL
    from run import served_file as served

    return served(DEFAULT_MODEL)


async def closed_loop(
    engine: Engine,
    prompts: list,
    c: int,
    n_requests: int,
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    clock=time.perf_counter,
) -> dict:
    """`c` clients, each submitting its next request when its last one ends; TTFT, gaps and tokens per request.
    With a temperature, request i is seeded with i: every run samples the same texts. `clock`: what time is."""
    ttfts, gaps, tokens, cached = [], [], 0, 0
    next_index = 0

    async def client():
        nonlocal next_index, tokens, cached
        while next_index < n_requests:
            prompt = prompts[next_index % len(prompts)]
            params = SamplingParams(
                max_new_tokens=max_tokens,
                ignore_eos=True,
                temperature=temperature,
                top_p=top_p,
                seed=next_index if temperature else None,
            )
            next_index += 1
            start = last = clock()
            stream = engine.submit_chat(prompt, params) if isinstance(prompt, list) else engine.submit(prompt, params)
            async for ev in stream:
                if getattr(ev, "token_ids", None):
                    now = clock()
                    (gaps if last != start else ttfts).append(now - last)
                    last = now
                if hasattr(ev, "completion_tokens"):
                    tokens += ev.completion_tokens
                    cached += ev.cached_tokens

    start = clock()
    await asyncio.gather(*(client() for _ in range(c)))
    wall = clock() - start
    ms, gap_ms = np.asarray(ttfts) * 1000, np.asarray(gaps or [0.0]) * 1000
    return {
        "wall_s": wall,
        "tok_s": tokens / wall,
        "ttft_p50_ms": float(np.percentile(ms, 50)),
        "ttft_p99_ms": float(np.percentile(ms, 99)),
        "itl_p50_ms": float(np.percentile(gap_ms, 50)),
        "itl_p99_ms": float(np.percentile(gap_ms, 99)),
        "requests": len(ttfts),
        "cached_tokens": cached,
    }


def time_passes(backend: LlamaCppBackend) -> list[tuple[float, float]]:
    """Record when each forward pass starts and ends (wall clock): what lies between is the engine's Python."""
    passes, forward = [], backend.forward

    def timed(chunks):
        start = time.perf_counter()
        try:
            return forward(chunks)
        finally:
            passes.append((start, time.perf_counter()))

    backend.forward = timed
    return passes


def engine_cpu_clock():
    """The engine thread's CPU clock, as a function (for --cpu-clock)."""
    thread = next(t for t in threading.enumerate() if t.name == "pocketlm-engine")
    clock_id = time.pthread_getcpuclockid(thread.ident)
    return lambda: time.clock_gettime(clock_id)


def _peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


# ---- py-spy: sort the engine thread's samples into the parts of a step ----------------------------


def _line_kinds() -> dict[tuple[str, int], str]:
    """(file name, line) -> part, for the lines of the llama.cpp backend that matter."""
    import pocketlm.backends.llamacpp as mod

    kinds = {}
    for i, text in enumerate(Path(mod.__file__).read_text().splitlines(), 1):
        if "C.llama_decode(" in text:
            kinds["llamacpp.py", i] = "llama_decode"
        elif "as_array(" in text or ".copy()" in text or "np.concatenate" in text:
            kinds["llamacpp.py", i] = "logits copy"
    return kinds


def _part(frames: list[str], kinds) -> str:
    """The part of a step one stack (root first) belongs to, judged from its innermost pocketlm frame."""
    for frame in reversed(frames):
        name, _, where = frame.partition(" (")
        name = name.rpartition(".")[2]  # py-spy writes methods as Class.method
        file, _, line = where.rstrip(")").rpartition(":")
        base = os.path.basename(file)
        if base == "llamacpp.py":
            return kinds.get((base, int(line) if line.isdigit() else 0), "batch building")
        if base == "sampling.py" or name in ("log_softmax", "_logprob"):
            return "sampling"
        if base in ("text.py", "outputs.py", "streams.py") or name in ("_advance", "_finish", "_sample"):
            return "tokens, text, events"
        if base == "drafts.py" or name == "_check_drafts":
            return "drafts (prompt lookup)"
        if name in ("_plan", "forward"):
            return "batch building"
        if base in ("slots.py",) or name in ("_retire", "_admit", "_release", "held", "_drop_cancelled_waiting"):
            return "bookkeeping (admit, retire, slots)"
        if name == "_step":
            return "step (other lines)"
    return "other"


def py_spy_breakdown(raw: Path) -> dict:
    kinds = _line_kinds()
    engine, others = Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any("._loop (" in f and "scheduler.py" in f for f in frames):
            engine[_part(frames, kinds)] += int(count)
        else:
            others += int(count)
    total = sum(engine.values())
    return {
        "engine_samples": total,
        "other_thread_samples": others,
        "engine_parts": {k: v / total for k, v in engine.most_common()} if total else {},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="GGUF file (default: the one pocketlm serve runs)")
    ap.add_argument("--workload", choices=["completions", "chat"], default="completions")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=None, help="measured requests (default 2 x concurrency)")
    ap.add_argument("--max-tokens", type=int, default=None, help="default 128 (completions) / 64 (chat)")
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy, as the serving benchmark")
    ap.add_argument("--top-p", type=float, default=1.0, help="0.95 with --temperature 0.8: the sampled workload")
    ap.add_argument("--ubatch", type=int, default=None, help="micro-batch rows (default: the backend's, by KV type)")
    ap.add_argument("--kv-type", choices=KV_TYPES, default="auto", help="as `pocketlm serve --kv-type`")
    ap.add_argument("--prefill-chunk", type=int, default=EngineConfig.prefill_chunk)
    ap.add_argument(
        "--draft-tokens",
        type=int,
        default=EngineConfig.draft_tokens,
        help="as `pocketlm serve --draft-tokens` (0: no prompt-lookup drafts)",
    )
    ap.add_argument("--draft-policy", choices=["measured", "always"], default=EngineConfig.draft_policy)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cpu-clock", action="store_true", help="one thread; times on its CPU clock (busy machines)")
    ap.add_argument("--py-spy", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    if args.cpu_clock:
        args.threads = 1
    path = args.model or served_file()
    tok = GGUFTokenizer(path)
    prompts = build_chat(tok) if args.workload == "chat" else build_prompts(tok)
    max_tokens = args.max_tokens or (64 if args.workload == "chat" else 128)
    backend = LlamaCppBackend(
        path, slots=args.slots, n_ctx=1024, threads=args.threads, n_ubatch=args.ubatch, kv_type=args.kv_type, perf=True
    )
    engine = Engine(
        backend,
        EngineConfig(
            slots=args.slots,
            prefill_chunk=args.prefill_chunk,
            draft_tokens=args.draft_tokens,
            draft_policy=args.draft_policy,
        ),
    ).start()
    clock = engine_cpu_clock() if args.cpu_clock else time.perf_counter
    passes = time_passes(backend)
    # Warm-up as the server benchmark does: one short request (on chat it leaves the system prompt in a slot).
    asyncio.run(closed_loop(engine, prompts[-1:], 1, 1, 16))
    passes.clear()
    before = backend.perf()
    spy = raw = None
    if args.py_spy:
        raw = Path(tempfile.mkstemp(suffix=".txt")[1])
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(os.getpid()),
                "--format",
                "raw",
                "--rate",
                "200",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # let it attach
    result = asyncio.run(
        closed_loop(
            engine,
            prompts,
            args.concurrency,
            args.requests or 2 * args.concurrency,
            max_tokens,
            args.temperature,
            args.top_p,
            clock,
        )
    )
    after = backend.perf()
    llama = {k: after[k] - before[k] for k in after}
    stats = engine.stats()
    engine.stop(0)
    print(
        f"file {path.name}, workload {args.workload}, c={args.concurrency}, ubatch {backend.n_ubatch}, "
        f"kv {args.kv_type}, prefill chunk {args.prefill_chunk}, threads {args.threads or 'all'}"
    )
    print(
        f"output {result['tok_s']:.1f} tok/s over {result['wall_s']:.1f} s{' of CPU' if args.cpu_clock else ''}, "
        f"{result['requests']} requests, TTFT p50 {result['ttft_p50_ms']:.0f} ms p99 {result['ttft_p99_ms']:.0f} ms, "
        f"ITL p50 {result['itl_p50_ms']:.1f} ms p99 {result['itl_p99_ms']:.1f} ms, "
        f"cached prompt tokens {result['cached_tokens']}, peak RSS {_peak_rss_mb():.0f} MB"
    )
    evals = llama["prompt_eval_ms"] + llama["eval_ms"]
    print(
        f"llama.cpp: {evals / 1000:.2f} s evaluating ({evals / 1000 / result['wall_s']:.0%} of wall), "
        f"{llama['prompt_tokens']} tokens in batches of several, {llama['eval_calls']} one-token calls, "
        f"{llama['graphs_reused']} graphs reused"
    )
    print(f"drafts: {stats.draft_tokens} draft tokens, {stats.draft_tokens_accepted} accepted")
    between = [b[0] - a[1] for a, b in zip(passes, passes[1:]) if b[0] - a[1] < 0.05]  # not the idle waits
    print(
        f"engine thread between passes: median {1000 * np.median(between):.3f} ms "
        f"(passes: median {1000 * np.median([end - start for start, end in passes]):.2f} ms)"
    )
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        _, err = spy.communicate(timeout=60)
        parts = py_spy_breakdown(raw)
        if not parts["engine_samples"]:
            print(
                "py-spy recorded nothing from the engine thread:",
                err.decode(errors="replace")[-500:],
                raw.read_text()[:1000],
            )
        else:
            print(
                f"py-spy, engine thread ({parts['engine_samples']} samples; other threads "
                f"{parts['other_thread_samples']}):"
            )
            for name, share in parts["engine_parts"].items():
                print(f"  {share:6.1%}  {name}")
        raw.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
