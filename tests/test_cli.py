"""The `pocketlm` command as a user runs it: a real process, the embedded model."""

import json
import subprocess
import sys


def pocketlm(*args, input=None):
    return subprocess.run([sys.executable, "-m", "pocketlm", *args], capture_output=True, text=True, input=input, timeout=300)


def test_generate_the_readme_example():
    out = pocketlm("generate", "The capital of France is", "--temperature", "0", "--max-new-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_generate_json_has_samples_and_usage():
    out = pocketlm("generate", "Hello", "--max-new-tokens", "4", "--ignore-eos", "-n", "2", "--seed", "1", "--json")
    result = json.loads(out.stdout)
    assert len(result["samples"]) == 2
    assert result["usage"]["completion_tokens"] == 8


def test_bad_parameter_is_one_clear_line_not_a_traceback():
    out = pocketlm("generate", "Hello", "--top-p", "1.5")
    assert out.returncode == 1
    assert "top_p: must be <= 1.0" in out.stderr and "Traceback" not in out.stderr


def test_unknown_model_is_one_clear_line():
    out = pocketlm("generate", "Hello", "--model", "nope/nothing")
    assert out.returncode == 1 and "Traceback" not in out.stderr and "nope/nothing" in out.stderr


def test_models_lists_the_embedded_model_with_its_costs():
    out = pocketlm("models")
    assert out.returncode == 0
    line = next(l for l in out.stdout.splitlines() if l.startswith("smollm2-135m-instruct"))
    assert "135M" in line and "Q4_1" in line and "8192" in line


def test_chat_keeps_history_and_quits_on_eof():
    out = pocketlm("chat", "--temperature", "0", "--max-new-tokens", "12",
                   input="What is the capital of France? Answer in one sentence.\nAnd of Italy?\n")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
    assert out.stdout.count("> ") >= 3  # two turns, then the prompt that met end of input
