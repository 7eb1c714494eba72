"""The engine on the scripted backend (tests/fake_backend.py): exact tokens, in milliseconds."""

from __future__ import annotations

import asyncio

import pytest

from fake_backend import ALTERNATIVE, BOS, EOS, fake_engine
from pocketlm.engine import Completion, SampleFinished, SamplingParams, TextDelta, Usage
from pocketlm.errors import ContextLengthExceeded, GenerationFailed, InvalidParameter

SCRIPT = " Paris.\nUser: and Rome?"


@pytest.fixture(scope="module")
def engine():
    with fake_engine(SCRIPT, n_ctx=64, max_prompt_tokens=40) as eng:
        yield eng


def run(coro):
    return asyncio.run(coro)


def test_sampling_at_any_temperature_reads_the_script(engine):
    for params in (
        SamplingParams(temperature=0),
        SamplingParams(temperature=1.5, seed=3),
        SamplingParams(top_p=0.5, n=3),
    ):
        result = run(engine.complete("Capital of France?", params))
        assert [s.text for s in result.samples] == [SCRIPT] * params.n
        assert all(s.finish_reason == "stop" and s.token_ids[-1] == EOS for s in result.samples)
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (19, params.n * (len(SCRIPT) + 1))
        assert result.usage.cached_tokens in (0, 18)  # the loop before may have left the prompt in a free slot


def test_complete_is_the_fold_of_the_stream(engine):
    async def scenario():
        params = SamplingParams(max_new_tokens=5, n=2, logprobs=2)
        events = [event async for event in engine.submit("Hi", params)]
        folded = Completion.empty(2)
        for event in events:
            folded.add(event)
        return events, folded, await engine.complete("Hi", params)

    events, folded, completed = run(scenario())
    assert isinstance(events[-1], Usage) and sum(isinstance(e, SampleFinished) for e in events) == 2
    assert folded.samples == completed.samples  # usage differs only in cached_tokens: the second run reuses "Hi"
    assert folded.usage.total_tokens == completed.usage.total_tokens == 13
    assert completed.usage.cached_tokens == 2  # all of "Hi" but its last token was still in a free slot
    assert folded.done and folded.unfinished == 0
    assert folded.samples[1].text == " Pari" and folded.samples[1].finish_reason == "length"
    top = folded.samples[0].logprobs[0].top
    assert [t.token_id for t in top] == [ord(" "), ALTERNATIVE] and top[0].logprob > top[1].logprob


def test_stop_string_and_utf8_split_over_byte_tokens():
    with fake_engine("olá 🙂 fim", slots=1) as eng:
        deltas = run(_texts(eng, SamplingParams(stop=("fim",))))
    assert "".join(deltas) == "olá 🙂 " and all("\ufffd" not in d for d in deltas)


async def _texts(engine, params):
    return [e.text async for e in engine.submit("x", params) if isinstance(e, TextDelta)]


def test_prompt_checks_live_in_the_engine(engine):
    assert engine.prompt_ids("ab") == [BOS, ord("a"), ord("b")]
    cases = [
        ([], InvalidParameter, "is empty"),
        ([1, 999], InvalidParameter, "token id 999 is outside the vocabulary"),
        ([1, True], InvalidParameter, "list of token ids"),
        ("x" * 45, ContextLengthExceeded, "at most 40 (--max-prompt-tokens)"),
    ]
    for prompt, kind, words in cases:
        with pytest.raises(kind) as err:
            engine.submit(prompt, SamplingParams())
        assert err.value.param == "prompt" and words in err.value.message


def test_a_prompt_that_fills_the_context_is_refused():
    with fake_engine(slots=1, n_ctx=16) as eng:
        with pytest.raises(ContextLengthExceeded, match="the context holds 16"):
            eng.submit([1] * 16, SamplingParams())
        result = run(eng.complete([1] * 10, SamplingParams(max_new_tokens=100, ignore_eos=True)))
    assert result.samples[0].finish_reason == "length" and result.usage.completion_tokens == 6


def test_a_text_far_too_long_is_refused_without_tokenizing_it():
    """Tokenizing a huge text would hold the event loop; its length alone proves it cannot fit."""
    with fake_engine(slots=1, n_ctx=16) as eng:
        calls = []
        tokenize = eng.backend.tokenize
        eng.backend.tokenize = lambda text, add_special=True: calls.append(text) or tokenize(text, add_special)
        with pytest.raises(ContextLengthExceeded, match="has 100000 characters, far more than the 16 tokens"):
            eng.submit("x" * 100_000, SamplingParams())
        assert calls == []
        with pytest.raises(ContextLengthExceeded, match="has 20 tokens"):  # near the limit: counted exactly
            eng.submit("x" * 19, SamplingParams())
        assert calls == ["x" * 19]


def test_the_request_stream_carries_the_prompt_ids(engine):
    async def scenario():
        stream = engine.submit("ab", SamplingParams(max_new_tokens=1))
        ids = stream.prompt_ids
        async for _ in stream:
            pass
        return ids

    assert run(scenario()) == [BOS, ord("a"), ord("b")]


