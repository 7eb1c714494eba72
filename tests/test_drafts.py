"""Drafts by prompt lookup (engine/drafts.py): guesses from the text so far, never a change in the text."""

import asyncio

import pytest

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.engine.drafts import Drafter

# Text that repeats itself: small models continue lists and verses like these by copying them.
REPEATING = (
    "Roses are red, violets are blue, sugar is sweet, and so are you.\n"
    "Roses are red, violets are blue, sugar is sweet, and so are you.\nRoses are"
)
VARIED = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "A haiku about autumn:"]


def test_draft_continues_the_latest_earlier_occurrence():
    d = Drafter([1, 2, 3, 4, 1, 2, 3, 5, 6, 1, 2])
    assert d.draft(3) == []  # "1 2" is shorter than an n-gram
    d.append(3)  # the text now ends with 1 2 3, seen twice: the latest continues 5 6
    assert d.draft(3) == [5, 6, 1]
    assert d.draft(1) == [5]


def test_the_ending_itself_is_never_its_own_match():
    d = Drafter([7, 8, 9])
    assert d.draft(4) == []
    for t in (7, 8, 9):
        d.append(t)
    assert d.draft(4) == [7, 8, 9]


def test_a_draft_rejected_whole_pauses_drafting_longer_each_time():
    d = Drafter([1, 2, 3, 1, 2, 3, 1, 2, 3])
    pauses = []
    for _ in range(3):
        d.checked(drafted=3, accepted=0)
        steps = 0
        while not d.draft(3):
            steps += 1
        pauses.append(steps)
    assert pauses == [1, 3, 7]
    d.checked(drafted=3, accepted=1)  # a kept token ends the run of misses
    assert d.draft(3)


@pytest.fixture(scope="module")
def undrafted():
    eng = load_engine(ModelOptions(), EngineConfig(slots=4, n_ctx=512, draft_tokens=0))
    yield eng
    eng.stop(0)


def _run(engine, prompt, params):
    return asyncio.run(engine.complete(prompt, params))


@pytest.mark.parametrize(
    "params",
    [
        dict(temperature=0),
        dict(temperature=0.9, top_p=0.95, seed=1234),
        dict(temperature=0.7, seed=5, frequency_penalty=0.3, presence_penalty=0.2, repetition_penalty=1.1),
        dict(temperature=0, logprobs=2),
        dict(temperature=0.8, seed=3, n=2),
    ],
    ids=["greedy", "seeded-top-p", "penalties", "logprobs", "n=2"],
)
def test_drafting_gives_the_same_samples_as_none(engine, undrafted, params):
    """The shared engine drafts (draft_tokens=3), the other does not: same tokens, text, logprobs."""
    params = SamplingParams(max_new_tokens=48, ignore_eos=True, **params)
    before = engine.stats()
    drafted = _run(engine, REPEATING, params)
    after = engine.stats()
    plain = _run(undrafted, REPEATING, params)
    assert after.draft_tokens > before.draft_tokens  # the case under test did draft
    if params.temperature == 0:
        assert after.draft_tokens_accepted > before.draft_tokens_accepted
    for a, b in zip(drafted.samples, plain.samples, strict=True):
        assert (a.token_ids, a.text, a.finish_reason) == (b.token_ids, b.text, b.finish_reason)
        assert [(lp.token_id, lp.logprob, [t.token_id for t in lp.top]) for lp in a.logprobs] == [
            (lp.token_id, lp.logprob, [t.token_id for t in lp.top]) for lp in b.logprobs
        ]
    assert drafted.usage == plain.usage


