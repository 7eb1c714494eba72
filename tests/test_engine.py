"""Engine behaviour on the real embedded model (SmolLM2-135M-Instruct, llama.cpp)."""

import asyncio

import pytest

from pocketlm.engine import SampleFinished, SamplingParams, TextDelta, Usage
from pocketlm.engine.text import TextAssembler
from pocketlm.errors import ContextLengthExceeded, InvalidParameter
from pocketlm.llama_library import ONE_PATH_ATTENTION

PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "def fibonacci(n):",
    "The best way to learn is",
    "Water boils at",
    "In 1492, Columbus",
    "My favourite food is",
    "The sun rises in the",
    "Python is a programming language that",
    "A haiku about autumn:",
    "The three primary colors are",
    "To make a cup of tea,",
    "São Paulo é a maior cidade",
    "Once there was a robot who",
    "The largest planet in the solar system is",
    "Photosynthesis is the process",
]


def complete(engine, prompt, **kw):
    return asyncio.run(engine.complete(prompt, SamplingParams(**kw)))


async def many(engine, prompts, **kw):
    return await asyncio.gather(*(engine.complete(p, SamplingParams(**kw)) for p in prompts))


def test_greedy_continuation_is_sensible(engine):
    result = complete(engine, "The capital of France is", temperature=0, max_new_tokens=8)
    assert "Paris" in result.samples[0].text


def test_greedy_alone_equals_greedy_batched_with_15_others(engine):
    alone = complete(engine, PROMPTS[0], temperature=0, max_new_tokens=24).samples[0]
    batched = asyncio.run(many(engine, PROMPTS, temperature=0, max_new_tokens=24))
    assert batched[0].samples[0].token_ids == alone.token_ids
    assert batched[0].samples[0].text == alone.text


def test_same_seed_same_text_alone_and_batched(engine):
    kw = dict(temperature=0.9, top_p=0.95, seed=1234, max_new_tokens=24)
    alone = complete(engine, PROMPTS[1], **kw).samples[0]
    batched = asyncio.run(many(engine, [PROMPTS[1]] + PROMPTS[2:], **kw))
    assert batched[0].samples[0].text == alone.text
    other_seed = complete(engine, PROMPTS[1], **{**kw, "seed": 99}).samples[0]
    assert other_seed.text != alone.text


@pytest.mark.parametrize(
    "kv_type",
    [
        "q8_0/f16",
        "q8_0",
        pytest.param(
            "f16",
            marks=pytest.mark.skipif(
                not ONE_PATH_ATTENTION, reason="f16 keeps it on pocketlm's attention kernel only (make install)"
            ),
        ),
    ],
)
def test_kv_types_keep_text_alone_equal_to_batched_past_256_cells(kv_type):
    """--kv-type trades memory for speed, never this guarantee, also where a lone sequence passes 256 cells and
    llama.cpp as shipped takes its split kernel for f16 keys (there f16 changed 8 of 8 seeded texts; on
    pocketlm's kernel, none)."""
    from pocketlm.engine import EngineConfig, ModelOptions, load_engine

    eng = load_engine(ModelOptions(kv_type=kv_type), EngineConfig(slots=16, n_ctx=512))
    try:
        assert (
            eng.info.kv_cache
            == {
                "q8_0/f16": "q8_0/f16, 145 MB for 16 x 512 tokens",
                "q8_0": "q8_0, 100 MB for 16 x 512 tokens",
                "f16": "f16, 189 MB for 16 x 512 tokens",
            }[kv_type]
        )  # as `serve` logs it
        history = "The history of the city begins with a small fishing village on the river. " * 20
        prompts = [history + p for p in PROMPTS]
        assert len(eng.backend.tokenize(prompts[1])) > 300
        kw = dict(temperature=0.9, top_p=0.95, seed=1234, max_new_tokens=24)
        batched = asyncio.run(many(eng, prompts, **kw))
        for prompt, result in list(zip(prompts, batched))[1:4]:
            alone = complete(eng, prompt, **kw).samples[0]
            assert result.samples[0].token_ids == alone.token_ids, prompt[-40:]
    finally:
        eng.stop(0)


