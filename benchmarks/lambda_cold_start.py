"""AWS Lambda cold start, measured in-process: what an execution environment pays before its first answer.

    PYTHONPATH=src python benchmarks/lambda_cold_start.py [--runs 3]

Each run is a fresh Python process configured like template.yaml (POCKETLM_SLOTS=1, ...) that imports
the function's entry module, as Lambda's init does (Python imports + model load), then hands the
handler the seeds' POST /generate (docs/deploy.md) as a Function URL event, twice. Reported per run:
process start to handler ready (interpreter start included), the init alone, the first and a warm
invocation, and the peak RSS (what MemorySize must hold). The heaviest run decides template.yaml's
numbers; the figures are kept in BENCHMARKS.md ("AWS Lambda cold start").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

EVENT = Path(__file__).resolve().parents[1] / "tests" / "lambda_events" / "function_url_generate.json"
TEMPLATE_ENV = {"POCKETLM_SLOTS": "1", "POCKETLM_MAX_NEW_TOKENS": "512", "POCKETLM_LOG_FORMAT": "json"}

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import pocketlm.deploy.lambda_handler as entry
t1 = time.perf_counter()

class Context:
    aws_request_id = "cold-start"
    function_name = "pocketlm"
    def get_remaining_time_in_millis(self):
        return 60_000

event = json.loads(open(sys.argv[1]).read())
first = entry.handler(event, Context())
t2 = time.perf_counter()
warm = entry.handler(event, Context())
t3 = time.perf_counter()
assert first["statusCode"] == warm["statusCode"] == 200, first
print(json.dumps({"init_s": t1 - t0, "first_s": t2 - t1, "warm_s": t3 - t2,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "response": json.loads(first["body"])["response"]}))
"""


def one_run() -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(EVENT)], capture_output=True, text=True, env={**os.environ, **TEMPLATE_ENV}
    )
    if out.returncode:
        sys.exit(f"cold-start run failed:\n{out.stderr}")
    wall = time.perf_counter() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_start_to_ready_s"] = wall - result["first_s"] - result["warm_s"]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    runs = [one_run() for _ in range(args.runs)]
    print(
        "| run | process start → ready s | init (imports + model) s | first /generate s "
        "| warm /generate s | peak RSS MB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for i, r in enumerate(runs, 1):
        print(
            f"| {i} | {r['process_start_to_ready_s']:.2f} | {r['init_s']:.2f} | {r['first_s']:.2f} "
            f"| {r['warm_s']:.2f} | {r['rss_mb']:.0f} |"
        )
    print(f"answer: {runs[0]['response']!r}")


if __name__ == "__main__":
    main()