def test_chat_roles_one_rule(engine):
    assert "System: be brief" in engine.render_chat([{"role": "developer", "content": "be brief"}])
    with pytest.raises(InvalidParameter, match="send the result as 'tool'") as err:
        engine.render_chat([{"role": "function", "content": "42"}])
    assert err.value.param == "messages[0].role"
    with pytest.raises(InvalidParameter, match="must be one of system, developer, user, assistant, tool"):
        engine.render_chat([{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}])
    with pytest.raises(InvalidParameter, match="only text content parts") as err:
        engine.render_chat([{"role": "user", "content": [{"type": "image_url"}]}])
    assert err.value.param == "messages[0].content"


def test_chat_without_a_template_stops_at_the_next_user_turn(engine):
    async def scenario():
        completion = Completion.empty(1)
        async for event in engine.submit_chat([{"role": "user", "content": "Capital of France?"}], SamplingParams()):
            completion.add(event)
        return completion

    sample = run(scenario()).samples[0]
    assert sample.text == " Paris." and sample.stop == "\nUser:"


def test_a_backend_failure_while_admitting_fails_that_request_and_the_engine_goes_on():
    with fake_engine(SCRIPT) as eng:
        clear = eng.backend.clear_slot
        eng.backend.clear_slot = lambda slot, keep=0: (_ for _ in ()).throw(RuntimeError("KV cache gone"))
        with pytest.raises(GenerationFailed, match="KV cache gone"):
            run(asyncio.wait_for(eng.complete("Hi", SamplingParams(max_new_tokens=3)), timeout=10))
        eng.backend.clear_slot = clear
        again = run(asyncio.wait_for(eng.complete("Hi", SamplingParams(max_new_tokens=3)), timeout=10))
        assert again.samples[0].text == SCRIPT[:3] and eng.stats().active_slots == 0


def test_max_queue_zero_still_serves_whoever_finds_a_free_slot():
    with fake_engine(SCRIPT, slots=1, max_queue=0) as eng:
        assert run(eng.complete("Hi", SamplingParams(max_new_tokens=2))).samples[0].text == SCRIPT[:2]


def test_prompts_beside_a_running_stream_are_read_within_the_step_budget():
    """While a stream decodes, one long prompt is read a little per step, each step within STALL times the
    stream's own step by the costs the engine measured; prompts that would start more streams than decode are
    read whole at once (a wave), as is a prompt nobody waits beside."""
    # A pass costs 20 ms + 0.1 ms a row: the stream's 1-row step ~20.1 ms, so 1.5x that holds ~100 rows.
    # The script never repeats three tokens in a row (nothing to draft: one row per step for the stream) and has
    # none of the prompts' letters.
    script = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuv"
    with fake_engine(script, n_ctx=1024, step_seconds=0.02, row_seconds=0.0001) as eng:

        async def scenario():
            stream = eng.submit("Go", SamplingParams(temperature=0))
            seen = 0
            async for ev in stream:
                seen += isinstance(ev, TextDelta) and bool(ev.token_ids)
                if seen == 3:  # the stream decodes: one long prompt arrives, then two at once
                    await eng.complete("x" * 600, SamplingParams(max_new_tokens=1))
                    await asyncio.gather(*(eng.complete(c * 600, SamplingParams(max_new_tokens=1)) for c in "yz"))
            await eng.complete("w" * 600, SamplingParams(max_new_tokens=1))  # alone

        run(asyncio.wait_for(scenario(), timeout=60))
        passes = eng.backend.passes

    def reading(letter):
        return [p for p in passes if any(c.tokens[-1] == ord(letter) and c.n_logits <= 1 for c in p)]

    beside = reading("x")
    assert 4 <= len(beside) <= 40  # read whole, it would take one pass
    for p in beside:
        assert sum(len(c.tokens) for c in p) <= 150  # ~100 by the costs; slack for a busy machine's sleeps
        assert len(p) >= 2  # and the stream got its token in each
    assert len({id(p) for p in reading("y") + reading("z")}) <= 2  # a wave: read whole (one pass, or two by timing)
    assert [sum(len(c.tokens) for c in p) for p in reading("w")] in ([600], [601])  # BOS: cached or not


def test_logprobs_are_the_models_own_when_the_sampler_changes_the_row(engine):
    """The engine samples from the pass's rows in place (penalties, banned tokens): logprobs are read first.

    Past the script the model wants EOS; ignore_eos bans it, so both samples (two rows side by side in one
    pass) take the alternative, reported with the model's own logprob (LEAD / 2 below EOS), EOS on top."""
    params = SamplingParams(temperature=0, n=2, max_new_tokens=len(SCRIPT) + 3, ignore_eos=True, logprobs=1)
    for sample in run(engine.complete("Hi", params)).samples:
        past = sample.logprobs[len(SCRIPT) :]
        assert [lp.token_id for lp in past] == [ALTERNATIVE] * 3
        for lp in past:
            assert lp.logprob == pytest.approx(-15.0, abs=1e-3) and lp.top[0].token_id == EOS
            assert lp.top[0].logprob == pytest.approx(0.0, abs=1e-3)