def test_gemma_runs_as_q8_0_and_keeps_text_alone_equal_to_batched():
    """Gemma 3 ships as Q4_K_M, whose kernels compute a row differently from 4 rows up: run as it ships, 9 of
    these 16 greedy texts (and 15 seeded ones) changed beside the others. The alias runs as q8_0, which does not."""
    from pocketlm.engine import EngineConfig, ModelOptions, load_engine

    eng = load_engine(ModelOptions("gemma3-270m"), EngineConfig(slots=16, n_ctx=128))
    try:
        assert eng.info.quantization == "Q8_0"
        batched = asyncio.run(many(eng, PROMPTS, temperature=0, max_new_tokens=24))
        for prompt, result in list(zip(PROMPTS, batched))[:6]:  # 1, 3 and 5 differed as Q4_K_M
            alone = complete(eng, prompt, temperature=0, max_new_tokens=24).samples[0]
            assert result.samples[0].token_ids == alone.token_ids, prompt
    finally:
        eng.stop(0)


def test_stop_string_spanning_tokens_is_cut_exactly(engine):
    free = complete(engine, "Once upon a time", temperature=0, max_new_tokens=32).samples[0]
    pieces = [engine.backend.token_bytes(t).decode("utf-8", "replace") for t in free.token_ids]
    # a stop string that starts inside one token and ends inside a later one
    boundary = len(pieces[0]) + len(pieces[1])
    start = boundary - 1 if len(pieces[1]) > 1 else boundary + 1
    stop = free.text[start : start + 6]
    assert len(stop) == 6
    cut = complete(engine, "Once upon a time", temperature=0, max_new_tokens=32, stop=[stop, "never-appears"]).samples[
        0
    ]
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.finish_reason == "stop" and cut.stop == stop


def test_n_samples_share_one_prompt(engine):
    result = complete(engine, "Tell me a fun fact:", n=3, temperature=1.0, seed=7, max_new_tokens=16)
    assert [s.index for s in result.samples] == [0, 1, 2]
    assert len({s.text for s in result.samples}) == 3
    assert all(s.finish_reason for s in result.samples)
    assert result.usage.completion_tokens == sum(len(s.token_ids) for s in result.samples)


@pytest.mark.parametrize("text", ["ação", "coração", "🙂", "ação coração 🙂 fim"])
def test_streamed_text_never_splits_a_utf8_character(engine, text):
    tokens = engine.tokenize(text, add_special=False)
    assembler, out = TextAssembler(), []
    for t in tokens:
        delta, _ = assembler.feed(engine.backend.token_bytes(t))
        assert "\ufffd" not in delta
        out.append(delta)
    out.append(assembler.flush())
    assert "".join(out) == text
    if text == "🙂":  # the emoji really is split over several byte tokens
        assert len(tokens) > 1 and "" in out


def test_stop_never_leaks_partial_match():
    assembler = TextAssembler(stop=("END",))
    assert assembler.feed(b"abc E") == ("abc ", None)
    assert assembler.feed(b"N") == ("", None)
    assert assembler.feed(b"Dx") == ("", "END")
    other = TextAssembler(stop=("END",))
    assert other.feed(b"E") == ("", None)
    assert other.feed(b"ND?") == ("", "END")
    third = TextAssembler(stop=("END",))
    assert third.feed(b"EN") == ("", None)
    assert third.feed(b"Z") == ("ENZ", None)


def test_cancelled_stream_frees_its_slot(engine):
    async def scenario():
        stream = engine.submit(
            "Write a long story about a dragon.", SamplingParams(max_new_tokens=400, ignore_eos=True)
        )
        seen = 0
        async for event in stream:
            if isinstance(event, TextDelta):
                seen += 1
                if seen == 3:
                    break
        assert engine.stats().active_slots == 1 or engine.stats().active_slots == 0
        for _ in range(200):
            if engine.stats().active_slots == 0:
                return True
            await asyncio.sleep(0.01)
        return False

    assert asyncio.run(scenario())


