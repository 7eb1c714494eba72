"""Prompt-prefix reuse: a free slot keeps its tokens' KV, and a prompt that starts with them skips their prefill.

On the real embedded model (llama.cpp). Each test loads its own engine, so "cold" really means
nothing cached; the prompts are long enough (~190 tokens) for several prefill micro-batches.
"""

import asyncio

import pytest

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.engine.slots import SlotPool

SYSTEM = (
    "You are a patient teacher for students who are learning how small language models work. "
    "Answer in plain words, give one short example, and never invent facts you are not sure of. "
) * 5


@pytest.fixture(scope="module")
def engine():
    eng = load_engine(ModelOptions(), EngineConfig(slots=2, n_ctx=1024))
    yield eng
    eng.stop(0)


def run(engine, prompt, **kw):
    result = asyncio.run(engine.complete(prompt, SamplingParams(**kw)))
    return result.samples[0], result.usage


def fresh_engine():
    return load_engine(ModelOptions(), EngineConfig(slots=2, n_ctx=1024))


def test_reused_prefix_gives_the_same_text_as_a_cold_cache(engine):
    cold = fresh_engine()
    try:
        for topic, kw in (("Tokens", dict(temperature=0)), ("Logits", dict(temperature=0.8, top_p=0.95, seed=7))):
            prompt = f"{topic}. " + SYSTEM + "Explain it.\nAnswer:"  # differs from the start: no reuse
            first, first_usage = run(cold, prompt, max_new_tokens=24, ignore_eos=True, **kw)
            again, again_usage = run(cold, prompt, max_new_tokens=24, ignore_eos=True, **kw)
            assert first_usage.cached_tokens <= 1  # at most the BOS token every prompt starts with
            assert again_usage.cached_tokens == again_usage.prompt_tokens - 1  # all but the last token kept
            assert again.token_ids == first.token_ids and again.text == first.text
    finally:
        cold.stop(0)


def test_a_new_question_after_the_same_system_prompt_reuses_exactly_the_shared_tokens(engine):
    a = SYSTEM + "Question: what is attention?\nAnswer:"
    b = SYSTEM + "Question: why do models need positions?\nAnswer:"
    run(engine, a, temperature=0, max_new_tokens=4)
    warm, usage = run(engine, b, temperature=0, max_new_tokens=16)
    ids_a, ids_b = engine.tokenize(a), engine.tokenize(b)
    shared = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
    assert usage.cached_tokens == shared > 150

    cold = fresh_engine()
    try:
        reference, cold_usage = run(cold, b, temperature=0, max_new_tokens=16)
    finally:
        cold.stop(0)
    assert cold_usage.cached_tokens == 0 and warm.token_ids == reference.token_ids


def test_a_prompt_that_differs_at_the_start_reuses_nothing(engine):
    run(engine, SYSTEM + "Question: what is a slot?\nAnswer:", temperature=0, max_new_tokens=2)
    _, usage = run(engine, "Tell me: " + SYSTEM, temperature=0, max_new_tokens=2)
    assert usage.cached_tokens <= 1  # at most the BOS token every prompt starts with


def test_least_recently_used_slot_is_evicted_when_all_hold_prefixes():
    eng = fresh_engine()  # 2 slots
    other = [f"{word}: " + SYSTEM for word in ("Zebra", "Orange", "Kite")]  # no shared start between them
    try:
        for p in other:
            run(eng, p, temperature=0, max_new_tokens=2)
        # other[0]'s slot was evicted for other[2]; other[1] is still held
        assert run(eng, other[1], temperature=0, max_new_tokens=2)[1].cached_tokens > 150
        assert run(eng, other[0], temperature=0, max_new_tokens=2)[1].cached_tokens <= 1
    finally:
        eng.stop(0)


def test_n_samples_and_concurrent_requests_keep_their_text_with_a_warm_cache(engine):
    prompt = SYSTEM + "Question: what is a prompt?\nAnswer:"
    kw = dict(temperature=0.9, seed=3, n=2, max_new_tokens=12, ignore_eos=True)
    cold = asyncio.run(engine.complete(prompt, SamplingParams(**kw)))
    warm = asyncio.run(engine.complete(prompt, SamplingParams(**kw)))
    assert warm.usage.cached_tokens > 150
    assert [s.token_ids for s in warm.samples] == [s.token_ids for s in cold.samples]


def test_slot_pool_prefers_the_longest_prefix_then_the_oldest_slot():
    forgotten = []

    class Recorder:
        def clear_slot(self, slot, keep=0):
            forgotten.append((slot, keep))

    pool = SlotPool(3, Recorder())
    pool.give_back(pool.take_empty(), [1, 2, 3, 4])  # slot 0
    pool.give_back(pool.take_empty(), [1, 2, 9])  # slot 1
    assert pool.take([1, 2, 3, 4, 5]) == (0, 4)
    assert pool.take([1, 2, 3]) == (1, 2)  # the last prompt token is always recomputed
    assert pool.take([7]) == (2, 0) and len(pool) == 0
    assert forgotten[-3:] == [(0, 4), (1, 2), (2, 0)]


def test_requests_arriving_together_copy_the_shared_prefix_from_the_first_and_keep_their_text():
    questions = ["what is attention?", "why do models need positions?", "what is a token?", "what is a slot?"]
    prompts = [SYSTEM + f"Question: {q}\nAnswer:" for q in questions]
    kw = [dict(temperature=0), dict(temperature=0.8, seed=5), dict(temperature=0), dict(temperature=0.7, seed=9)]
    eng = load_engine(ModelOptions(), EngineConfig(slots=4, n_ctx=1024))
    try:

        async def together():
            return await asyncio.gather(
                *(eng.complete(p, SamplingParams(max_new_tokens=12, ignore_eos=True, **k)) for p, k in zip(prompts, kw))
            )

        shared = eng.tokenize(prompts[0])
        shared = next(i for i, (x, y) in enumerate(zip(shared, eng.tokenize(prompts[1]))) if x != y)
        results = asyncio.run(together())
        # Nothing was cached before: the first computes the system prompt, the other three copy it.
        cached = sorted(r.usage.cached_tokens for r in results)
        assert cached[0] <= 1 and all(c >= shared - 1 for c in cached[1:]), cached
    finally:
        eng.stop(0)
    for prompt, k, together_result in zip(prompts, kw, results):
        cold = fresh_engine()
        try:
            alone, usage = run(cold, prompt, max_new_tokens=12, ignore_eos=True, **k)
        finally:
            cold.stop(0)
        assert usage.cached_tokens <= 1
        assert together_result.samples[0].token_ids == alone.token_ids
