"""Tool calling in the engine (engine/tools.py, engine/chat.py): prompts, grammars and reading calls back.

Calls are walked through their grammar on SmolLM2's real vocabulary (random allowed tokens, as in
tests/test_constraints.py): whatever the walk writes, ``CallReader`` reads calls whose arguments follow
their function's schema, streamed piece by piece or whole. Server round trips: tests/test_structured_api.py.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketlm.backends.base import ModelInfo
from pocketlm.engine.chat import ChatTemplate
from pocketlm.engine.constraints import Grammar
from pocketlm.engine.tools import CallReader, Function, ToolCall, Tools
from pocketlm.errors import InvalidParameter
from test_constraints import Walker, _containers, _leaf_schemas, backend, vocab, walker  # noqa: F401

WEATHER = Function.checked(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]},
    "tools[0].function",
)
TIME = Function.checked("get_time", "", None, "tools[1].function")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A template with a tool format of its own, written like the ones that use <tool_call> tags.
HERMES_LIKE = (
    "{% if tools %}<|im_start|>system\nTools: {% for t in tools %}{{ t.function.name }} {% endfor %}<|im_end|>\n"
    "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {{ c.function.arguments | tojson }}"
    "</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def template(source: str | None) -> ChatTemplate:
    return ChatTemplate(ModelInfo("m", "", "llama", 0, 0, 0, "F32", source, "", ""))


HISTORY = [
    {"role": "user", "content": "Weather and time in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [ToolCall("get_weather", '{"city": "Paris"}', "c1"), ToolCall("get_time", "{}", "c2")],
    },
    {"role": "tool", "content": "22 degrees", "tool_call_id": "c1"},
    {"role": "tool", "content": "noon", "tool_call_id": "c2"},
]


def test_a_template_without_a_tool_format_gets_tools_as_text():
    prompt = template(CHATML).render(HISTORY, tools=(WEATHER, TIME))
    _, system, _, assistant, results, generation = prompt.split("<|im_start|>")
    assert generation == "assistant\n"
    assert system.startswith("system\nYou may call functions") and '"name": "get_weather"' in system
    assert assistant == (
        'assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call><|im_end|>\n'
    )
    # both results in one user turn, in the tags the instructions announce
    assert results == (
        "user\n<tool_response>\n22 degrees\n</tool_response>\n<tool_response>\nnoon\n</tool_response><|im_end|>\n"
    )
    own_system = template(CHATML).render([{"role": "system", "content": "Be brief."}, *HISTORY[:1]], tools=(WEATHER,))
    assert own_system.startswith("<|im_start|>system\nBe brief.\n\nYou may call functions")
    assert "You may call" not in template(CHATML).render(HISTORY)  # no tools offered: none described


def test_a_template_with_a_tool_format_renders_tools_itself():
    t = template(HERMES_LIKE)
    assert t.native_tools and not template(CHATML).native_tools
    prompt = t.render(HISTORY, tools=(WEATHER, TIME))
    assert prompt.startswith("<|im_start|>system\nTools: get_weather get_time")
    assert '<tool_call>get_weather {"city": "Paris"}</tool_call>' in prompt  # arguments as an object, its way
    assert "<|im_start|>tool\n22 degrees" in prompt and "You may call" not in prompt


def test_tool_roles_are_checked():
    with pytest.raises(InvalidParameter) as e:
        template(CHATML).render([{"role": "user", "content": "x", "tool_calls": [ToolCall("f", "{}")]}])
    assert e.value.param == "messages[0].tool_calls"
    with pytest.raises(InvalidParameter) as e:
        template(CHATML).render([{"role": "tool", "content": None}])
    assert e.value.param == "messages[0].content"


def test_tools_are_checked():
    with pytest.raises(InvalidParameter, match="unique"):
        Tools((WEATHER, WEATHER))
    with pytest.raises(InvalidParameter) as e:
        Tools((WEATHER,), "get_time")
    assert e.value.param == "tool_choice"
    with pytest.raises(InvalidParameter) as e:
        Tools((), "required")
    assert e.value.param == "tool_choice"
    with pytest.raises(InvalidParameter) as e:
        Tools((WEATHER,)).constrained(Grammar.regex("a+", field="regex"))
    assert e.value.param == "tools"
    with pytest.raises(InvalidParameter) as e:
        Function.checked("get weather", "", None, "tools[3].function")
    assert e.value.param == "tools[3].function.name"
    with pytest.raises(InvalidParameter) as e:
        Function.checked("f", "", ["not", "a", "schema"], "tools[2].function")
    assert e.value.param == "tools[2].function.parameters"


def test_arguments_close_their_objects_but_not_their_values():
    f = Function.checked(
        "f",
        "",
        {
            "type": "object",
            "properties": {"inner": {"type": "object", "properties": {"a": {"type": "integer"}}}},
            "$defs": {"open": {"type": "object", "properties": {}, "additionalProperties": True}},
            "anyOf": [{"properties": {"b": {"const": {"properties": {}}}}}],
        },
        "tools[0].function",
    )
    schema = f.schema
    assert schema["additionalProperties"] is False and schema["properties"]["inner"]["additionalProperties"] is False
    assert schema["$defs"]["open"]["additionalProperties"] is True  # what a schema says is kept
    assert schema["anyOf"][0]["properties"]["b"]["const"] == {"properties": {}}  # a value, not a schema


# ------------------------------------------------------------------ reading calls back


def read(text: str, pieces: int = 1):
    """``text`` fed to a CallReader in pieces of ``pieces`` characters: what the deltas add up to."""
    reader, streamed, names, arguments = CallReader(), "", {}, {}
    for at in range(0, len(text), pieces):
        got, deltas = reader.feed(text[at : at + pieces])
        streamed += got
        for d in deltas:
            if d.name is not None:
                assert d.index not in names  # a call's name comes once, on its first delta
                names[d.index] = d.name
            arguments[d.index] = arguments.get(d.index, "") + d.arguments
    streamed += reader.finish()
    return streamed, [(names[i], arguments.get(i, "")) for i in sorted(names)], reader


CALLS = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "a}\\"b</tool_call>{"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
)


@pytest.mark.parametrize("pieces", [1, 2, 3, 7, len(CALLS)])
def test_calls_read_the_same_in_any_pieces(pieces):
    text, calls, reader = read(CALLS, pieces)
    assert text == "" and calls == [("get_weather", '{"city": "a}\\"b</tool_call>{"}'), ("get_time", "{}")]
    assert [c.complete for c in reader.calls] == [True, True]


def test_text_is_text_and_a_cut_call_stays_incomplete():
    assert read("Hello <tool_call> there", 2)[:2] == ("Hello <tool_call> there", [])
    assert read("<tool", 1)[0] == "<tool"  # ended before it could be a call: text, held back until the end
    _, calls, reader = read('<tool_call>\n{"name": "f", "arguments": {"x": [1, 2', 3)
    assert calls == [("f", '{"x": [1, 2')] and not reader.calls[0].complete


@given(schema=st.recursive(_leaf_schemas(), _containers, max_leaves=6), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_any_arguments_schema_gives_calls_that_parse_and_validate(vocab, walker, schema, seed):  # noqa: F811
    arguments = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    f = Function.checked("f", "", arguments, "tools[0].function")
    tools = Tools((f, TIME), "required", parallel=seed % 2 == 0)
    text = walker.walk(vocab.compile(tools.constrained(None)).constraint(), seed).decode("utf-8")
    content, calls, _ = read(text, 1 + seed % 5)
    assert content == "" and calls and (tools.parallel or len(calls) == 1)
    for name, args in calls:
        jsonschema.validate(json.loads(args), f.schema if name == "f" else TIME.schema)


@pytest.mark.parametrize("seed", range(4))
def test_auto_gives_text_or_calls_and_none_gives_text(vocab, walker, seed):  # noqa: F811
    auto = walker.walk(vocab.compile(Tools((WEATHER,), "auto").constrained(None)).constraint(), seed).decode()
    content, calls, _ = read(auto)
    assert (content == "") == bool(calls) and not content.startswith("<")
    plain = walker.walk(vocab.compile(Tools((WEATHER,), "none").constrained(None)).constraint(), seed).decode()
    assert read(plain)[:2] == (plain, []) and not plain.startswith("<")