def test_32_concurrent_requests_complete_with_exact_usage(engine):
    prompts = [f"{PROMPTS[i % 16]} ({i})" for i in range(32)]
    results = asyncio.run(many(engine, prompts, max_new_tokens=8, ignore_eos=True, temperature=0.7, seed=3))
    for prompt, r in zip(prompts, results):
        assert r.usage.prompt_tokens == len(engine.tokenize(prompt))
        assert r.usage.completion_tokens == 8 == len(r.samples[0].token_ids)
        assert r.samples[0].finish_reason == "length"
    assert engine.stats().active_slots == 0


def test_long_prompt_does_not_stall_running_streams(engine):
    """A prompt arriving while a stream decodes is read a little per step: the stream keeps its pace."""
    long_prompt = list(engine.tokenize("The history of Rome. " * 200))[:600]

    async def scenario():
        order = []
        running = engine.submit(
            "Count: one, two, three,", SamplingParams(max_new_tokens=64, ignore_eos=True, temperature=0)
        )

        async def read(name, stream):
            async for ev in stream:
                if isinstance(ev, TextDelta) and ev.token_ids:
                    order.append(name)
                    if name == "short" and order.count("short") == 3:
                        tasks.append(
                            asyncio.create_task(
                                read("long", engine.submit(long_prompt, SamplingParams(max_new_tokens=2)))
                            )
                        )

        tasks = []
        await read("short", running)
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(scenario())
    # Read whole, the prompt would take one step; beside the running stream, it takes many (8: at most 75 tokens a
    # step), each with a token of the stream (every step the stream is in gives it one). 600 tokens, not more: every
    # step is a pass of the model, slow on a loaded machine.
    assert order[3 : order.index("long")].count("short") >= 8


def test_bad_parameters_raise_typed_errors_naming_the_parameter(engine):
    cases = [
        (dict(max_new_tokens=-5), "max_new_tokens"),
        (dict(prompt_logprobs=21), "prompt_logprobs"),
        (dict(temperature=-0.1), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(n=1000), "n"),
        (dict(stop=[1, 2]), "stop"),
        (dict(stop=5), "stop"),
        (dict(top_k=-1), "top_k"),
        (dict(seed="x"), "seed"),
    ]

    async def scenario():
        good = asyncio.create_task(
            engine.complete("The capital of France is", SamplingParams(temperature=0, max_new_tokens=8))
        )
        for kw, param in cases:
            with pytest.raises(InvalidParameter) as err:
                engine.submit("hello", SamplingParams(**kw))
            assert err.value.param == param
        with pytest.raises(ContextLengthExceeded) as err:
            engine.submit([1] * (engine.n_ctx + 5), SamplingParams())
        assert err.value.param == "prompt"
        return await good

    result = asyncio.run(scenario())
    assert "Paris" in result.samples[0].text


def test_logprobs_report_chosen_token_and_alternatives(engine):
    sample = complete(engine, "The capital of France is", temperature=0, max_new_tokens=3, logprobs=2).samples[0]
    assert len(sample.logprobs) == 3
    for lp, token in zip(sample.logprobs, sample.token_ids):
        assert lp.token_id == token and lp.logprob <= 0
        assert len(lp.top) == 2 and lp.top[0].token_id == token  # greedy picks the most likely
        assert lp.top[0].logprob >= lp.top[1].logprob


def test_stream_ends_with_finish_then_usage(engine):
    async def scenario():
        return [ev async for ev in engine.submit("Hi", SamplingParams(max_new_tokens=4, ignore_eos=True))]

    events = asyncio.run(scenario())
    assert isinstance(events[-1], Usage) and isinstance(events[-2], SampleFinished)
    assert events[-1].completion_tokens == 4
