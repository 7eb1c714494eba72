"""The `pocketlm` command as a user runs it: a real process, the embedded model."""

import json
import os
import subprocess
import sys


def pocketlm(*args, input=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pocketlm", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_generate_the_readme_example():
    out = pocketlm("generate", "The capital of France is", "--temperature", "0", "--max-new-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_generate_drafts_or_not_as_asked_and_the_text_stays():
    args = ("generate", "To be, or not to be, that is the question:", "--temperature", "0", "--max-new-tokens", "24")
    drafted, undrafted = pocketlm(*args, "--draft-tokens", "5"), pocketlm(*args, "--draft-tokens", "0")
    assert drafted.returncode == undrafted.returncode == 0, drafted.stderr + undrafted.stderr
    assert drafted.stdout == undrafted.stdout
    out = pocketlm(*args, "--draft-tokens", "-1")
    assert out.returncode == 2 and "'--draft-tokens' (env var: 'POCKETLM_DRAFT_TOKENS')" in out.stderr


def test_generate_json_has_samples_and_usage():
    out = pocketlm("generate", "Hello", "--max-new-tokens", "4", "--ignore-eos", "-n", "2", "--seed", "1", "--json")
    result = json.loads(out.stdout)
    assert len(result["samples"]) == 2
    assert result["usage"]["completion_tokens"] == 8


def test_bad_parameter_is_one_clear_line_not_a_traceback():
    out = pocketlm("generate", "Hello", "--top-p", "1.5")
    assert out.returncode == 2  # a usage error, refused before any model loads
    assert "'--top-p' (env var: 'POCKETLM_TOP_P'): 1.5 is not in the range 0.0<x<=1.0" in out.stderr
    assert "Traceback" not in out.stderr
    out = pocketlm("generate", "Hello", "--stop", "")
    assert (
        out.returncode == 1 and "stop: stop strings must not be empty" in out.stderr and "Traceback" not in out.stderr
    )


def test_unknown_model_is_one_clear_line():
    out = pocketlm("generate", "Hello", "--model", "nope/nothing")
    assert out.returncode == 1 and "Traceback" not in out.stderr and "nope/nothing" in out.stderr


def test_models_lists_the_embedded_model_with_its_costs():
    out = pocketlm("models")
    assert out.returncode == 0
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("smollm2-135m-instruct"))
    assert "135M" in line and "Q4_1" in line and "8192" in line


def test_chat_keeps_history_and_quits_on_eof():
    out = pocketlm(
        "chat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        input="What is the capital of France? Answer in one sentence.\nAnd of Italy?\n",
    )
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
    assert out.stdout.count("> ") >= 3  # two turns, then the prompt that met end of input


def test_models_says_which_are_instruction_tuned():
    out = pocketlm("models")
    kinds = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()[1:3]}
    assert kinds == {"smollm2-135m-instruct": "instruct", "gemma3-270m": "base"}


def test_chat_with_a_base_model_stops_at_the_next_user_turn():
    transcript = "User: What is the capital of Brazil?\nAssistant:"
    raw = pocketlm("generate", transcript, "--model", "gemma3-270m", "--temperature", "0", "--max-new-tokens", "60")
    assert "\nUser:" in raw.stdout  # left alone, a base model writes both sides of the conversation
    out = pocketlm(
        "chat",
        "--model",
        "gemma3-270m",
        "--temperature",
        "0",
        "--max-new-tokens",
        "60",
        input="What is the capital of Brazil?\n",
    )
    assert out.returncode == 0, out.stderr
    answer = out.stdout.split("> ", 1)[1]
    assert "Brazil" in raw.stdout and "User:" not in answer and answer.strip()


def test_backend_torch_runs_a_gguf_model_by_converting_it_once():
    args = ("generate", "The capital of France is", "--temperature", "0", "--max-new-tokens", "4", "--json")
    torch_run = json.loads(pocketlm(*args, "--backend", "torch", "--quantization", "f32").stdout)
    assert torch_run["samples"][0]["text"].strip().startswith("Paris")


def test_every_flag_is_an_environment_variable():
    out = pocketlm("generate", "Hello", "--max-new-tokens", "1", env={"POCKETLM_QUANTIZATION": "q5_k"})
    assert out.returncode == 2 and "q5_k" in out.stderr and "POCKETLM_QUANTIZATION" not in out.stdout
    help_text = pocketlm("serve", "--help").stdout
    for env in (
        "POCKETLM_MODEL",
        "POCKETLM_SLOTS",
        "POCKETLM_N_CTX",
        "POCKETLM_THREADS",
        "POCKETLM_GRACE_PERIOD",
        "POCKETLM_QUANTIZATION",
        "POCKETLM_ALLOW_PICKLE",
    ):
        assert env in help_text


def test_old_quantization_variable_still_works_with_a_warning():
    out = pocketlm(
        "generate", "Hello", "--max-new-tokens", "1", "--temperature", "0", env={"POCKETLM_CONVERT_TYPE": "q8_0"}
    )
    assert out.returncode == 0, out.stderr
    assert "POCKETLM_CONVERT_TYPE is deprecated" in out.stderr and "POCKETLM_QUANTIZATION" in out.stderr
