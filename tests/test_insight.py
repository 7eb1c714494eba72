"""`pocketlm insight` against a live `pocketlm serve` (with an API key): only the marked section changes."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from api_server import Server, free_port
from pocketlm.cli import main
from pocketlm.deploy.insight import END, START, parse_metrics

KEY = "insight-key"
HEAD = "# A project\n\nSome text — with ünïcödé, a table:\n\n| a | b |\n| --- | --- |\n\n"
TAIL = "\n\n## Later\n\nUntouched, trailing spaces kept   \nno final newline"


@pytest.fixture(scope="module")
def server():
    s = Server("--api-key", KEY, "--slots", "2", "--n-ctx", "512")
    yield s
    s.stop()


@pytest.fixture
def readme(tmp_path):
    path = tmp_path / "README.md"
    path.write_bytes(f"{HEAD}{START}\nold insight\n{END}{TAIL}".encode())
    return path


def insight(*args):
    return CliRunner().invoke(main, ["insight", *args], catch_exceptions=False)


def test_section_is_replaced_and_the_rest_is_byte_identical(server, readme):
    result = insight("--url", server.url, "--readme", str(readme), "--api-key", KEY, "--max-new-tokens", "24")
    assert result.exit_code == 0, result.output
    text = readme.read_bytes().decode()
    assert text.startswith(HEAD + START + "\n") and text.endswith(END + TAIL)
    section = text[len(HEAD) : -len(TAIL)]
    assert "old insight" not in section and "Hosting tip of the day" in section and "`smollm2-135m-instruct`" in section
    assert "requests and generated" in section


def test_running_again_replaces_the_same_section(server, readme):
    for _ in range(2):
        assert (
            insight("--url", server.url, "--readme", str(readme), "--api-key", KEY, "--max-new-tokens", "8").exit_code
            == 0
        )
    text = readme.read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert text.startswith(HEAD) and text.endswith(TAIL)


def test_the_key_comes_from_pocketlm_api_key_like_the_server(server, readme, monkeypatch):
    monkeypatch.setenv("POCKETLM_API_KEY", f"{KEY} another-key")
    assert insight("--url", server.url, "--readme", str(readme), "--max-new-tokens", "8").exit_code == 0
    assert "Hosting tip of the day" in readme.read_text()


def _unchanged_after(readme, *args) -> str:
    before, mtime = readme.read_bytes(), os.stat(readme).st_mtime_ns
    result = insight("--readme", str(readme), *args)
    assert result.exit_code != 0
    assert readme.read_bytes() == before and os.stat(readme).st_mtime_ns == mtime
    assert list(readme.parent.iterdir()) == [readme]  # no temporary file left beside it
    return result.output


def test_wrong_key_leaves_the_file_as_it_was(server, readme):
    output = _unchanged_after(readme, "--url", server.url, "--api-key", "wrong", "--max-new-tokens", "8")
    assert "401" in output


def test_unreachable_service_leaves_the_file_as_it_was(readme):
    output = _unchanged_after(readme, "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "5")
    assert "cannot reach" in output


def test_missing_markers_are_refused_before_asking(server, tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# no markers here\n")
    output = _unchanged_after(path, "--url", server.url, "--api-key", KEY)
    assert START in output


def test_metrics_totals_add_every_route_and_status():
    text = "\n".join(
        [
            "# HELP pocketlm_requests_total HTTP requests",
            'pocketlm_requests_total{route="/generate",status="200"} 3.0',
            'pocketlm_requests_total{route="/v1/models",status="401"} 2.0',
            "pocketlm_completion_tokens_total 120.0",
            "pocketlm_time_to_first_token_seconds_sum 0.5",
            "pocketlm_time_to_first_token_seconds_count 4.0",
        ]
    )
    usage = parse_metrics(text)
    assert (usage.requests, usage.completion_tokens, usage.mean_ttft_ms) == (5, 120, 125.0)
