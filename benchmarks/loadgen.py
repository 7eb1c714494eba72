"""Closed-loop load generator: `concurrency` clients, each sending its next request when
the previous one ends, measuring what vLLM's `bench serve` measures.

Per request: time to first token (TTFT), the gaps between streamed chunks (ITL), time per
output token after the first (TPOT = (e2e - TTFT) / (tokens - 1)) and end-to-end latency.
Per run: completed / failed / cut requests, request/s and output tok/s over the run's wall time.

Two wire protocols:
- "openai": streaming POST /v1/completions (SSE), or /v1/chat/completions when the prompt is a
  list of chat messages (the shared-system-prompt workload; text arrives in `delta.content`).
  Output tokens are counted from the server's own statements: its `usage` when it streams one
  (`stream_options.include_usage`); else max_tokens
  when it ended with finish_reason "length" (it stopped because it produced exactly that many);
  else, as vLLM's benchmark does, the streamed text re-tokenized with the model's tokenizer, which
  can undercount (a model may emit token sequences that re-tokenize shorter). Each result says which.
- "generate": the seeds' POST /generate {"prompt"} -> {"response"}, not streaming. The first
  byte arrives with the last, so TTFT = e2e latency and ITL/TPOT do not exist for it.

Runs are bounded by a request count and by time, twice: no request is sent after the issue
window (the requests already sent finish, so a slow server is measured on whole requests rather
than cut short), and at the hard time limit whatever is still running is cancelled and reported
as "cut", never as completed. The run's duration ends when its last request does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Target:
    """Where and how to send requests."""

    base_url: str
    api: str = "openai"  # "openai" | "generate"
    model: str | None = None  # the request's "model" field, where the server wants one
    extra: dict = field(default_factory=dict)  # server-specific body fields (how EOS is ignored, ...)

    def __post_init__(self):
        host = urlparse(self.base_url).hostname
        if host not in LOOPBACK:
            raise ValueError(f"base_url {self.base_url!r}: benchmarks run on loopback only (127.0.0.1)")
        if self.api not in ("openai", "generate"):
            raise ValueError(f"api {self.api!r}: use 'openai' or 'generate'")


@dataclass
class RequestResult:
    ok: bool
    cut: bool = False
    error: str = ""
    ttft: float = 0.0  # seconds
    e2e: float = 0.0
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    token_source: str = ""  # "usage" | "length" | "tokenizer" | "response"
    prompt_tokens: int | None = None

    @property
    def tpot(self) -> float | None:
        if self.output_tokens < 2 or not self.itl:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


Prompt = str | list[dict]  # a completion prompt, or chat messages


GREEDY = {"temperature": 0.0}


def _body(target: Target, prompt: Prompt, max_tokens: int, sampling: dict) -> dict:
    """One request's body; ``sampling``: its OpenAI sampling fields (temperature, top_p, seed)."""
    if target.api == "generate":
        body = {"prompt": prompt, "max_new_tokens": max_tokens, **sampling}
    else:
        body = {
            "messages" if isinstance(prompt, list) else "prompt": prompt,
            "max_tokens": max_tokens,
            **sampling,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if target.model is not None:
            body["model"] = target.model
    body.update(target.extra)
    return body


async def _openai_request(
    client: httpx.AsyncClient, target: Target, body: dict, count: Callable[[str], int]
) -> RequestResult:
    res = RequestResult(ok=False)
    pieces: list[str] = []
    usage = finish_reason = None
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    start = last = time.perf_counter()
    async with client.stream("POST", target.base_url + path, json=body) as resp:
        if resp.status_code != 200:
            res.error = f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}"
            return res
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": ping" comments, "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                res.error = f"stream error: {json.dumps(chunk['error'])[:300]}"
                return res
            usage = chunk.get("usage") or usage
            choices = chunk.get("choices") or []
            finish_reason = next((c["finish_reason"] for c in choices if c.get("finish_reason")), finish_reason)
            text = "".join(choice.get("text") or (choice.get("delta") or {}).get("content") or "" for choice in choices)
            if not text:
                continue
            now = time.perf_counter()
            if not pieces:
                res.ttft = now - start
            else:
                res.itl.append(now - last)
            last = now
            pieces.append(text)
    res.e2e = time.perf_counter() - start
    if usage and usage.get("completion_tokens") is not None:
        res.output_tokens, res.token_source = int(usage["completion_tokens"]), "usage"
        res.prompt_tokens = usage.get("prompt_tokens")
    elif finish_reason == "length":
        res.output_tokens, res.token_source = body["max_tokens"], "length"
    else:
        res.output_tokens, res.token_source = count("".join(pieces)), "tokenizer"
    res.ok = res.output_tokens > 0
    if not res.ok:
        res.error = "stream ended without any text"
    return res


