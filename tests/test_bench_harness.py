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
    """A measured cell as results.json holds it: output tok/s and ITL p99 as given, the rest plain."""
    stats = {"mean": 10.0, "p50": 10.0, "p99": itl_p99}
    summary = {
        "completed": 8,
        "failed": 0,
        "cut": 0,
        "request_throughput": 1.0,
        "output_throughput": tps,
        "mean_output_tokens": 128.0,
        "token_source": "usage",
        "ttft_ms": stats,
        "itl_ms": stats,
        "tpot_ms": stats,
        "e2e_ms": stats,
        "errors": [],
    }
    return {
        "server": server,
        "label": server,
        "workload": workload,
        "concurrency": c,
        "round": round_,
        "command": f"{server} --port 1",
        "ready_s": 1.0,
        "first_reply_s": 1.5,
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


def test_itl_p99_pools_every_gap_of_the_completed_requests():
    # Two streams of 101 tokens: one smooth (100 gaps of 10 ms), one stalled 4 times for 500 ms (a prompt
    # read beside it). 4 of the 200 gaps are stalls, more than 1%: the p99 is a stall. A failed and a cut
    # request count apart and lend no gaps.
    smooth = loadgen.RequestResult(True, ttft=0.1, e2e=1.1, itl=[0.01] * 100, output_tokens=101)
    stalled = loadgen.RequestResult(True, ttft=0.3, e2e=3.26, itl=[0.01] * 96 + [0.5] * 4, output_tokens=101)
    failed = loadgen.RequestResult(False, error="HTTP 500", itl=[9.0])
    cut = loadgen.RequestResult(False, cut=True, itl=[9.0])
    s = loadgen.summarize([smooth, stalled, failed, cut], 2.0, concurrency=2, max_tokens=101, streaming=True)
    assert (s["completed"], s["failed"], s["cut"], s["errors"]) == (2, 1, 1, ["HTTP 500"])
    assert s["output_throughput"] == pytest.approx(101.0)  # 202 tokens in 2 s
    assert s["itl_ms"]["p50"] == pytest.approx(10.0) and s["itl_ms"]["p99"] == pytest.approx(500.0)
    assert s["itl_ms"]["mean"] == pytest.approx((196 * 10 + 4 * 500) / 200)
    assert s["ttft_ms"]["p50"] == pytest.approx(200.0)
    assert s["tpot_ms"]["mean"] == pytest.approx((10.0 + 29.6) / 2)  # (e2e - ttft) / 100 tokens after the first


def _lengths_cell(server, round_, best_ms, rss=500.0):
    """A prompt-lengths cell as results.json holds it (lengths as strings): best TTFT (ms) by prompt length, None
    where every request of that length failed."""
    by_n = {
        str(n): {
            "prompt_tokens": n,
            "ttft_ms": [ms, ms * 1.2],
            "best_ms": ms,
            "prefill_tok_s": n / ms * 1000,
            "errors": [],
        }
        if ms
        else {"prompt_tokens": n, "ttft_ms": [], "best_ms": None, "prefill_tok_s": None, "errors": ["HTTP 500"]}
        for n, ms in best_ms.items()
    }
    cell = _cell(server, "prompt-lengths", 1, round_, 0.0, 0.0)
    del cell["summary"]
    return {**cell, "peak_rss_mb": rss, "prompt_lengths": by_n}


def _issue_27_run(model):
    """Two rounds of issue 27's comparison on made-up figures: pocketlm, llama-server, llama-server-ngram."""
    cells = []
    for r in (0, 1):
        cells += [
            _cell("pocketlm", "completions", 1, r, (120, 100)[r], 30),
            _cell("llama-server", "completions", 1, r, 100, 20),
            _cell(peers.NGRAM_PEER, "completions", 1, r, (100, 110)[r], 20),
            _cell("pocketlm", "sampled", 1, r, (95, 85)[r], 30),
            _cell("llama-server", "sampled", 1, r, 100, 20),
            # 800 tokens: 0.88x then 1.04x; 100 tokens: llama-server's second round failed (no best)
            _lengths_cell("pocketlm", r, {100: 90.0, 800: (880.0, 1040.0)[r]}, rss=400.0),
            _lengths_cell("llama-server", r, {100: (100.0, None)[r], 800: 1000.0}, rss=550.0),
        ]
    return {
        "started": "2026-12-01 10:00 UTC",
        "duration_min": 60.0,
        "command": "python benchmarks/run.py --repeats 2",
        "machine": {"cpu": "a CPU", "cores": 2, "simd": ["avx2"], "mem_gib": 8, "kernel": "6", "python": "3.11"},
        "versions": {"pocketlm": "0"},
        "model": f"/models/{model}.gguf",
        "model_name": model,
        "prompt_tokens": [100, 101],
        "settings": {
            "concurrency": [1],
            "sampled_concurrency": [1],
            "sampled": run.SAMPLED,
            "prompt_lengths": [100, 800],
            "prompt_repeats": 2,
            "repeats": 2,
            "max_tokens": 128,
            "temperature": 0.0,
            "time_limit_s": 900.0,
            "requests": {1: 8},
            "workloads": ["completions", "sampled", "prompt-lengths"],
        },
        "cells": cells,
    }


def test_lone_prompts_are_compared_length_by_length_and_the_must_show_table_reads_every_workload():
    results = _issue_27_run("smollm2-135m-instruct")
    rows = report._prompts_vs(results, "pocketlm", "llama-server")
    assert "| 800 | 960 / 1000 | **0.96× (0.88–1.04×)** | 839 / 800 |" in rows
    assert "| 100 | 90 / 100 | **0.90×** | 1111 / 1000 |" in rows  # the round without a peer figure has no ratio
    targets = "\n".join(report._targets_27(results, "pocketlm", "llama-server"))
    for line in (
        "| completions c=1 greedy output tok/s ≥ 1.0× | 1.10× (1.00–1.20×) | yes |",
        "| completions c=1 sampled output tok/s ≥ 1.0× | 0.90× (0.85–0.95×) | **no** |",
        "| TTFT of a lone 800-token prompt ≤ llama-server's | 0.96× (0.88–1.04×) | yes |",
        "| peak RSS ≤ llama-server's (max over the run) | 0.91× | yes |",  # 500 MB serving / 550 alone
        "| completions c=1 output tok/s ≥ 1.0× llama-server with its n-gram drafts | 1.05× (0.91–1.20×) | yes |",
    ):
        assert line in targets


def test_report_gives_each_model_its_own_comparison(tmp_path):
    runs = [_issue_27_run("smollm2-135m-instruct"), _issue_27_run("gemma3-270m")]
    report.write_report(runs, tmp_path / "BENCHMARKS.md", tmp_path / "serving.png", tmp_path / "results.json")
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "Models, in turn: smollm2-135m-instruct, gemma3-270m." in text
    assert (
        "## pocketlm ÷ llama-server, same run" in text and "## gemma3-270m: pocketlm ÷ llama-server, same run" in text
    )
    assert "### gemma3-270m: Targets (issue 27): pocketlm ÷ llama-server" in text
    assert "![gemma3-270m: output tok/s and p50 TTFT vs concurrency](serving-gemma3-270m.png)" in text
    assert "Run 2026-12-01 10:00 UTC (120 min) with `python benchmarks/run.py --repeats 2`" in text


def test_report_names_each_run_when_a_model_was_measured_again_on_its_own(tmp_path):
    again = {**_issue_27_run("gemma3-270m"), "started": "2026-12-02 09:00 UTC", "duration_min": 40.0}
    again["command"] += " --models gemma3-270m"
    runs = [_issue_27_run("smollm2-135m-instruct"), again]
    report.write_report(runs, tmp_path / "BENCHMARKS.md", tmp_path / "serving.png", tmp_path / "results.json")
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert (
        "Runs, one per model: smollm2-135m-instruct 2026-12-01 10:00 UTC (60 min) with "
        "`python benchmarks/run.py --repeats 2`; gemma3-270m 2026-12-02 09:00 UTC (40 min) with "
        "`python benchmarks/run.py --repeats 2 --models gemma3-270m` (`make bench` runs the full default)."
    ) in text


def test_a_run_of_lone_prompts_alone_reports_them_without_a_chart(tmp_path):
    lone = _issue_27_run("smollm2-135m-instruct")
    lone["settings"]["workloads"] = ["prompt-lengths"]
    lone["cells"] = [c for c in lone["cells"] if c["workload"] == "prompt-lengths"]
    report.write_chart(lone, tmp_path / "serving.png")  # nothing measured against concurrency: nothing drawn
    report.write_report([lone], tmp_path / "BENCHMARKS.md", tmp_path / "serving.png", tmp_path / "results.json")
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert not (tmp_path / "serving.png").exists() and "serving.png" not in text
    assert "| 800 | 960 / 1000 | **0.96× (0.88–1.04×)** | 839 / 800 |" in text


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
