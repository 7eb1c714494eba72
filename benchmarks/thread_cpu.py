"""CPU time per streamed token, thread by thread, of pocketlm and llama-server on the same file.

    python benchmarks/thread_cpu.py                      # one sampled stream, 8 requests, both servers, 2 rounds
    python benchmarks/thread_cpu.py --concurrency 16 --requests 32 --temperature 0

Where the wall time of a token goes when one server is slower than the other at the same pass: each
server is started as `make bench` starts it (benchmarks/peers.py), sent the sampled workload's
request (temperature 0.8, top_p 0.95, seeded; `--temperature 0`: greedy) by `curl` clients, which
cost next to nothing beside a Python load generator, and read from /proc: events streamed per
second, and every thread's CPU time (user + system) per streamed event. llama.cpp's threads spin
between passes, so their CPU is about the wall time; a server's own per-token work shows in its
other threads (pocketlm's event loop is the main thread) and as the wall time its llama.cpp
threads do not account for. Servers alternate, round by round, and one runs at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from peers import RunningServer, specs

TICK = os.sysconf("SC_CLK_TCK")
PROMPT = "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer"


def thread_cpu(pid: int) -> dict[int, float]:
    """Seconds of CPU (user + system) of each live thread of a process, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended between the listing and the read
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def stream_all(url: str, body: dict, requests: int, concurrency: int) -> int:
    """Send `requests` streamed requests, `concurrency` at a time (request i seeded with i): events received."""
    events = 0
    for first in range(0, requests, concurrency):
        clients = [
            subprocess.Popen(
                [
                    "curl",
                    "-sN",
                    "--noproxy",
                    "*",
                    url,
                    "-H",
                    "content-type: application/json",
                    "-d",
                    json.dumps({**body, "seed": i}),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(first, min(first + concurrency, requests))
        ]
        for client in clients:
            events += sum(line.startswith("data: {") for line in client.communicate()[0].splitlines())
    return events


def measure(spec, body: dict, args) -> dict:
    with RunningServer(spec, Path(args.log_dir)) as server:
        url = server.base_url + "/v1/completions"
        stream_all(url, {**body, "max_tokens": 16}, 1, 1)  # warm-up
        pid = server.proc.pid
        before, start = thread_cpu(pid), os.times().elapsed
        events = stream_all(url, body, args.requests, args.concurrency)
        wall, after = os.times().elapsed - start, thread_cpu(pid)
    per_event = {tid: 1000 * (cpu - before.get(tid, 0.0)) / events for tid, cpu in after.items()}
    busy = sorted((ms for tid, ms in per_event.items() if tid != pid and ms >= 0.005), reverse=True)
    return {
        "events_per_s": events / wall,
        "wall_ms_per_event": 1000 * wall / events,
        "main_thread_ms": per_event.get(pid, 0.0),
        "other_threads_ms": busy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default="pocketlm,llama-server")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.8, help="0: greedy (top_p is then not sent)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--log-dir", default="/tmp/pocketlm-thread-cpu")
    args = ap.parse_args()

    from llama_server import ensure
    from pocketlm.models import DEFAULT_MODEL, resolve
    from run import served_file

    served, exe = served_file(DEFAULT_MODEL), ensure()
    peers = specs(resolve(DEFAULT_MODEL).path, None, model=DEFAULT_MODEL, served=served, llama_server=exe)
    body = {"prompt": PROMPT, "max_tokens": args.max_tokens, "stream": True, "ignore_eos": True}
    body |= {"temperature": args.temperature, "top_p": 0.95} if args.temperature > 0 else {"temperature": 0}
    names = args.servers.split(",")
    print(f"c={args.concurrency}, {args.requests} requests of {args.max_tokens} tokens, {body['temperature']=}")
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            r = measure(peers[name], body, args)
            others = " / ".join(f"{ms:.3f}" for ms in r["other_threads_ms"])
            speed = f"{r['events_per_s']:6.1f} events/s, {r['wall_ms_per_event']:.3f} ms each"
            cpu = f"CPU ms per event: main thread {r['main_thread_ms']:.3f}, others {others}"
            print(f"round {round_ + 1} {name:14s} {speed}; {cpu}", flush=True)


if __name__ == "__main__":
    main()