async def _generate_request(
    client: httpx.AsyncClient, target: Target, body: dict, count: Callable[[str], int]
) -> RequestResult:
    res = RequestResult(ok=False)
    start = time.perf_counter()
    resp = await client.post(f"{target.base_url}/generate", json=body)
    res.e2e = res.ttft = time.perf_counter() - start
    if resp.status_code != 200:
        res.error = f"HTTP {resp.status_code}: {resp.text[:300]!r}"
        return res
    data = resp.json()
    if "completion_tokens" in data:
        res.output_tokens, res.token_source = int(data["completion_tokens"]), "response"
    else:
        # The seed contract echoes the prompt before the continuation.
        text = data["response"]
        continuation = text[len(body["prompt"]) :] if text.startswith(body["prompt"]) else text
        res.output_tokens, res.token_source = count(continuation), "tokenizer"
    res.ok = res.output_tokens > 0
    return res


async def _one(client, target, prompt, max_tokens, sampling, count) -> RequestResult:
    body = _body(target, prompt, max_tokens, sampling)
    send = _openai_request if target.api == "openai" else _generate_request
    try:
        return await send(client, target, body, count)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a failed request is a result, not a crash of the benchmark
        return RequestResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])


async def run_load(
    target: Target,
    prompts: list[Prompt],
    *,
    concurrency: int,
    n_requests: int,
    max_tokens: int,
    time_limit_s: float,
    count: Callable[[str], int],
    sampling: dict = GREEDY,
    seeded: bool = False,
    issue_window_s: float | None = None,
) -> dict:
    """Send `n_requests` requests (prompts cycled in order) from `concurrency` clients; summarize.

    `sampling` is added to every request's body; `seeded`: request i also carries `"seed": i`, so
    that every run (and every server) is asked for the same sampled texts.
    No request starts after `issue_window_s` (default: the time limit); at `time_limit_s` the
    requests still running are cut.
    """
    results: list[RequestResult] = []
    next_index = 0
    window = time_limit_s if issue_window_s is None else min(issue_window_s, time_limit_s)

    async def client_loop(client: httpx.AsyncClient):
        nonlocal next_index
        while next_index < n_requests and time.perf_counter() - start < window:
            prompt = prompts[next_index % len(prompts)]
            fields = {**sampling, "seed": next_index} if seeded else sampling
            next_index += 1
            task = asyncio.ensure_future(_one(client, target, prompt, max_tokens, fields, count))
            try:
                results.append(await asyncio.shield(task))
            except asyncio.CancelledError:
                if task.done() and not task.cancelled():  # it finished just as the bound hit
                    results.append(task.result())
                else:
                    task.cancel()  # closing the stream is how a client gives up
                    await asyncio.gather(task, return_exceptions=True)  # let it close its connection
                    results.append(RequestResult(ok=False, cut=True, error="cut at the time limit"))
                raise

    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    timeout = httpx.Timeout(time_limit_s + 5)
    # trust_env=False: never route loopback traffic through a proxy from the environment.
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        start = time.perf_counter()
        loops = [asyncio.ensure_future(client_loop(client)) for _ in range(concurrency)]
        done, pending = await asyncio.wait(loops, timeout=time_limit_s)
        for loop in pending:
            loop.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        duration = time.perf_counter() - start
    for loop in done:
        if loop.exception() is not None:
            raise loop.exception()
    return summarize(
        results, duration, concurrency=concurrency, max_tokens=max_tokens, streaming=target.api == "openai"
    )


