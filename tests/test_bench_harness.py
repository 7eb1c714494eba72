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


def test_run_writes_report_chart_and_results(tmp_path):
    kept = "<!-- Measured apart. kept -->\n\n## Measured apart\n\nA hand-kept section.\n"
    (tmp_path / "BENCHMARKS.md").write_text("an older report\n\n" + kept)
    run.main(
        [
            "--servers",
            "pocketlm",
            "--workloads",
            "completions",
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
    results = json.loads((tmp_path / "results.json").read_text())
    [cell] = results["cells"]
    assert (cell["server"], cell["concurrency"]) == ("pocketlm", 2)
    assert "error" not in cell and cell["summary"]["completed"] == cell["requests"] == 2
    assert cell["peak_rss_mb"] > 0 and cell["first_reply_s"] >= cell["ready_s"] > 0
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| 2 | pocketlm |" in report and "python -m pocketlm serve" in report
    assert "an older report" not in report and report.endswith(kept)  # the sections measured apart stay
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
