"""Prompt log-probabilities: scoring a prompt from the passes that read it, and lm-evaluation-harness on top.

The engine (SmolLM2 on llama.cpp) scores a prompt as decoding would have scored the same tokens; a cached
prefix is never used for it; max_new_tokens 0 generates nothing. Then lm-eval's ``local-completions``
against a torch-backed server must agree with lm-eval's own ``hf`` model on the same directory
(benchmarks/lm_eval_gap.py measures the llama.cpp q8_0 gap as well).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from pocketlm.engine import SamplingParams

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


def run(engine, prompt, **kw):
    return asyncio.run(engine.complete(prompt, SamplingParams(**kw)))


def test_a_prompt_is_scored_as_decoding_would_score_it(engine):
    ids = engine.tokenize(TEXT)
    scored = run(engine, ids, max_new_tokens=0, prompt_logprobs=2)
    assert scored.samples[0].token_ids == [] and scored.samples[0].finish_reason == "length"
    assert scored.usage.completion_tokens == 0 and scored.usage.cached_tokens == 0
    lps = scored.prompt_logprobs
    assert [lp.token_id for lp in lps] == ids and lps[0].logprob is None and not lps[0].top
    assert all(lp.logprob <= 0 and len(lp.top) == 2 for lp in lps[1:])
    # Decoding the same text one token at a time gives the same numbers: greedy from a prefix whose
    # continuation is the model's own choice, compared where the two overlap.
    prefix = ids[:5]
    decoded = run(engine, prefix, temperature=0, max_new_tokens=6, logprobs=0).samples[0]
    again = run(engine, prefix + decoded.token_ids, max_new_tokens=0, prompt_logprobs=0).prompt_logprobs[5:]
    assert [lp.token_id for lp in again] == decoded.token_ids
    for a, b in zip(again, decoded.logprobs, strict=True):
        assert math.isclose(a.logprob, b.logprob, abs_tol=1e-4)


def test_a_scored_prompt_never_takes_a_cached_prefix(engine):
    first = run(engine, TEXT, max_new_tokens=1, prompt_logprobs=0)
    plain = run(engine, TEXT, max_new_tokens=1)  # reuses the cache the first left
    second = run(engine, TEXT, max_new_tokens=1, prompt_logprobs=0)
    assert plain.usage.cached_tokens > 0 and second.usage.cached_tokens == 0
    assert [lp.logprob for lp in second.prompt_logprobs] == [lp.logprob for lp in first.prompt_logprobs]


def test_a_long_prompt_is_scored_across_chunks(engine):
    ids = engine.tokenize(TEXT * 40)[:900]  # more rows than one step scores: several chunks
    scored = run(engine, ids, max_new_tokens=0, prompt_logprobs=0).prompt_logprobs
    assert [lp.token_id for lp in scored] == ids and all(lp.logprob is not None for lp in scored[1:])


@pytest.mark.slow  # lm-eval's hf model, then the same task through a torch server
def test_lm_eval_local_completions_equals_its_hf_model(smollm2_hf, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    from api_server import Server
    from lm_eval_gap import evaluate, hf_args, server_args, write_task

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the task's data is a local file
    task = write_task(tmp_path / "task", questions=8)  # 32 choices; benchmarks/lm_eval_gap.py runs all 20
    reference_acc, reference = evaluate("hf", hf_args(smollm2_hf), task)
    server = Server("--model", str(smollm2_hf), "--backend", "torch", "--slots", "8", "--n-ctx", "512")
    try:
        acc, ours = evaluate("local-completions", server_args(server.url, smollm2_hf.name, smollm2_hf), task)
    finally:
        server.stop()
    assert acc == reference_acc
    assert len(ours) == len(reference) == 32
    assert max(abs(a - b) for a, b in zip(ours, reference)) < 1e-3
