"""Benchmark pocketlm against its peers in one run; write BENCHMARKS.md and the chart.

    python benchmarks/run.py            # the full run (make bench): c = 1, 4, 16, 32, both workloads
    python benchmarks/run.py --servers pocketlm,llama-server --concurrency 1,16   # a reduced run
    python benchmarks/run.py --quick    # the whole path in a few minutes, results under /tmp
    python benchmarks/run.py --report-only benchmarks/results.json   # re-render the report

The VM's speed drifts 20-30% within an hour, so servers are compared level by level: at each
concurrency every server runs back to back (the order rotates from level to level), each one
started fresh, warmed up with one request, loaded, measured and stopped before the next starts.
Only one server is ever alive, and the load generator shares the machine's cores with it.

Two workloads: "completions" (~100-token Shakespeare prompts, 128 new tokens, /v1/completions) and
"chat" (every request carries the same ~400-token system prompt and its own short user turn,
64 new tokens, /v1/chat/completions): what a hosted assistant sees, where a server that keeps
prompt prefixes in its KV cache skips most of each prefill.
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

from loadgen import run_load
from peers import KV_VARIANT, NGRAM_PEER, NO_DRAFTS, RunningServer, ServerFailed, specs
from prompts import GGUFTokenizer, build_chat, build_prompts

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
WORKLOADS = ["completions", "chat"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="c = 1 and 4, few requests, 32 tokens, results under /tmp")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS), help=f"comma-separated subset of {ALL_SERVERS}")
    ap.add_argument("--concurrency", default="1,4,16,32")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {WORKLOADS}")
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
        args.chat_max_tokens = 16
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


def measure(spec, workload: str, c: int, prompts, tokenizer, args, log_dir: Path) -> dict:
    """Start one server, warm it up, load it at concurrency c with one workload, stop it."""
    max_tokens = args.chat_max_tokens if workload == "chat" else args.max_tokens
    cell = {
        "workload": workload,
        "server": spec.name,
        "label": spec.label,
        "concurrency": c,
        "requests": requests_for(c, args),
    }
    busy_before = cpu_busy()
    try:
        with RunningServer(spec, log_dir) as server:
            cell["command"] = spec.command(server.port)
            cell["ready_s"] = server.ready_s
            common = dict(count=tokenizer.count, temperature=args.temperature, time_limit_s=args.time_limit)
            # The warm-up uses the measured requests' settings: transformers' batching manager keeps
            # the first request's generation config for all later ones. On the chat workload it also
            # leaves the shared system prompt in one slot, as on any server that has answered before.
            warm_tokens = min(16, max_tokens)
            warm = asyncio.run(
                run_load(
                    server.target(warm_tokens),
                    prompts[-1:],
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
            cell["summary"] = asyncio.run(
                run_load(
                    server.target(max_tokens),
                    prompts,
                    concurrency=c,
                    n_requests=cell["requests"],
                    max_tokens=max_tokens,
                    issue_window_s=args.issue_window,
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


def run(args) -> dict:
    from hf_weights import hf_dir_for
    from pocketlm.models import DEFAULT_MODEL, resolve

    gguf = Path(args.model) if args.model else resolve(None).path
    out = paths(args.out_dir)
    print(f"model: {gguf}", flush=True)
    hf_dir = hf_dir_for(gguf) if {"transformers", "flask"} & set(args.servers) else None
    tokenizer = GGUFTokenizer(gguf)
    workloads = {"completions": build_prompts(tokenizer), "chat": build_chat(tokenizer)}
    served = served_file(args.model or DEFAULT_MODEL)
    exe = None
    if {"llama-server", "llama-server-file", NGRAM_PEER} & set(args.servers):
        from llama_server import ensure

        exe = args.llama_server or ensure()
    peers = specs(gguf, hf_dir, args.server_args, model=args.model or DEFAULT_MODEL, served=served, llama_server=exe)
    started = time.time()
    cells = []
    turn = 0
    for workload in args.workloads:
        # The seeds' /generate has no chat messages: the Flask app sits the chat workload out.
        servers = [n for n in args.servers if workload != "chat" or peers[n].api == "openai"]
        for c in args.concurrency:
            order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
            turn += 1
            for name in order:
                print(f"[{time.strftime('%H:%M:%S')}] {workload} {name} c={c} ...", flush=True)
                cell = measure(peers[name], workload, c, workloads[workload], tokenizer, args, out["logs"])
                cells.append(cell)
                print("   ", _one_line(cell), flush=True)
    return {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_min": (time.time() - started) / 60,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "model": str(gguf),
        "hf_dir": str(hf_dir),
        "served_file": str(served),
        "llama_server": str(exe) if exe else None,
        "prompt_tokens": [tokenizer.count(p) for p in workloads["completions"]],
        "chat_tokens": {
            "system": tokenizer.count(workloads["chat"][0][0]["content"]),
            "user": [tokenizer.count(m[1]["content"]) for m in workloads["chat"]],
        },
        "settings": {
            "concurrency": args.concurrency,
            "max_tokens": args.max_tokens,
            "workloads": args.workloads,
            "chat_max_tokens": args.chat_max_tokens,
            "temperature": args.temperature,
            "issue_window_s": args.issue_window,
            "server_args": args.server_args,
            "time_limit_s": args.time_limit,
            "requests": {c: requests_for(c, args) for c in args.concurrency},
        },
        "cells": cells,
        "not_run": [n for n in ALL_SERVERS if n not in args.servers],
    }


def _one_line(cell: dict) -> str:
    if "error" in cell:
        return "ERROR " + cell["error"].splitlines()[0]
    s = cell["summary"]
    return (
        f"ok {s['completed']} fail {s['failed']} cut {s['cut']} | {s['output_throughput']:.1f} tok/s | "
        f"TTFT p50 {s['ttft_ms']['p50']:.0f} p99 {s['ttft_ms']['p99']:.0f} ms | "
        f"ITL p50 {s['itl_ms']['p50'] or 0:.1f} ms | RSS {cell['peak_rss_mb']:.0f} MB | "
        f"ready {cell['ready_s']:.1f} s | "
        f"first reply {cell['first_reply_s']:.1f} s"
    )


def main(argv=None):
    from report import write_chart, write_report

    args = parse_args(argv)
    out = paths(args.out_dir)
    if args.report_only:
        results = json.loads(args.report_only.read_text())
    else:
        results = run(args)
        out["results"].parent.mkdir(parents=True, exist_ok=True)
        out["results"].write_text(json.dumps(results, indent=1))
    out["report"].parent.mkdir(parents=True, exist_ok=True)
    write_chart(results, out["chart"])
    write_report(results, out["report"], out["chart"], out["results"])
    print(f"wrote {out['report']}, {out['chart']}, {out['results']}")


if __name__ == "__main__":
    main()
