"""Drafts by prompt lookup (engine/drafts.py): guesses from the text so far, never a change in the text."""

import asyncio
from importlib.resources import files

import pytest

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.engine.costs import StepCosts
from pocketlm.engine.drafts import PRIOR, Drafter, step_drafts

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


def test_every_guess_is_checked_against_the_tokens_that_follow_sent_or_not():
    d = Drafter([1, 2, 3, 4, 1, 2, 3])
    assert d.draft(3) == [4, 1, 2] and d.kept == PRIOR
    d.append(4)  # came true: the estimate rises, and what is left of the guess is the draft
    assert d.kept > PRIOR and d.draft(3) == [1, 2]
    rose = d.kept
    d.append(9)  # did not: the estimate falls and the guess is settled
    assert d.kept < rose and d.draft(3) == []  # "3 4 9" never occurred before


def _costs(ms_by_rows: dict[int, float]) -> StepCosts:
    costs = StepCosts()
    for rows, ms in ms_by_rows.items():
        costs.observe(rows, ms / 1000)
    return costs


def _drafter(kept: float) -> Drafter:
    d = Drafter([5, 6, 7, 8, 9, 10, 5, 6, 7])  # its next guess: 8 9 10
    d.kept = kept
    return d


# One stream of SmolLM2 on two cores (benchmarks/NOTES.md): 1 row 8.9 ms, 2 rows 16.8, 3 rows 20.0, 4 rows 22.4.
ONE_STREAM = {1: 8.9, 2: 16.8, 3: 20.0, 4: 22.4}


def test_a_lone_stream_drafts_when_its_guesses_mostly_come_true_and_not_otherwise():
    costs = _costs(ONE_STREAM)
    assert step_drafts([(_drafter(0.86), 10, None)], 3, costs) == [[8, 9, 10]]  # greedy text: 3.2 tokens for 22.4 ms
    assert step_drafts([(_drafter(0.35), 10, None)], 3, costs) == [[]]  # sampled text: a lone row pays more
    assert step_drafts([(_drafter(0.86), 2, None)], 3, costs) == [[8, 9]]  # within what the sample may still take


def test_rows_that_cost_as_much_as_they_bring_are_not_drafted():
    costs = _costs({r: 3.0 * r for r in range(16, 65)})  # 16 streams: every row costs a full share
    assert step_drafts([(_drafter(0.9), 10, None) for _ in range(16)], 3, costs) == [[]] * 16
    assert step_drafts([(_drafter(0.9), 10, None)], 3, StepCosts()) == [[]]  # nothing measured yet: no bet


def test_many_streams_draft_nothing_even_where_a_step_would_pay():
    costs = _costs({16: 37.3, 32: 60.3, 48: 82.4, 64: 109.5})  # 16 streams (NOTES.md): a second row costs 1.6x
    assert step_drafts([(_drafter(0.94), 10, None) for _ in range(16)], 3, costs) == [[]] * 16
    costs = _costs({4: 24.1, 8: 28.6, 12: 35.7, 16: 36.5})  # 4 streams: within DRAFT_ROWS, the costs decide
    assert step_drafts([(_drafter(0.94), 10, None) for _ in range(4)], 3, costs) == [[8, 9, 10]] * 4


def test_a_step_drafts_only_as_far_as_every_sample_has_a_guess():
    short = Drafter([5, 6, 7, 8, 5, 6, 7])  # its guess: 8 5 6, cut at its room of 1
    short.kept = 0.9
    drafts = step_drafts(
        [(_drafter(0.9), 10, None), (short, 1, None)], 3, None
    )  # None: as long as possible, cost aside
    assert drafts == [[8], [8]]


@pytest.fixture(scope="module")
def undrafted():
    eng = load_engine(ModelOptions(), EngineConfig(slots=4, n_ctx=512, draft_tokens=0))
    yield eng
    eng.stop(0)


