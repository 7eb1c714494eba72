"""Many models behind one server (issue 24): load and unload times, RSS per loaded model, and what another
model's load does to a model's running streams.

    PYTHONPATH=src .venv/bin/python benchmarks/models.py                 # ~3 min on 2 quiet cores
    PYTHONPATH=src .venv/bin/python benchmarks/models.py --repeats 5 --streams 4

One `pocketlm serve` on loopback serves the embedded SmolLM2 (the default), Gemma 3 270M and a tiny random
Llama (tests/tiny_models.py, converted to GGUF once), with --slots 4 --n-ctx 1024. Three measurements:

1. each model, loaded and unloaded --repeats times through Ollama's API (`/api/generate` with no prompt
   loads a model; with `keep_alive: 0` it unloads it and answers once the memory is handed back): the
   load time the server measured (pocketlm_model_load_seconds), the unload time as the client saw it, the
   server's RSS (VmRSS) before the load, loaded, and after the unload;
2. SmolLM2 streams (--streams at once, 256 tokens each, greedy) with no other load: the baseline ITL;
3. the same streams while Gemma 3 loads and unloads over and over: the inter-token latency (the gap
   between a stream's chunks, per token) of SmolLM2's streams during Gemma's loads, p50 and p99,
   against the baseline.

The figures go to benchmarks/models_results.json and, as tables, to stdout (for BENCHMARKS.md, "Many models").
A measurement counts only on a quiet machine: the 1-minute load average is printed before the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from api_server import Server  # noqa: E402
from tiny_models import build_tiny_llama  # noqa: E402

SMOLLM2, GEMMA, TINY = "smollm2-135m-instruct", "gemma3-270m", "tiny-llama"


def rss_mb(server: Server) -> float:
    for line in open(f"/proc/{server.process.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def settle(server: Server) -> float:
    """RSS once it stops moving (freed pages leave over a few hundred ms)."""
    last = rss_mb(server)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_mb(server)
        if abs(now - last) < 1:
            return now
        last = now
    return last


def load(server: Server, model: str) -> None:
    answer = httpx.post(f"{server.url}/api/generate", json={"model": model}, timeout=600)
    assert answer.status_code == 200 and answer.json()["done_reason"] == "load", answer.text


def unload(server: Server, model: str) -> float:
    started = time.perf_counter()
    answer = httpx.post(f"{server.url}/api/generate", json={"model": model, "keep_alive": 0}, timeout=600)
    assert answer.status_code == 200 and answer.json()["done_reason"] == "unload", answer.text
    return time.perf_counter() - started


def load_seconds(server: Server, model: str) -> float:
    return server.metric("pocketlm_model_load_seconds_sum", model=model)


def loads_and_unloads(server: Server, models: list[str], repeats: int) -> dict:
    results = {}
    for model in models:
        unload(server, model)  # start from nothing loaded for it (the default loaded at start-up)
        rows = []
        for _ in range(repeats):
            before = settle(server)
            seconds = load_seconds(server, model)
            load(server, model)
            loaded = settle(server)
            rows.append(
                {
                    "load_s": load_seconds(server, model) - seconds,
                    "rss_before_mb": before,
                    "rss_loaded_mb": loaded,
                    "unload_s": unload(server, model),
                    "rss_after_mb": settle(server),
                }
            )
        results[model] = rows
        print(f"{model}: {json.dumps(rows)}", file=sys.stderr)
    return results


def stream_gaps(server: Server, streams: int, tokens: int, during=None) -> tuple[list[float], list[tuple]]:
    """Run ``streams`` SmolLM2 streams at once; (every inter-token gap with its time, the windows ``during`` marks)."""
    gaps: list[tuple[float, float]] = []  # (arrival time, gap per token)
    lock = threading.Lock()
    started = threading.Barrier(streams + 1)

    def one(i: int) -> None:
        body = {
            "model": SMOLLM2,
            "prompt": f"Story {i}: Once upon a time",
            "max_tokens": tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
        }
        last = None
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=600) as response:
            started.wait()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                now = time.perf_counter()
                if last is not None:
                    with lock:
                        gaps.append((now, now - last))
                last = now

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    started.wait()
    windows = during(threads) if during else []
    for t in threads:
        t.join()
    return gaps, windows


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def itl_during_loads(server: Server, streams: int, tokens: int) -> dict:
    unload(server, GEMMA)
    baseline, _ = stream_gaps(server, streams, tokens)

    def swap_gemma(threads) -> list[tuple[float, float]]:
        windows = []
        time.sleep(1.0)  # the streams are decoding
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            load(server, GEMMA)
            windows.append((started, time.perf_counter()))
            unload(server, GEMMA)
        return windows

    loaded, windows = stream_gaps(server, streams, tokens, during=swap_gemma)
    inside = [gap for t, gap in loaded if any(a <= t <= b for a, b in windows)]
    base = [gap for _, gap in baseline]
    ms = 1000
    return {
        "streams": streams,
        "tokens": tokens,
        "loads": len(windows),
        "load_window_s": statistics.median(b - a for a, b in windows) if windows else None,
        "baseline_itl_ms": {"p50": percentile(base, 50) * ms, "p99": percentile(base, 99) * ms, "max": max(base) * ms},
        "during_load_itl_ms": {
            "n": len(inside),
            "p50": percentile(inside, 50) * ms if inside else None,
            "p99": percentile(inside, 99) * ms if inside else None,
            "max": max(inside) * ms if inside else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="loads and unloads per model")
    parser.add_argument("--streams", type=int, default=4, help="SmolLM2 streams running during the loads")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per stream")
    parser.add_argument("--out", type=Path, default=HERE / "models_results.json")
    args = parser.parse_args()
    print(f"1-minute load average before the run: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pocketlm-bench-models-") as scratch:
        tiny = build_tiny_llama(Path(scratch) / TINY)
        server = Server("--model", SMOLLM2, "--model", GEMMA, "--model", str(tiny), "--slots", "4", "--n-ctx", "1024")
        try:
            load(server, TINY)  # its first load converts it (once, into the cache): not what is measured
            results = {
                "load_average": os.getloadavg()[0],
                "models": loads_and_unloads(server, [SMOLLM2, GEMMA, TINY], args.repeats),
                "itl": itl_during_loads(server, args.streams, args.tokens),
            }
        finally:
            server.stop()
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(tables(results))


def tables(results: dict) -> str:
    lines = [
        "| model | load (s) | unload (s) | RSS loaded - before (MB) | RSS after unload - before (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for model, rows in results["models"].items():

        def med(key, rows=rows):
            return statistics.median(r[key] for r in rows)

        grown = statistics.median(r["rss_loaded_mb"] - r["rss_before_mb"] for r in rows)
        kept = statistics.median(r["rss_after_mb"] - r["rss_before_mb"] for r in rows)
        lines.append(f"| {model} | {med('load_s'):.2f} | {med('unload_s'):.2f} | {grown:.0f} | {kept:+.0f} |")
    itl = results["itl"]
    lines += [
        "",
        f"ITL of {itl['streams']} SmolLM2 streams (ms per token): no load p50 {itl['baseline_itl_ms']['p50']:.1f}, "
        f"p99 {itl['baseline_itl_ms']['p99']:.1f}; during Gemma 3's {itl['loads']} loads "
        f"(median {itl['load_window_s']:.2f} s each) p50 {itl['during_load_itl_ms']['p50']:.1f}, "
        f"p99 {itl['during_load_itl_ms']['p99']:.1f}, max {itl['during_load_itl_ms']['max']:.1f}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
