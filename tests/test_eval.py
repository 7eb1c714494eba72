"""`pocketlm eval`: sliding-window perplexity and bits per byte, the same on llama.cpp and torch.

Every backend number is checked against `plain_sliding_window` below: an independent
implementation of the usual recipe (labels masked with -100, straight on a transformers model).

SmolLM2 parity (the issue asks for the first 50,000 tokens of valid.txt): CI scores the first
POCKETLM_EVAL_TOKENS tokens (default 1,024; see SMOLLM2_TOKENS) because three full 50k-token passes
take many minutes on 2 cores. The full run is the same test with the variable set:

    POCKETLM_EVAL_TOKENS=50000 POCKETLM_EVAL_CONTEXT=1024 pytest tests/test_eval.py -k smollm2 -s
"""

from __future__ import annotations

import json
import math
import os

import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from pocketlm import datasets  # noqa: E402
from pocketlm.backends import load_backend  # noqa: E402
from pocketlm.errors import InvalidParameter  # noqa: E402
from pocketlm.evaluation.perplexity import perplexity, text_perplexity, windows  # noqa: E402
from pocketlm.models import resolve  # noqa: E402
from pocketlm.models.options import ModelOptions  # noqa: E402
from pocketlm.models.prepare import prepare  # noqa: E402
from tiny_models import build_tiny_gpt2  # noqa: E402

VALID = datasets.resolve("shakespeare:valid")
# 1,024 tokens, a 256-token window, stride 128: 7 windows, so the stride bookkeeping (each token
# scored once, with 128+ tokens of history after the first window) runs as in the full 50k run.
# Not fewer: llama.cpp (Q4_1 weights times 8-bit-quantized activations) scores slightly worse than
# fp32 with the same dequantized weights; measured gaps: 1.02% over 512 tokens, 0.57% over 1,024.
# The 50k-token figure must be measured with the command above, not assumed from these.
SMOLLM2_TOKENS = int(os.environ.get("POCKETLM_EVAL_TOKENS", "1024"))
SMOLLM2_CONTEXT = int(os.environ.get("POCKETLM_EVAL_CONTEXT", "256"))


def plain_sliding_window(model, ids: list[int], context: int, stride: int) -> tuple[float, int]:
    """(total NLL in nats, tokens scored): the textbook recipe, written independently of pocketlm."""
    nll, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + context, len(ids))
        new = end - prev_end  # tokens not scored by an earlier window
        inputs = torch.tensor([ids[begin:end]])
        labels = inputs.clone()
        labels[:, :-new] = -100
        with torch.no_grad():
            logits = model(inputs).logits[0, :-1].double()
        labels = labels[0, 1:]
        keep = labels != -100
        logp = torch.log_softmax(logits[keep], dim=-1)
        nll -= logp.gather(1, labels[keep][:, None]).sum().item()
        count += int(keep.sum())
        prev_end = end
        if end == len(ids):
            break
    return nll, count