def test_drafting_keeps_stops_and_limits(engine, undrafted):
    """A stop string or the token limit that falls inside an accepted draft ends the sample right there."""
    for params in (
        SamplingParams(temperature=0, max_new_tokens=40, stop=("sweet",)),
        SamplingParams(temperature=0, max_new_tokens=7, ignore_eos=True),
    ):
        a, b = _run(engine, REPEATING, params).samples[0], _run(undrafted, REPEATING, params).samples[0]
        assert (a.token_ids, a.text, a.finish_reason, a.stop) == (b.token_ids, b.text, b.finish_reason, b.stop)
    assert len(a.token_ids) == 7


def test_a_slot_after_rejected_drafts_serves_its_prefix_correctly(undrafted):
    """Rejected draft tokens are removed from the KV cache: the prefix a later request reuses is the real text."""
    # one slot, so every request reuses it; the KV type the 4-slot engine it is compared with takes
    eng = load_engine(ModelOptions(kv_type="q8_0"), EngineConfig(slots=1, n_ctx=512))
    try:
        params = SamplingParams(temperature=1.0, seed=11, max_new_tokens=64, ignore_eos=True)
        first = _run(eng, REPEATING, params).samples[0]
        stats = eng.stats()
        assert stats.draft_tokens > stats.draft_tokens_accepted  # some drafts were rejected
        follow = REPEATING + first.text + " And"
        greedy = SamplingParams(temperature=0, max_new_tokens=24)
        reused = _run(eng, follow, greedy)
        assert reused.usage.cached_tokens > 0
        assert reused.samples[0].token_ids == _run(undrafted, follow, greedy).samples[0].token_ids
    finally:
        eng.stop(0)


def test_many_streams_do_not_draft(engine):
    """From 8 decoding samples on, a step's rows already keep the cores busy: no drafts."""

    async def scenario():
        params = SamplingParams(temperature=0, max_new_tokens=32, ignore_eos=True)
        return await asyncio.gather(*(engine.complete(REPEATING, params) for _ in range(10)))

    before = engine.stats()
    asyncio.run(scenario())
    drafted = engine.stats().draft_tokens - before.draft_tokens
    # only the first and last few steps, while fewer than 8 samples decode, may draft
    assert drafted < 10 * 32 // 4


def test_served_stream_is_the_undrafted_text_and_metrics_count_drafts(undrafted):
    """`pocketlm serve` drafts by default: a streamed answer equals the undrafted engine's; /metrics counts."""
    import json

    import httpx

    from api_server import Server

    server = Server("--slots", "2")
    try:
        body = {"prompt": REPEATING, "max_tokens": 48, "temperature": 0, "stream": True}
        text = ""
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    text += json.loads(line[6:])["choices"][0]["text"]
        assert text == _run(undrafted, REPEATING, SamplingParams(temperature=0, max_new_tokens=48)).samples[0].text
        accepted = server.metric("pocketlm_draft_tokens_accepted_total")
        assert 0 < accepted <= server.metric("pocketlm_draft_tokens_total")
    finally:
        server.stop()


def test_draft_tokens_flag_refuses_negative_values():
    from click.testing import CliRunner

    from pocketlm.cli import main

    result = CliRunner().invoke(main, ["serve", "--draft-tokens", "-1"])
    assert result.exit_code == 2
    assert "--draft-tokens" in result.output and "-1 is not in the range x>=0" in result.output


def test_torch_backend_drafts_the_same_text():
    """Any backend: the torch one (a tiny random Llama) gives the same greedy text with and without drafts."""
    from tiny_models import tiny_model_dir

    model = ModelOptions(str(tiny_model_dir("llama")), backend="torch")
    params = SamplingParams(temperature=0, max_new_tokens=40, ignore_eos=True)
    texts = {}
    for k in (3, 0):
        eng = load_engine(model, EngineConfig(slots=2, n_ctx=256, draft_tokens=k))
        try:
            texts[k] = _run(eng, "1 2 3 1 2 3 1 2 3 1 2", params).samples[0].token_ids
            if k:
                assert eng.stats().draft_tokens_accepted > 0
        finally:
            eng.stop(0)
    assert texts[3] == texts[0]
