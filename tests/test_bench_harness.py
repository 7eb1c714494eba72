"""The benchmark harness (benchmarks/) against a real pocketlm server: a few requests, no timings asserted.

It checks that the harness measures what it claims: every request accounted for, the token
count the server reports, the time bound cutting requests instead of hanging, and the full
`run.py` path writing its report, chart and raw results.
"""

from __future__ import annotations

import asyncio
import json

import pytest

import loadgen  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
import peers
import prompts
import report
import run
from pocketlm.models import resolve


@pytest.fixture(scope="module")
def tokenizer():
    return prompts.GGUFTokenizer(resolve(None).path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    gguf = resolve(None).path
    spec = peers.specs(gguf, hf_dir=None)["pocketlm"]
    with peers.RunningServer(spec, tmp_path_factory.mktemp("logs")) as srv:
        yield srv
    assert srv.proc.poll() is not None, "the server must be gone after the with-block"


def test_prompt_set_is_fixed_and_about_100_tokens(tokenizer):
    first, again = prompts.build_prompts(tokenizer, n=8), prompts.build_prompts(tokenizer, n=8)
    assert first == again
    assert len(set(first)) == 8
    assert all(95 <= tokenizer.count(p) <= 101 for p in first)


def test_random_word_prompts_have_the_length_asked_and_differ_from_the_start(tokenizer):
    a, b = (prompts.build_random_words(tokenizer, 120, seed) for seed in (1, 2))
    assert 118 <= tokenizer.count(a) <= 121 and 118 <= tokenizer.count(b) <= 121
    assert a.split()[0] != b.split()[0]  # nothing for a prompt cache to reuse
    assert prompts.build_random_words(tokenizer, 120, 1) == a


def test_sampled_requests_carry_openai_sampling_fields_and_a_seed_each():
    target = loadgen.Target("http://127.0.0.1:5000", extra={"ignore_eos": True})
    body = loadgen._body(target, "Once", 8, {"temperature": 0.8, "top_p": 0.95, "seed": 3})
    assert (body["temperature"], body["top_p"], body["seed"], body["ignore_eos"]) == (0.8, 0.95, 3, True)
    assert "top_k" not in body and loadgen._body(target, "Once", 8, loadgen.GREEDY)["temperature"] == 0.0


def test_targets_must_be_loopback():
    with pytest.raises(ValueError, match="loopback"):
        loadgen.Target("http://10.1.2.3:5000")


def test_load_run_counts_every_request_and_token(server, tokenizer):
    summary = asyncio.run(
        loadgen.run_load(
            server.target(8),
            prompts.build_prompts(tokenizer, n=4),
            concurrency=2,
            n_requests=4,
            max_tokens=8,
            time_limit_s=300,
            count=tokenizer.count,
        )
    )
    assert (summary["completed"], summary["failed"], summary["cut"]) == (4, 0, 0), summary["errors"]
    # ignore_eos reached the server: every request produced exactly max_tokens, by its own usage count
    assert summary["total_output_tokens"] == 32 and summary["token_source"] == "usage"
    assert summary["ttft_ms"]["p50"] <= summary["e2e_ms"]["p50"]
    assert summary["itl_ms"]["p50"] is not None and summary["tpot_ms"]["mean"] is not None
    assert server.peak_rss_mb() > 50


def test_time_limit_cuts_requests_instead_of_waiting(server, tokenizer):
    # 10,000 requests of 64 tokens cannot finish in 2 s on any CPU: the run must stop at the bound
    # and count the requests it abandoned as cut, not as completed or failed.
    summary = asyncio.run(
        loadgen.run_load(
            server.target(64),
            prompts.build_prompts(tokenizer, n=4),
            concurrency=2,
            n_requests=10_000,
            max_tokens=64,
            time_limit_s=2.0,
            count=tokenizer.count,
        )
    )
    assert 1 <= summary["cut"] <= 2 and summary["failed"] == 0
    assert summary["completed"] < 10_000


def test_issue_window_lets_sent_requests_finish(server, tokenizer):
    # After the window no request is sent, but the ones in flight complete: nothing is cut.
    summary = asyncio.run(
        loadgen.run_load(
            server.target(8),
            prompts.build_prompts(tokenizer, n=4),
            concurrency=2,
            n_requests=10_000,
            max_tokens=8,
            time_limit_s=300,
            issue_window_s=0.5,
            count=tokenizer.count,
        )
    )
    assert summary["cut"] == 0 and summary["failed"] == 0
    assert 2 <= summary["completed"] == summary["issued"] < 10_000


def test_prompt_latency_gives_the_best_of_each_length(server, tokenizer):
    by_length = {n: [prompts.build_random_words(tokenizer, n, seed) for seed in (n, n + 1)] for n in (20, 60)}
    out = asyncio.run(loadgen.prompt_latency(server.target(1), by_length, time_limit_s=300, count=tokenizer.count))
    assert sorted(out) == [20, 60]
    for n, r in out.items():
        assert len(r["ttft_ms"]) == 2 and r["best_ms"] == min(r["ttft_ms"]) and not r["errors"]
        assert n <= r["prompt_tokens"] <= n + 2  # the server's own count: BOS and a token at the cut
        assert r["prefill_tok_s"] == pytest.approx(r["prompt_tokens"] / r["best_ms"] * 1000)


def _cell(server, workload, c, round_, tps, itl_p99):
    stats = {"mean": 10.0, "p50": 10.0, "p99": itl_p99}
    summary = {
        "output_throughput": tps,
        "ttft_ms": stats,
        "itl_ms": stats,
        "tpot_ms": stats,
        "errors": [],
    }
    return {
        "server": server,
        "label": server,
        "workload": workload,
        "concurrency": c,
        "round": round_,
        "peak_rss_mb": 500.0,
        "summary": summary,
    }


def test_ratios_are_taken_round_by_round_and_quoted_with_their_spread():
    # Three rounds at c=16: pocketlm / llama-server = 1.1, 0.9, 1.0 (the median), ITL p99 1.2x, 1.6x, 2.0x.
    cells = []
    for r, (tps, itl) in enumerate([(110, 24), (90, 32), (100, 40)]):
        cells += [
            _cell("pocketlm", "completions", 16, r, tps, itl),
            _cell("llama-server", "completions", 16, r, 100, 20),
        ]
    results = {"settings": {"concurrency": [16], "workloads": ["completions"], "repeats": 3}, "cells": cells}
    [row] = [line for line in report._vs_llama_server(results, "pocketlm", "llama-server") if "| 16 |" in line]
    assert "**1.00× (0.90–1.10×)**" in row and "1.60× (1.20–2.00×)" in row
    targets = "\n".join(report._targets_27(results, "pocketlm", "llama-server"))
    assert "| completions c=16 output tok/s ≥ 1.0× | 1.00× (0.90–1.10×) | yes |" in targets
    assert "| completions c=16 ITL p99 ≤ 1.5× llama-server's | 1.60× (1.20–2.00×) | **no** |" in targets
    assert "| completions c=32 ITL p99 ≤ 1.5× llama-server's | — | — |" in targets  # not measured: no verdict


def test_run_writes_report_chart_and_results(tmp_path):
    kept = "<!-- Measured apart. kept -->\n\n## Measured apart\n\nA hand-kept section.\n"
    (tmp_path / "BENCHMARKS.md").write_text("an older report\n\n" + kept)
    run.main(
        [
            "--servers",
            "pocketlm",
            "--workloads",
            "completions,sampled,prompt-lengths",
            "--prompt-lengths",
            "30",
            "--prompt-repeats",
            "1",
            "--concurrency",
            "2",
            "--max-tokens",
            "8",
            "--min-requests",
            "2",
            "--requests-per-client",
            "1",
            "--time-limit",
            "300",
            "--out-dir",
            str(tmp_path),
        ]
    )
    [results] = json.loads((tmp_path / "results.json").read_text())["runs"]
    cell, sampled, lengths = results["cells"]
    assert (cell["server"], cell["concurrency"]) == ("pocketlm", 2)
    assert "error" not in cell and cell["summary"]["completed"] == cell["requests"] == 2
    assert cell["peak_rss_mb"] > 0 and cell["first_reply_s"] >= cell["ready_s"] > 0
    assert (sampled["workload"], sampled["concurrency"], sampled["summary"]["completed"]) == ("sampled", 1, 2)
    assert lengths["workload"] == "prompt-lengths" and lengths["prompt_lengths"]["30"]["best_ms"] > 0
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| 2 | pocketlm |" in text and "python -m pocketlm serve" in text
    assert "## Results: sampled" in text and "## Results: prompt-lengths" in text
    assert "an older report" not in text and text.endswith(kept)  # the sections measured apart stay
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
