"""Soak: many clients, mixed requests, ten minutes, against a real `pocketlm serve` on loopback.

    python benchmarks/soak.py                      # 32 clients, 600 s: what RELIABILITY.md reports
    python benchmarks/soak.py --clients 4 --duration 30

Each client loops until the deadline over a fixed mix: completions and chats,
streamed and not, a third of them with logprobs, streams the client abandons
after a few events, and invalid requests that must get a 400 naming the
parameter. Some prompts draw emoji and Portuguese, whose characters take several
tokens. Anything else (a 5xx, a dropped connection, an error of the wrong shape,
a stream without [DONE]) is an unexpected error. Meanwhile the server's RSS is
sampled; at the end the server's /metrics totals are compared with what the
clients counted.

Writes benchmarks/soak.json (every figure) and benchmarks/soak.png (tokens/s
and RSS over time). Loopback only; bounded by --clients and --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "List three colours:",
    "Write a haiku about the sea.",
    "def fibonacci(n):",
    "The quick brown fox",
    "Explain photosynthesis in one sentence.",
    "Say hello with an emoji.",  # characters of several tokens: tokens with no text of their own
    "Olá! Como você está?",
]

# kind -> (weight, route); the mix every client draws from
MIX = {
    "completion": (3, "/v1/completions"),
    "completion_stream": (3, "/v1/completions"),
    "chat": (3, "/v1/chat/completions"),
    "chat_stream": (3, "/v1/chat/completions"),
    "cancelled_stream": (2, "/v1/chat/completions"),
    "invalid_param": (1, "/v1/completions"),
    "invalid_json": (1, "/v1/chat/completions"),
}


class Tally:
    def __init__(self):
        self.by_kind = collections.Counter()
        self.with_logprobs = 0  # valid requests that asked for logprobs
        self.statuses = collections.Counter()  # (route, status) as the client saw them
        self.unexpected: list[str] = []
        self.tokens_at: list[tuple[float, int]] = []  # (seconds since start, tokens received)

    def bad(self, kind: str, what: str) -> None:
        self.unexpected.append(f"{kind}: {what}")


async def one_request(
    client: httpx.AsyncClient, kind: str, rng: random.Random, tally: Tally, t0: float, seen: list
) -> None:
    """One request of ``kind``; ``seen`` gets its status once the response starts."""
    route = MIX[kind][1]
    max_tokens = rng.randint(8, 48)
    prompt = rng.choice(PROMPTS)
    logprobs = rng.random() < 1 / 3
    if route == "/v1/completions":
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": rng.randint(0, 1000)}
        if logprobs:
            body["logprobs"] = rng.randint(0, 5)
    else:
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "temperature": 0.8}
        if logprobs:
            body.update(logprobs=True, top_logprobs=rng.randint(0, 5))
    if kind == "invalid_param":
        response = await client.post(route, json={**body, "temperature": -1})
        tally.statuses[(route, response.status_code)] += 1
        seen.append(response.status_code)
        if response.status_code != 400 or response.json()["error"]["param"] != "temperature":
            tally.bad(kind, f"{response.status_code} {response.text[:200]}")
        return
    if kind == "invalid_json":
        response = await client.post(route, content=b'{"messages": [', headers={"Content-Type": "application/json"})
        tally.statuses[(route, response.status_code)] += 1
        seen.append(response.status_code)
        if response.status_code != 400 or "error" not in response.json():
            tally.bad(kind, f"{response.status_code} {response.text[:200]}")
        return
    tally.with_logprobs += logprobs
    if not kind.endswith("stream"):
        response = await client.post(route, json=body)
        tally.statuses[(route, response.status_code)] += 1
        seen.append(response.status_code)
        if response.status_code != 200:
            tally.bad(kind, f"{response.status_code} {response.text[:200]}")
            return
        tally.tokens_at.append((time.monotonic() - t0, response.json()["usage"]["completion_tokens"]))
        return
    body["stream"] = True
    cancel_after = rng.randint(1, 4) if kind == "cancelled_stream" else None
    events, done = 0, False
    async with client.stream("POST", route, json=body) as response:
        tally.statuses[(route, response.status_code)] += 1
        seen.append(response.status_code)
        if response.status_code != 200:
            tally.bad(kind, f"{response.status_code} {(await response.aread())[:200]!r}")
            return
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                break
            chunk = json.loads(line[6:])
            if "error" in chunk:
                tally.bad(kind, f"error event {chunk}")
                return
            events += 1
            tally.tokens_at.append((time.monotonic() - t0, 1))
            if cancel_after is not None and events >= cancel_after:
                return  # leave mid-stream: closing the response drops the connection
    if not done:
        tally.bad(kind, f"stream ended without [DONE] after {events} events")


async def client_loop(url: str, seed: int, deadline: float, tally: Tally, t0: float) -> None:
    rng = random.Random(seed)
    kinds, weights = list(MIX), [w for w, _ in MIX.values()]
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            tally.by_kind[kind] += 1
            seen: list[int] = []
            try:
                await one_request(client, kind, rng, tally, t0, seen)
            except (httpx.HTTPError, ValueError, KeyError) as e:
                tally.bad(kind, f"{type(e).__name__}: {e}")
                if isinstance(e, httpx.TimeoutException) and not seen:
                    tally.statuses[(MIX[kind][1], 499)] += 1  # hung up before the status: the server counts a 499


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def sample_rss(pid: int, deadline: float, t0: float, out: list) -> None:
    while time.monotonic() < deadline:
        out.append((time.monotonic() - t0, rss_mb(pid)))
        await asyncio.sleep(5)


def server_counts(url: str) -> dict[tuple[str, int], float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    counts = {}
    for m in re.finditer(r'^pocketlm_requests_total\{route="([^"]+)",status="(\d+)"\} (\S+)$', text, re.M):
        counts[(m.group(1), int(m.group(2)))] = float(m.group(3))
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(HERE / "soak-server.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pocketlm",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--slots",
            str(args.slots),
            "--max-queue",
            str(args.clients * 2),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(600):
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start; see {HERE / 'soak-server.log'}")


def chart(path: Path, tokens_at, rss, window: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max([t for t, _ in tokens_at] + [t for t, _ in rss] + [window])
    edges = [i * window for i in range(int(end // window))]  # whole windows only: a cut-off last one reads as a fall
    rates = [sum(n for t, n in tokens_at if e <= t < e + window) / window for e in edges]
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=100)
    ax.plot([e / 60 for e in edges], rates, color="tab:blue")
    ax.set_xlabel("minutes")
    ax.set_ylabel("tokens/s received", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot([t / 60 for t, _ in rss], [m for _, m in rss], color="tab:red")
    ax2.set_ylabel("server RSS (MB)", color="tab:red")
    ax2.set_ylim(0, 1.25 * max([m for _, m in rss] + [1]))  # room above the line: the title stays clear of it
    ax.set_title("soak: tokens/s and server memory", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


async def soak(url: str, pid: int, args) -> dict:
    tally, rss = Tally(), []
    before = server_counts(url)
    t0 = time.monotonic()
    deadline = t0 + args.duration
    await asyncio.gather(
        sample_rss(pid, deadline, t0, rss), *(client_loop(url, i, deadline, tally, t0) for i in range(args.clients))
    )
    elapsed = time.monotonic() - t0
    await asyncio.sleep(2)  # let the server finish counting the last abandoned streams
    rss.append((time.monotonic() - t0, rss_mb(pid)))
    after = server_counts(url)
    server = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}
    # The server counts an abandoned stream as 200 (its status was sent) or 499 (the client left before it):
    # compare per route, 200 + 499 together.
    mismatches = []
    for route in sorted({r for r, _ in tally.statuses} | {r for r, _ in server if r in {m[1] for m in MIX.values()}}):
        for statuses in ((200, 499), (400,), (503,), (500,)):
            client_n = sum(n for (r, s), n in tally.statuses.items() if r == route and s in statuses)
            server_n = sum(n for (r, s), n in server.items() if r == route and s in statuses)
            if client_n != server_n:
                mismatches.append(f"{route} {statuses}: client {client_n}, server {server_n:g}")
    chart(HERE / "soak.png", tally.tokens_at, rss, window=max(args.duration / 40, 5))
    tokens = sum(n for _, n in tally.tokens_at)
    return {
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "slots": args.slots,
        "requests": sum(tally.by_kind.values()),
        "by_kind": dict(tally.by_kind),
        "with_logprobs": tally.with_logprobs,
        "statuses": {f"{r} {s}": n for (r, s), n in sorted(tally.statuses.items())},
        "server_statuses": {f"{r} {s}": n for (r, s), n in sorted(server.items())},
        "unexpected_errors": len(tally.unexpected),
        "unexpected_examples": tally.unexpected[:10],
        "metrics_mismatches": mismatches,
        "tokens_received": tokens,
        "tokens_per_s": round(tokens / elapsed, 1),
        "rss_mb": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1), "peak": round(max(m for _, m in rss), 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=600, help="seconds")
    parser.add_argument("--slots", type=int, default=16)
    args = parser.parse_args()
    if not (1 <= args.clients <= 256 and 1 <= args.duration <= 3600):
        raise SystemExit("--clients must be 1..256 and --duration 1..3600 s")
    process, url = start_server(args)
    try:
        result = asyncio.run(soak(url, process.pid, args))
    finally:
        process.terminate()
        process.wait(timeout=60)
    result["machine"] = {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()}
    (HERE / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("statuses", "server_statuses")}, indent=1))
    return 0 if result["unexpected_errors"] == 0 and not result["metrics_mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
