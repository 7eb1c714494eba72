"""Ray Serve on this machine: one replica on every core vs one replica per core, same load.

    PYTHONPATH=src python benchmarks/ray_replicas.py [--cpus 2] [--concurrency 32] [--requests 64] [--max-tokens 64]

A local Ray gets ``--cpus`` CPUs. Configurations, back to back in one Ray session
(default; ``--configs 2x1,1x1,1x2`` picks others and their order):
  - 1 replica  x cpus CPUs (llama.cpp threads = cpus, 16 slots)
  - cpus replicas x 1 CPU  (1 thread each, 16 slots each)
Load: the closed-loop generator of benchmarks/loadgen.py, streaming /v1/completions with ignore_eos, so
every request makes exactly --max-tokens tokens. Prints one JSON line per configuration and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time

import ray
from ray import serve

from loadgen import Target, run_load
from pocketlm.deploy.ray_serve import Scaling, build_deployment
from pocketlm.engine import EngineConfig
from pocketlm.server import ServeSettings
from prompts import GGUFTokenizer, build_prompts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, scaling: Scaling, args, prompts, tokenizer) -> dict:
    settings = ServeSettings(engine=EngineConfig(slots=16, n_ctx=512))
    started = time.perf_counter()
    serve.run(build_deployment(settings, scaling), name="pocketlm", route_prefix="/")
    deploy_s = time.perf_counter() - started
    target = Target(url, "openai", "smollm2-135m-instruct", {"ignore_eos": True})
    summary = asyncio.run(
        run_load(
            target,
            prompts,
            concurrency=args.concurrency,
            n_requests=args.requests,
            max_tokens=args.max_tokens,
            time_limit_s=600,
            count=tokenizer.count,
        )
    )
    serve.delete("pocketlm")
    return {
        "replicas": scaling.replicas,
        "cpus_per_replica": scaling.cpus_per_replica,
        "deploy_s": round(deploy_s, 1),
        "completed": summary["completed"],
        "failed": summary["failed"],
        "output_tok_s": round(summary["output_throughput"], 1),
        "ttft_p50_ms": round(summary["ttft_ms"]["p50"]),
        "e2e_p50_ms": round(summary["e2e_ms"]["p50"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--configs",
        default=None,
        help="REPLICASxCPUS list, in the order run, e.g. 2x1,1x1,1x2 (default: 1xCPUS,CPUSx1)",
    )
    args = ap.parse_args()
    configs = args.configs or f"1x{args.cpus},{args.cpus}x1"
    scalings = [
        Scaling(replicas=int(r), cpus_per_replica=float(c)) for r, c in (x.split("x") for x in configs.split(","))
    ]

    from pocketlm.models import resolve

    tokenizer = GGUFTokenizer(resolve(None).path)
    prompts = build_prompts(tokenizer)
    port = free_port()
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}},
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    rows = []
    try:
        for scaling in scalings:
            rows.append(measure(f"http://127.0.0.1:{port}", scaling, args, prompts, tokenizer))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(
        "\n| replicas x CPUs | completed | failed | output tok/s | TTFT p50 ms | e2e p50 ms |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    for r in rows:
        print(
            f"| {r['replicas']} x {r['cpus_per_replica']:g} | {r['completed']} | {r['failed']} | {r['output_tok_s']} "
            f"| {r['ttft_p50_ms']} | {r['e2e_p50_ms']} |"
        )


if __name__ == "__main__":
    main()
