"""Benchmark pocketlm against its peers in one run; write BENCHMARKS.md and the chart.

    python benchmarks/run.py            # the full run (make bench): c = 1, 4, 16, 32, both workloads
    python benchmarks/run.py --servers pocketlm,llama-server --concurrency 1,16   # a reduced run
    python benchmarks/run.py --quick    # the whole path in a few minutes, results under /tmp
    python benchmarks/run.py --report-only benchmarks/results.json   # re-render the report

The VM's speed drifts 20-30% within an hour, so servers are compared level by level: at each
concurrency every server runs back to back (the order rotates from level to level), each one
started fresh, warmed up with one request, loaded, measured and stopped before the next starts.
Only one server is ever alive, and the load generator shares the machine's cores with it.

Four workloads:
- "completions": ~100-token Shakespeare prompts, 128 new tokens, greedy, /v1/completions;
- "chat": every request carries the same ~400-token system prompt and its own short user turn,
  64 new tokens, /v1/chat/completions: what a hosted assistant sees, where a server that keeps
  prompt prefixes in its KV cache skips most of each prefill;
- "sampled": the completions requests as a chat UI sends them, temperature 0.8, top_p 0.95 and
  no top_k (OpenAI's fields), request i seeded with i;
- "prompt-lengths": one request at a time, prompts of 100 / 400 / 800 / 1,000 tokens of random
  words and max_tokens 1: the time to a first token by the prompt's length, best of 3 each.

`--models` runs the whole comparison for each model in turn (each model's file for every
llama.cpp-based server), one section of the report each; `--repeats` measures every
(workload, level) several times, servers back to back in each round, so the ratios come with
their spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from loadgen import prompt_latency, run_load
from peers import KV_VARIANT, NGRAM_PEER, NO_DRAFTS, RunningServer, ServerFailed, specs
from prompts import GGUFTokenizer, build_chat, build_prompts, build_random_words

REPO = Path(__file__).resolve().parents[1]
ALL_SERVERS = [
    "pocketlm",
    "pocketlm-file",
    KV_VARIANT,
    NO_DRAFTS,
    "llama-cpp",
    "transformers",
    "flask",
    "llama-server",
    "llama-server-file",
    NGRAM_PEER,
]
WORKLOADS = ["completions", "chat", "sampled", "prompt-lengths"]
SAMPLED = {"temperature": 0.8, "top_p": 0.95}  # a chat UI's sampling, in OpenAI's fields: no top_k
PROMPT_LENGTHS = "100,400,800,1000"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="c = 1 and 4, few requests, 32 tokens, results under /tmp")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help=f"comma-separated subset of {ALL_SERVERS}")
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--sampled-concurrency", default="1", help="levels of the sampled workload")
    ap.add_argument("--prompt-lengths", default=PROMPT_LENGTHS, help="prompt tokens of the prompt-lengths workload")
    ap.add_argument("--prompt-repeats", type=int, default=3, help="prompts per length (the best one counts)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}")
    ap.add_argument(
        "--models",
        default=None,
        help="comma-separated models (aliases or GGUF files), each measured in full in turn (default: --model)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="rounds per (workload, level): ratios with their spread")
    ap.add_argument("--max-tokens", type=int, default=128, help="new tokens per completions request")
    ap.add_argument("--chat-max-tokens", type=int, default=64, help="new tokens per chat request")
    ap.add_argument(
        "--llama-server",
        type=Path,
        default=None,
        help="llama-server binary (default: built once from the pinned llama-cpp-python's llama.cpp)",
    )
    ap.add_argument(
        "--requests-per-client", type=int, default=2, help="requests per level = max(--min-requests, this x c)"
    )
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument(
        "--issue-window",
        type=float,
        default=300.0,
        help="seconds per (server, concurrency) during which new requests are sent; sent ones finish",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        default=900.0,
        help="seconds per (server, concurrency) after which running requests are cut",
    )
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--model", default=None, help="GGUF to serve (default: the embedded SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument(
        "--server-args",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help='extra flags for one server, e.g. --server-args "pocketlm=--slots 32" (repeatable)',
    )
    ap.add_argument("--out-dir", type=Path, default=REPO, help="BENCHMARKS.md goes here")
    ap.add_argument("--report-only", type=Path, default=None, help="re-render the report from a results.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.concurrency, args.max_tokens, args.requests_per_client, args.min_requests = "1,4", 32, 1, 2
        args.chat_max_tokens, args.prompt_lengths, args.prompt_repeats = 16, "100,400", 2
        args.issue_window, args.time_limit = 60.0, 180.0
        if args.out_dir == REPO:
            args.out_dir = Path("/tmp/pocketlm-bench-quick")
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(ALL_SERVERS)
    if unknown:
        ap.error(f"--servers: unknown {sorted(unknown)}; choose from {ALL_SERVERS}")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(WORKLOADS):
        ap.error(f"--workloads: choose from {WORKLOADS}")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.sampled_concurrency = [int(c) for c in args.sampled_concurrency.split(",")]
    args.prompt_lengths = [int(n) for n in args.prompt_lengths.split(",")]
    args.models = [m.strip() for m in args.models.split(",")] if args.models else [args.model]
    extra = {}
    for item in args.server_args:
        name, sep, flags = item.partition("=")
        if not sep or name not in ALL_SERVERS:
            ap.error(f"--server-args {item!r}: write NAME=FLAGS with NAME one of {ALL_SERVERS}")
        extra.setdefault(name, []).extend(shlex.split(flags))
    args.server_args = extra
    return args


def paths(out_dir: Path) -> dict[str, Path]:
    """Where the outputs go: the report at out_dir, chart and raw results beside it."""
    in_repo = out_dir.resolve() == REPO
    side = REPO / "benchmarks" if in_repo else out_dir
    return {
        "report": out_dir / "BENCHMARKS.md",
        "chart": side / "serving.png",
        "results": side / "results.json",
        "logs": side / "logs" if not in_repo else Path("/tmp/pocketlm-bench-logs"),
    }


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    flags = Path("/proc/cpuinfo").read_text()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "simd": simd,
        "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    out = {}
    for pkg in ("pocketlm", "llama-cpp-python", "transformers", "torch", "flask", "httpx", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def cpu_busy(interval_s: float = 2.0) -> float:
    """Fraction of all cores busy over the next `interval_s` (from /proc/stat): other people's work.

    The load average would not do: it still remembers the server measured a minute ago.
    """

    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, total (guest time is inside user)

    idle0, total0 = sample()
    time.sleep(interval_s)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def requests_for(c: int, args) -> int:
    return max(args.min_requests, args.requests_per_client * c)


def levels(workload: str, args) -> list[int]:
    """The concurrency levels a workload runs at: the prompt-lengths workload sends one request at a time."""
    return {"sampled": args.sampled_concurrency, "prompt-lengths": [1]}.get(workload, args.concurrency)


def measure(spec, workload: str, c: int, prompts, tokenizer, args, log_dir: Path, round_: int = 0) -> dict:
    """Start one server, warm it up, load it at concurrency c with one workload, stop it."""
    max_tokens = args.chat_max_tokens if workload == "chat" else args.max_tokens
    cell = {
        "workload": workload,
        "server": spec.name,
        "label": spec.label,
        "concurrency": c,
        "round": round_,
        "requests": requests_for(c, args)
        if workload != "prompt-lengths"
        else len(args.prompt_lengths) * args.prompt_repeats,
    }
    busy_before = cpu_busy()
    try:
        with RunningServer(spec, log_dir) as server:
            cell["command"] = spec.command(server.port)
            cell["ready_s"] = server.ready_s
            sampling = SAMPLED if workload == "sampled" else {"temperature": args.temperature}
            common = dict(count=tokenizer.count, sampling=sampling, time_limit_s=args.time_limit)
            # The warm-up uses the measured requests' settings: transformers' batching manager keeps
            # the first request's generation config for all later ones. On the chat workload it also
            # leaves the shared system prompt in one slot, as on any server that has answered before.
            # The prompt-lengths workload is warmed up with a completions prompt.
            warm_tokens = min(16, max_tokens)
            warm = asyncio.run(
                run_load(
                    server.target(warm_tokens),
                    prompts["warm-up"] if workload == "prompt-lengths" else prompts[-1:],
                    concurrency=1,
                    n_requests=1,
                    max_tokens=warm_tokens,
                    **common,
                )
            )
            if warm["completed"] != 1:
                raise ServerFailed(f"warm-up request failed: {warm['errors']}\n{server.log_tail()}")
            # Some servers finish loading on the first request (transformers' batching manager): count it.
            cell["first_reply_s"] = time.perf_counter() - server.started_at
            if workload == "prompt-lengths":
                cell["prompt_lengths"] = asyncio.run(
                    prompt_latency(
                        server.target(1), prompts["by length"], time_limit_s=args.time_limit, count=tokenizer.count
                    )
                )
            else:
                cell["summary"] = asyncio.run(
                    run_load(
                        server.target(max_tokens),
                        prompts,
                        concurrency=c,
                        n_requests=cell["requests"],
                        max_tokens=max_tokens,
                        issue_window_s=args.issue_window,
                        seeded=workload == "sampled",
                        **common,
                    )
                )
            cell["peak_rss_mb"] = server.peak_rss_mb()
    except ServerFailed as exc:
        cell["error"] = str(exc)
    cell["cpu_busy_before"] = busy_before
    return cell


def served_file(model: str | None) -> Path:
    """The GGUF pocketlm actually runs for `model` on llama.cpp: the embedded alias is requantized (q8_0), cached."""
    from pocketlm.models.prepare import prepare

    return prepare(model, "llama.cpp").path


def run(args, model: str | None = None) -> dict:
    """The whole comparison for one model (None: the embedded default): every workload, level, round and server."""
    from hf_weights import hf_dir_for
    from pocketlm.models import DEFAULT_MODEL, resolve

    gguf = resolve(model).path
    out = paths(args.out_dir)
    print(f"model: {gguf}", flush=True)
    hf_dir = hf_dir_for(gguf) if {"transformers", "flask"} & set(args.servers) else None
    tokenizer = GGUFTokenizer(gguf)
    completions = build_prompts(tokenizer)
    workloads = {
        "completions": completions,
        "chat": build_chat(tokenizer),
        "sampled": completions,
        "prompt-lengths": {
            "warm-up": completions[-1:],
            "by length": {
                n: [build_random_words(tokenizer, n, seed=1000 * n + k) for k in range(args.prompt_repeats)]
                for n in args.prompt_lengths
            },
        },
    }
    served = served_file(model or DEFAULT_MODEL)
    exe = None
    if {"llama-server", "llama-server-file", NGRAM_PEER} & set(args.servers):
        from llama_server import ensure

        exe = args.llama_server or ensure()
    peers = specs(gguf, hf_dir, args.server_args, model=model or DEFAULT_MODEL, served=served, llama_server=exe)
    started = time.time()
    cells = []
    turn = 0
    for workload in args.workloads:
        # The seeds' /generate has no chat messages or sampling fields: the Flask app sits those workloads out.
        servers = [n for n in args.servers if workload in ("completions", "prompt-lengths") or peers[n].api == "openai"]
        for c in levels(workload, args):
            for round_ in range(args.repeats):
                order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
                turn += 1
                for name in order:
                    print(f"[{time.strftime('%H:%M:%S')}] {workload} {name} c={c} round {round_ + 1} ...", flush=True)
                    cell = measure(peers[name], workload, c, workloads[workload], tokenizer, args, out["logs"], round_)
                    cells.append(cell)
                    print("   ", _one_line(cell), flush=True)
    return {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_min": (time.time() - started) / 60,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "model": str(gguf),
        "model_name": model or DEFAULT_MODEL,
        "hf_dir": str(hf_dir),
        "served_file": str(served),
        "llama_server": str(exe) if exe else None,
        "prompt_tokens": [tokenizer.count(p) for p in completions],
        "chat_tokens": {
            "system": tokenizer.count(workloads["chat"][0][0]["content"]),
            "user": [tokenizer.count(m[1]["content"]) for m in workloads["chat"]],
        },
        "settings": {
            "concurrency": args.concurrency,
            "sampled_concurrency": args.sampled_concurrency,
            "sampled": SAMPLED,
            "prompt_lengths": args.prompt_lengths,
            "prompt_repeats": args.prompt_repeats,
            "repeats": args.repeats,
            "max_tokens": args.max_tokens,
            "workloads": args.workloads,
            "chat_max_tokens": args.chat_max_tokens,
            "temperature": args.temperature,
            "issue_window_s": args.issue_window,
            "server_args": args.server_args,
            "time_limit_s": args.time_limit,
            "requests": {c: requests_for(c, args) for c in sorted({*args.concurrency, *args.sampled_concurrency})},
        },
        "cells": cells,
        "not_run": [n for n in ALL_SERVERS if n not in args.servers],
    }


def _one_line(cell: dict) -> str:
    if "error" in cell:
        return "ERROR " + cell["error"].splitlines()[0]
    if "prompt_lengths" in cell:
        return " | ".join(
            f"{n} tokens: best {_ms(r['best_ms'])} ms of {len(r['ttft_ms'])}" for n, r in cell["prompt_lengths"].items()
        )
    s = cell["summary"]
    return (
        f"ok {s['completed']} fail {s['failed']} cut {s['cut']} | {s['output_throughput']:.1f} tok/s | "
        f"TTFT p50 {s['ttft_ms']['p50']:.0f} p99 {s['ttft_ms']['p99']:.0f} ms | "
        f"ITL p50 {s['itl_ms']['p50'] or 0:.1f} ms | RSS {cell['peak_rss_mb']:.0f} MB | "
        f"ready {cell['ready_s']:.1f} s | "
        f"first reply {cell['first_reply_s']:.1f} s"
    )


def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f}"


def main(argv=None):
    from report import chart_path, runs_of, write_chart, write_report

    args = parse_args(argv)
    out = paths(args.out_dir)
    if args.report_only:
        runs = runs_of(json.loads(args.report_only.read_text()))
    else:
        runs = [run(args, model) for model in args.models]
        out["results"].parent.mkdir(parents=True, exist_ok=True)
        out["results"].write_text(json.dumps({"runs": runs}, indent=1))
    out["report"].parent.mkdir(parents=True, exist_ok=True)
    for i, results in enumerate(runs):
        write_chart(results, chart_path(out["chart"], i, results))
    write_report(runs, out["report"], out["chart"], out["results"])
    print(f"wrote {out['report']}, {out['chart']}, {out['results']}")


if __name__ == "__main__":
    main()