@pytest.fixture(scope="module")
def drafting():
    """Drafts whenever every sample has a guess, whatever it costs: so that each case below does draft."""
    eng = load_engine(ModelOptions(), EngineConfig(slots=4, n_ctx=512, draft_policy="always"))
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
def test_drafting_gives_the_same_samples_as_none(drafting, undrafted, params):
    """One engine drafts (up to 3 tokens), the other does not: same tokens, text, logprobs."""
    params = SamplingParams(max_new_tokens=48, ignore_eos=True, **params)
    before = drafting.stats()
    drafted = _run(drafting, REPEATING, params)
    after = drafting.stats()
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


def test_one_slot_drafting_keeps_a_seeded_text_past_256_cells():
    """The CLI's engine (one slot, the default KV type): its passes with drafted rows and its passes of one row
    past 256 cells must round alike, or a seeded text would depend on whether the engine chose to draft. Up to 3
    drafted tokens and up to 7 (pocketlm's attention kernel takes up to 4 rows of a sequence without packing)."""
    verse = (files("pocketlm") / "assets" / "shakespeare-sample.txt").read_text(encoding="utf-8")[:1600]
    params = SamplingParams(temperature=0.8, top_p=0.95, seed=1, max_new_tokens=48, ignore_eos=True)
    texts, drafted = [], []
    for config in (
        EngineConfig(slots=1, n_ctx=1024, draft_tokens=0),
        EngineConfig(slots=1, n_ctx=1024, draft_policy="always"),
        EngineConfig(slots=1, n_ctx=1024, draft_tokens=7, draft_policy="always"),
    ):
        eng = load_engine(ModelOptions(), config)
        try:
            assert len(eng.tokenize(verse)) > 300
            texts.append(_run(eng, verse, params).samples[0].token_ids)
            drafted.append(eng.stats().draft_tokens)
        finally:
            eng.stop(0)
    assert drafted[0] == 0 and drafted[1] > 0 and drafted[2] > drafted[1]
    assert texts[0] == texts[1] == texts[2]


def test_drafting_keeps_stops_and_limits(drafting, undrafted):
    """A stop string or the token limit that falls inside an accepted draft ends the sample right there."""
    for params in (
        SamplingParams(temperature=0, max_new_tokens=40, stop=("sweet",)),
        SamplingParams(temperature=0, max_new_tokens=7, ignore_eos=True),
    ):
        a, b = _run(drafting, REPEATING, params).samples[0], _run(undrafted, REPEATING, params).samples[0]
        assert (a.token_ids, a.text, a.finish_reason, a.stop) == (b.token_ids, b.text, b.finish_reason, b.stop)
    assert len(a.token_ids) == 7


def test_a_slot_after_rejected_drafts_serves_its_prefix_correctly(undrafted):
    """Rejected draft tokens are removed from the KV cache: the prefix a later request reuses is the real text."""
    # one slot, so every request reuses it; the KV type the 4-slot engine it is compared with takes
    eng = load_engine(ModelOptions(kv_type="q8_0/f16"), EngineConfig(slots=1, n_ctx=512, draft_policy="always"))
    try:
        # Which seed strays from the verse depends on the CPU's kernels (AVX2 and AVX-512 sample apart):
        # the first seed whose sample had drafts rejected.
        for seed in range(11, 31):
            params = SamplingParams(temperature=1.0, seed=seed, max_new_tokens=64, ignore_eos=True)
            first = _run(eng, REPEATING, params).samples[0]
            stats = eng.stats()
            if stats.draft_tokens > stats.draft_tokens_accepted:
                break
        assert stats.draft_tokens > stats.draft_tokens_accepted  # some drafts were rejected
        follow = REPEATING + first.text + " And"
        greedy = SamplingParams(temperature=0, max_new_tokens=24)
        reused = _run(eng, follow, greedy)
        assert reused.usage.cached_tokens > 0
        assert reused.samples[0].token_ids == _run(undrafted, follow, greedy).samples[0].token_ids
    finally:
        eng.stop(0)


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
        eng = load_engine(model, EngineConfig(slots=2, n_ctx=256, draft_tokens=k, draft_policy="always"))
        try:
            texts[k] = _run(eng, "1 2 3 1 2 3 1 2 3 1 2", params).samples[0].token_ids
            if k:
                assert eng.stats().draft_tokens_accepted > 0
        finally:
            eng.stop(0)
    assert texts[3] == texts[0]