async def prompt_latency(
    target: Target,
    prompts: dict[int, list[str]],
    *,
    time_limit_s: float,
    count: Callable[[str], int],
) -> dict:
    """Time to the first token of a lone prompt, by its length: one request at a time, `max_tokens` 1.

    `prompts[n]` holds prompts of ~n tokens (one per repetition, each new to the server so that no
    prompt cache answers). With one token asked for, the request's whole latency is its TTFT: the
    prefill, one sampled token, the HTTP round trip. Per length: every latency, the best (least
    disturbed) of them, and the prompt tokens per second of the best, by the server's own count.
    """
    out = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(time_limit_s), trust_env=False) as client:
        for n, texts in prompts.items():
            results = [await _one(client, target, text, 1, GREEDY, count) for text in texts]
            ok = [r for r in results if r.ok]
            best = min(ok, key=lambda r: r.e2e) if ok else None
            tokens = best.prompt_tokens if best and best.prompt_tokens else n
            out[n] = {
                "prompt_tokens": tokens,
                "ttft_ms": [r.e2e * 1000 for r in ok],
                "best_ms": best.e2e * 1000 if best else None,
                "prefill_tok_s": tokens / best.e2e if best else None,
                "errors": sorted({r.error for r in results if r.error})[:3],
            }
    return out


def _stats(values: list[float], scale: float = 1000.0) -> dict:
    """mean / p50 / p99 in milliseconds (None when there is nothing to measure)."""
    if not values:
        return {"mean": None, "p50": None, "p99": None}
    arr = np.asarray(values) * scale
    return {"mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


def summarize(
    results: list[RequestResult], duration: float, *, concurrency: int, max_tokens: int, streaming: bool
) -> dict:
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    sources = sorted({r.token_source for r in ok})
    return {
        "concurrency": concurrency,
        "max_tokens": max_tokens,
        "streaming": streaming,
        "issued": len(results),
        "completed": len(ok),
        "failed": sum(1 for r in results if not r.ok and not r.cut),
        "cut": sum(1 for r in results if r.cut),
        "duration_s": duration,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "output_throughput": out_tokens / duration if duration else 0.0,
        "total_output_tokens": out_tokens,
        "mean_output_tokens": out_tokens / len(ok) if ok else 0.0,
        "token_source": ",".join(sources),
        "ttft_ms": _stats([r.ttft for r in ok]),
        "itl_ms": _stats([gap for r in ok for gap in r.itl]),
        "tpot_ms": _stats([r.tpot for r in ok if r.tpot is not None]),
        "e2e_ms": _stats([r.e2e for r in ok]),
        "errors": sorted({r.error for r in results if r.error and not r.cut})[:5],
    }


def main():
    """Load one already-running server by hand and print the summary as JSON."""
    from prompts import GGUFTokenizer, build_prompts

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="e.g. http://127.0.0.1:5000 (loopback only)")
    ap.add_argument("--api", choices=["openai", "generate"], default="openai")
    ap.add_argument("--model", default=None, help='the request\'s "model" field, if the server needs one')
    ap.add_argument("--extra", default="{}", help="extra JSON body fields, e.g. '{\"ignore_eos\": true}'")
    ap.add_argument("--gguf", default=None, help="tokenizer for prompts and counting (default: the embedded model)")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--issue-window", type=float, default=300.0, help="seconds during which new requests are sent")
    ap.add_argument("--time-limit", type=float, default=900.0, help="seconds after which running requests are cut")
    args = ap.parse_args()

    if args.gguf is None:
        from pocketlm.models import resolve

        args.gguf = resolve(None).path
    tok = GGUFTokenizer(args.gguf)
    target = Target(args.url.rstrip("/"), args.api, args.model, json.loads(args.extra))
    summary = asyncio.run(
        run_load(
            target,
            build_prompts(tok),
            concurrency=args.concurrency,
            n_requests=args.requests,
            max_tokens=args.max_tokens,
            time_limit_s=args.time_limit,
            issue_window_s=args.issue_window,
            count=tok.count,
        )
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
