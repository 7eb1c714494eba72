"""Grammars in the engine (SmolLM2 on llama.cpp, and the torch backend): every output follows its grammar.

The masks themselves are tested on the vocabulary alone (tests/test_constraints.py); here the model samples
under them, through the one sampler, with ``n``, drafts, prefix reuse and a grammar that fails mid-way.
"""

import asyncio
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.engine.constraints import Grammar
from pocketlm.engine.drafts import Drafter, step_drafts
from pocketlm.errors import InvalidParameter
from test_constraints import _containers, _leaf_schemas

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
ASK = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n"
REPEATING = "one two three four five one two three four five one two three four five one two"


def schema(s: dict) -> Grammar:
    return Grammar.json_schema(s, field="response_format")


def run(engine, prompt, **kw):
    return asyncio.run(engine.complete(prompt, SamplingParams(**kw)))


def test_samples_follow_the_schema_each_with_its_own_matcher(engine):
    result = run(engine, ASK, temperature=1.0, seed=7, n=4, grammar=schema(PERSON), max_new_tokens=80)
    texts = [s.text for s in result.samples]
    for s in result.samples:
        assert s.finish_reason == "stop"
        jsonschema.validate(json.loads(s.text), PERSON)
    assert len(set(texts)) > 1  # four samples went four ways, each within the schema


def test_a_complete_output_ends_without_computing_its_end_token(engine):
    result = run(engine, ASK, temperature=0, grammar=schema({"enum": ["yes", "no"]}), max_new_tokens=10)
    sample = result.samples[0]
    assert sample.text in ('"yes"', '"no"') and sample.finish_reason == "stop"
    assert not set(sample.token_ids) & engine.backend.eog_ids
    assert result.usage.completion_tokens == len(sample.token_ids)


def test_the_token_limit_ends_a_sample_with_length(engine):
    sample = run(engine, ASK, temperature=0, grammar=schema(PERSON), max_new_tokens=4).samples[0]
    assert sample.finish_reason == "length" and len(sample.token_ids) == 4


def test_a_regex_and_a_lark_grammar_are_followed(engine):
    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    date = run(engine, "Today's date: ", temperature=0.7, seed=1, grammar=Grammar.regex(regex, field="regex"))
    assert re.fullmatch(regex, date.samples[0].text)
    lark = 'start: "(" NUMBER " + " NUMBER ")"\nNUMBER: /[0-9]{1,3}/'
    sum_ = run(engine, "An addition: ", temperature=0.7, seed=2, grammar=Grammar.lark(lark, field="grammar"))
    assert re.fullmatch(r"\([0-9]{1,3} \+ [0-9]{1,3}\)", sum_.samples[0].text)


@pytest.fixture(scope="module")
def undrafted():
    eng = load_engine(ModelOptions(), EngineConfig(slots=2, n_ctx=512, draft_tokens=0))
    yield eng
    eng.stop(0)


@pytest.fixture(scope="module")
def drafting():
    """Drafts whatever the measured step costs say (the shared engine drafts only where they pay, which depends
    on the machine): the drafts under test are always made."""
    eng = load_engine(ModelOptions(), EngineConfig(slots=2, n_ctx=512, draft_policy="always"))
    yield eng
    eng.stop(0)


def test_drafts_under_a_grammar_keep_the_text(drafting, undrafted):
    # Repetitive text drafts well; the grammar allows the words and spaces the model repeats.
    params = dict(temperature=0, max_new_tokens=30, grammar=Grammar.regex("([a-z]+ ){1,40}", field="regex"))
    before = drafting.stats()
    drafted = run(drafting, REPEATING, **params).samples[0]
    after = drafting.stats()
    plain = run(undrafted, REPEATING, **params).samples[0]
    assert after.draft_tokens_accepted > before.draft_tokens_accepted
    assert (drafted.token_ids, drafted.text) == (plain.token_ids, plain.text)


def test_a_draft_is_cut_where_the_grammar_forbids_it():
    one, two = Drafter([1, 2, 3, 4, 5, 1, 2, 3]), Drafter([7, 8, 9, 6, 6, 7, 8, 9])
    # one's draft [4, 5, 1] is allowed up to 2 tokens; two has no grammar: both are cut to the shorter.
    assert step_drafts([(one, 3, lambda d: 2), (two, 3, None)], 3, None) == [[4, 5], [6, 6]]
    assert step_drafts([(one, 3, lambda d: 0), (two, 3, None)], 3, None) == [[], []]


def test_a_cached_prefix_is_reused_under_a_grammar(engine):
    params = dict(temperature=0, grammar=schema(PERSON), max_new_tokens=60)
    first = run(engine, ASK, **params)
    second = run(engine, ASK, **params)
    assert second.usage.cached_tokens > 0
    assert second.samples[0].text == first.samples[0].text


def test_a_grammar_out_of_fuel_fails_its_request_alone(engine):
    async def scenario():
        good = asyncio.create_task(engine.complete("The capital of France is", SamplingParams(max_new_tokens=12)))
        bomb = SamplingParams(grammar=Grammar.regex("(a?){5000}a{5000}", field="regex"), max_new_tokens=200)
        with pytest.raises(InvalidParameter, match="too large or too complex") as e:
            await engine.complete("aaaa", bomb)
        assert e.value.param == "regex"
        return await good

    assert asyncio.run(scenario()).samples[0].finish_reason in ("stop", "length")


def test_a_grammar_cannot_be_combined_with_ignore_eos(engine):
    with pytest.raises(InvalidParameter) as e:
        engine.submit("x", SamplingParams(ignore_eos=True, grammar=schema({"type": "integer"})))
    assert e.value.param == "ignore_eos"


@given(schema=st.recursive(_leaf_schemas(), _containers, max_leaves=6), seed=st.integers(0, 2**16))
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_the_model_under_any_schema_within_limits_writes_valid_json(engine, schema, seed):
    sample = run(engine, ASK, temperature=1.0, seed=seed, grammar=Grammar.json_schema(schema, field="x"))
    sample = sample.samples[0]
    if sample.finish_reason == "stop":  # or "length": the limit came first, as the API documents
        jsonschema.validate(json.loads(sample.text), schema)


def test_the_torch_backend_follows_the_same_grammar():
    pytest.importorskip("torch")
    from tiny_models import tiny_model_dir

    eng = load_engine(ModelOptions(str(tiny_model_dir("llama")), backend="torch"), EngineConfig(slots=2, n_ctx=256))
    try:
        s = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        result = run(eng, "Hello", temperature=1.0, seed=3, n=2, grammar=schema(s), max_new_tokens=40)
        for sample in result.samples:
            if sample.finish_reason == "stop":
                jsonschema.validate(json.loads(sample.text), s)
            else:
                assert sample.text.startswith('{"n": ')
    finally:
        eng.stop(0)