def test_windows_score_every_token_exactly_once():
    for n, context, stride in [(2, 2, 1), (10, 4, 4), (10, 4, 1), (1000, 128, 64), (1001, 100, 37), (50, 64, 32)]:
        seen = []
        for w in windows(n, context, stride):
            assert w.end - w.begin <= context and w.begin < w.first_target <= w.end
            seen += range(w.first_target, w.end)
        assert len(seen) == len(set(seen)) and max(seen) == n - 1
        # with overlap, every token but the first is scored; without, each window's first token is not
        expected = n - 1 if stride < context else n - len(windows(n, context, stride))
        assert len(seen) == expected
    with pytest.raises(InvalidParameter, match="stride"):
        windows(100, 16, 17)
    with pytest.raises(InvalidParameter, match="n_ctx"):
        windows(100, 1, 1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-eval") / "gpt2", n_positions=256)


def test_tiny_gpt2_same_numbers_on_both_backends_and_plain_recipe(tiny, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    text = VALID.read_text(encoding="utf-8")[:1_500]
    tok = AutoTokenizer.from_pretrained(tiny)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    nll, count = plain_sliding_window(model, ids, 96, 40)
    plain_bpb = nll / math.log(2) / len(tok.decode(ids[1:]).encode("utf-8"))

    for kind in ("torch", "llama.cpp"):
        # f32: llama.cpp and torch hold the same weights
        options = ModelOptions(str(tiny), backend=kind, quantization="f32")
        backend = load_backend(prepare(options), options, slots=1, n_ctx=256)
        try:
            assert backend.tokenize(text, add_special=False) == ids
            r = text_perplexity(backend, text, n_ctx=96, stride=40)
        finally:
            backend.close()
        assert r.n_tokens == count == len(ids) - 1
        assert r.perplexity == pytest.approx(math.exp(nll / count), rel=1e-4), kind
        assert r.bits_per_byte == pytest.approx(plain_bpb, rel=1e-4), kind


def test_eval_command_prints_json(tiny, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pocketlm.cli import main

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "v.jsonl"
    data.write_text(json.dumps({"text": VALID.read_text(encoding="utf-8")[:1_500]}) + "\n")
    res = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            str(tiny),
            "--data",
            str(data),
            "--n-ctx",
            "64",
            "--stride",
            "32",
            "--backend",
            "torch",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    row = json.loads(res.output[res.output.index("{") :])
    assert row["n_ctx"] == 64 and row["stride"] == 32 and row["tokens"] > 100
    assert 1 < row["perplexity"] and 0 < row["bits_per_byte"]
    bad = CliRunner().invoke(
        main, ["eval", "--model", str(tiny), "--data", str(data), "--n-ctx", "300", "--backend", "torch"]
    )
    assert bad.exit_code != 0 and "n_ctx" in bad.output and "--n-ctx 256" in bad.output
    # No --n-ctx: the window is what the model can see (256 positions here), not a fixed 1024.
    seen = CliRunner().invoke(main, ["eval", "--model", str(tiny), "--data", str(data), "--backend", "torch", "--json"])
    assert seen.exit_code == 0, seen.output
    assert json.loads(seen.output[seen.output.index("{") :])["n_ctx"] == 256


def test_eval_takes_a_dataset_name(tiny, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pocketlm.cli import main

    monkeypatch.setenv("POCKETLM_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            str(tiny),
            "--data",
            "shakespeare:sample",
            "--n-ctx",
            "128",
            "--backend",
            "torch",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    row = json.loads(res.output[res.output.index("{") :])
    assert row["data"] == "shakespeare:sample" and row["tokens"] > 1_000
    bad = CliRunner().invoke(main, ["eval", "--model", str(tiny), "--data", "shakespeare:nope", "--backend", "torch"])
    assert bad.exit_code != 0 and "data" in bad.output and "shakespeare:valid" in bad.output


@pytest.mark.slow  # ~1-2 min on 2 cores: three passes of a 135M model (llama.cpp, torch, plain)
def test_smollm2_perplexity_agrees_across_backends(smollm2_hf):
    from transformers import AutoModelForCausalLM

    context, stride = SMOLLM2_CONTEXT, SMOLLM2_CONTEXT // 2
    text = VALID.read_text(encoding="utf-8")
    results, tokens = {}, {}
    # the GGUF file by path runs as it is (Q4_1), the same weights the HF directory was made from;
    # the alias would run its q8_0 requantization
    for kind, model in (("llama.cpp", str(resolve(None).path)), ("torch", str(smollm2_hf))):
        options = ModelOptions(model, backend=kind)
        backend = load_backend(prepare(options), options, slots=1, n_ctx=context)
        try:
            ids = backend.tokenize(text[: SMOLLM2_TOKENS * 8], add_special=False)[:SMOLLM2_TOKENS]
            assert len(ids) == SMOLLM2_TOKENS
            tokens[kind] = ids
            results[kind] = perplexity(backend, ids, context, stride)
        finally:
            backend.close()
    assert tokens["torch"] == tokens["llama.cpp"]
    model = AutoModelForCausalLM.from_pretrained(smollm2_hf, dtype=torch.float32).eval()
    nll, count = plain_sliding_window(model, ids, context, stride)
    plain = math.exp(nll / count)
    print(
        f"\nSmolLM2 {SMOLLM2_TOKENS} tokens, context {context}, stride {stride}: plain {plain:.4f}, "
        + ", ".join(f"{k} {r.perplexity:.4f} ({r.bits_per_byte:.4f} bits/byte)" for k, r in results.items())
    )
    assert results["torch"].n_tokens == results["llama.cpp"].n_tokens == count
    assert results["torch"].perplexity == pytest.approx(plain, rel=1e-4)  # same fp32 weights, same math
    # llama.cpp runs the Q4_1 weights with 8-bit activations: close, not identical
    assert results["llama.cpp"].perplexity == pytest.approx(plain, rel=0.01)
    assert results["llama.cpp"].perplexity == pytest.approx(results["torch"].perplexity, rel=0.01)
