"""Structured output, tool calls and the Responses API through real clients, against `pocketlm serve`.

The embedded SmolLM2-135M answers: the openai SDK's ``chat.completions.parse`` and its streaming helper
for a dozen pydantic models, tool round trips with the SDK and with langchain-openai's ``bind_tools``,
``responses.create`` / ``.parse`` / ``.stream``; and the bad inputs that must be a 400 naming their field
(grammar bombs, deep nesting) while the server goes on serving. One server for the module; short outputs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Annotated, Literal

import httpx
import jsonschema
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field

from api_server import Server, assert_openai_error, sse_events


@pytest.fixture(scope="module")
def server():
    s = Server("--slots", "12", "--n-ctx", "1024")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def model(client) -> str:
    return client.models.list().data[0].id


# ------------------------------------------------------------------ a dozen pydantic models


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)


class Address(BaseModel):
    street: str = Field(max_length=30)
    city: str = Field(max_length=20)
    zip: str = Field(pattern=r"^[0-9]{5}$")


class Resident(BaseModel):  # nested objects
    person: Person
    address: Address


class Color(StrEnum):
    red = "red"
    green = "green"
    blue = "blue"


class Paint(BaseModel):  # enums
    color: Color
    finish: Literal["matte", "gloss"]


class Tagged(BaseModel):  # arrays with bounds
    tags: list[Annotated[str, Field(max_length=12)]] = Field(min_length=1, max_length=3)
    # Bounded: under a bare int a small model at temperature 0.7 may write digits until the token limit (seen).
    scores: list[Annotated[int, Field(ge=0, le=100)]] = Field(max_length=2)


class Profile(BaseModel):  # optional fields
    name: str = Field(max_length=15)
    nickname: str | None = Field(max_length=10)
    age: int | None


class Measurement(BaseModel):  # numbers with ranges
    probability: float = Field(ge=0, le=1)
    temperature: int = Field(ge=-40, le=50)


class Event(BaseModel):  # strings with patterns
    date: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    code: str = Field(pattern=r"^[A-Z]{3}-[0-9]{2}$")


class Item(BaseModel):
    name: str = Field(max_length=15)
    quantity: int = Field(ge=1, le=9)


class Order(BaseModel):  # arrays of objects
    items: list[Item] = Field(min_length=1, max_length=3)
    paid: bool


class Task(BaseModel):  # booleans and enums
    title: str = Field(max_length=25)
    done: bool
    priority: Literal["low", "medium", "high"]


class Circle(BaseModel):
    kind: Literal["circle"]
    radius: int = Field(ge=1, le=100)


class Square(BaseModel):
    kind: Literal["square"]
    side: int = Field(ge=1, le=100)


class Drawing(BaseModel):  # unions
    shape: Circle | Square


class Department(BaseModel):
    name: str = Field(max_length=15)
    head: Person


class Company(BaseModel):  # deep nesting
    name: str = Field(max_length=20)
    ceo: Person
    departments: list[Department] = Field(max_length=2)


class Verdict(BaseModel):
    answer: Literal["yes", "no"]
    confidence: int = Field(ge=0, le=100)


MODELS = [Person, Resident, Paint, Tagged, Profile, Measurement, Event, Order, Task, Drawing, Company, Verdict]


def ask(model_cls) -> list[dict]:
    return [{"role": "user", "content": f"Give an example {model_cls.__name__} as JSON."}]


def test_parse_a_dozen_pydantic_models(client, model):
    def parse(m):
        return client.chat.completions.parse(
            model=model, messages=ask(m), response_format=m, max_completion_tokens=200, temperature=0.7, seed=1
        )

    with ThreadPoolExecutor(len(MODELS)) as pool:
        answers = list(pool.map(parse, MODELS))
    for m, answer in zip(MODELS, answers):
        choice = answer.choices[0]
        assert choice.finish_reason == "stop", (m.__name__, choice.message.content)
        assert isinstance(choice.message.parsed, m)  # the SDK validated it with the model itself
        assert m.model_validate_json(choice.message.content) == choice.message.parsed


def test_the_same_models_streamed(client, model):
    def stream(m):
        with client.chat.completions.stream(
            model=model, messages=ask(m), response_format=m, max_completion_tokens=200, temperature=0.7, seed=2
        ) as s:
            chunks = [e.type for e in s]
            return chunks, s.get_final_completion()

    with ThreadPoolExecutor(len(MODELS)) as pool:
        results = list(pool.map(stream, MODELS))
    for m, (kinds, final) in zip(MODELS, results):
        assert kinds.count("content.delta") > 1  # streamed piece by piece
        assert isinstance(final.choices[0].message.parsed, m), final.choices[0].message.content


def test_json_object_regex_and_grammar_fields(server, model):
    def post(fields: dict, path="chat/completions"):
        ask = {"messages": [{"role": "user", "content": "Answer."}]} if path == "chat/completions" else {}
        body = {"model": model, **ask, "max_tokens": 60, **fields}
        return httpx.post(f"{server.url}/v1/{path}", json=body, timeout=300).json()["choices"]

    gbnf = 'root ::= "The answer is " ("yes" | "no") "."'  # llama-server's dialect, converted to Lark
    lark = 'start: "(" NUMBER "+" NUMBER ")"\nNUMBER: /[0-9]{1,2}/'
    scored = {"prompt": "Is water wet? Answer:", "max_tokens": 10, "regex": " (yes|no)", "n": 2, "temperature": 1}
    bodies = [
        {"response_format": {"type": "json_object"}, "max_tokens": 200},
        {"regex": r"[0-9]{4}-[0-9]{2}-[0-9]{2}"},
        {"grammar": gbnf},
        {"grammar": lark},
    ]
    with ThreadPoolExecutor(len(bodies) + 1) as pool:  # independent requests: one batch, not five in turn
        completion = pool.submit(post, scored, "completions")
        obj, date, said, sum_ = (c[0] for c in pool.map(post, bodies))
    assert obj["finish_reason"] == "length" or isinstance(json.loads(obj["message"]["content"]), dict)
    assert obj["message"]["content"].startswith("{")
    date = date["message"]["content"]
    assert len(date) == 10 and date[4] == date[7] == "-"
    assert said["message"]["content"] in ("The answer is yes.", "The answer is no.")
    assert sum_["message"]["content"].startswith("(")
    assert {c["text"] for c in completion.result()} <= {" yes", " no"}


def test_logprobs_are_the_models_own_before_the_mask(server, model):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Pick a colour."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": ["red", "blue"]}}},
        "logprobs": True,
        "top_logprobs": 5,
        "temperature": 0,
    }
    content = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=300).json()["choices"][0]["logprobs"]
    first = content["content"][0]
    assert first["token"] == '"' and first["logprob"] <= 0
    # The grammar allowed only '"' first; the alternatives are the model's, which the mask did not touch.
    assert any(alt["token"] != '"' for alt in first["top_logprobs"])


# ------------------------------------------------------------------ tools


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
# The round trips ask the simplest function: SmolLM2 then reads the result it is given, where with more
# arguments it tends to repeat its own call back as text.
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}}, "required": ["city"]}
CITY_WEATHER = {"type": "function", "function": {**WEATHER["function"], "parameters": CITY}}
QUESTION = [{"role": "user", "content": "What is the weather like in Paris today?"}]
RESULT = "It is 22 degrees and sunny in Paris."


def test_a_tool_round_trip_with_the_sdk(client, model):
    first = client.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=[CITY_WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), CITY)
    history = [*QUESTION, choice.message, {"role": "tool", "tool_call_id": call.id, "content": RESULT}]
    final = client.chat.completions.create(
        model=model, messages=history, tools=[CITY_WEATHER], tool_choice="none", temperature=0, max_completion_tokens=40
    )
    answer = final.choices[0]
    assert answer.finish_reason in ("stop", "length") and answer.message.tool_calls is None
    assert "22" in answer.message.content  # the model used the function's answer


def test_streamed_tool_call_deltas_reassemble_to_the_same_call(server, client, model):
    named = {"type": "function", "function": {"name": "get_weather"}}
    kwargs = dict(model=model, messages=QUESTION, tools=[WEATHER], tool_choice=named, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0]
    chunks = sse_events(
        httpx.post(f"{server.url}/v1/chat/completions", json={**kwargs, "stream": True}, timeout=300).iter_lines()
    )
    deltas = [d for c in chunks[:-1] for ch in c["choices"] for d in ch["delta"].get("tool_calls") or []]
    assert deltas[0]["id"].startswith("call_") and deltas[0]["type"] == "function"
    assert deltas[0]["function"]["name"] == "get_weather"
    assert all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in deltas[1:])
    assert len(deltas) > 2  # the arguments came in pieces
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert arguments == whole.message.tool_calls[0].function.arguments
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls" and whole.finish_reason == "tool_calls"
    with client.chat.completions.stream(**kwargs) as s:  # the SDK's own accumulator agrees
        for _ in s:
            pass
        final = s.get_final_completion().choices[0].message.tool_calls[0]
    assert (final.function.name, final.function.arguments) == ("get_weather", arguments)


@pytest.mark.parametrize("tool_choice", ["auto", "none"])
def test_auto_and_none_answer_the_same_text_streamed_or_not(server, client, model, tool_choice):
    # Asked this, SmolLM2 answers in words under "auto" (tests/test_tools.py walks "auto" into calls too).
    kwargs = dict(model=model, messages=QUESTION, tools=[WEATHER], tool_choice=tool_choice, temperature=0)
    whole = client.chat.completions.create(**kwargs, max_completion_tokens=12).choices[0]
    body = {**kwargs, "max_completion_tokens": 12, "stream": True}
    chunks = sse_events(httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=300).iter_lines())
    deltas = [ch["delta"] for c in chunks[:-1] for ch in c["choices"]]
    assert not any("tool_calls" in d for d in deltas) and whole.message.tool_calls is None
    assert "".join(d.get("content") or "" for d in deltas) == whole.message.content
    assert not whole.message.content.startswith("<")  # a text answer never begins like a call
    assert chunks[-2]["choices"][0]["finish_reason"] == whole.finish_reason != "tool_calls"


def test_a_tool_round_trip_with_langchain(server, model):
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return RESULT

    llm = langchain_openai.ChatOpenAI(
        base_url=f"{server.url}/v1", api_key="unused", model=model, temperature=0, max_tokens=60, max_retries=0
    )
    asked = llm.bind_tools([get_weather], tool_choice="get_weather", parallel_tool_calls=False)
    messages = [HumanMessage("What is the weather like in Paris today?")]
    reply = asked.invoke(messages)
    (call,) = reply.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    messages += [reply, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = llm.bind_tools([get_weather], tool_choice="none").invoke(messages)
    assert not final.tool_calls and "22" in final.content


# ------------------------------------------------------------------ the Responses API


def test_responses_create_plain_and_streamed(client, model):
    plain = client.responses.create(model=model, input="Say hello.", max_output_tokens=8, temperature=0)
    assert plain.status == "incomplete" and plain.incomplete_details.reason == "max_output_tokens"
    assert plain.output_text and plain.usage.output_tokens == 8 and plain.usage.input_tokens > 0
    full = client.responses.create(
        model=model, instructions="Answer in one word.", input="What colour is the sky?", max_output_tokens=40
    )
    assert full.output[0].type == "message" and full.output[0].content[0].text == full.output_text
    with client.responses.stream(model=model, input="Say hello.", max_output_tokens=8, temperature=0) as s:
        events = list(s)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") >= 2 and kinds[-1] == "response.incomplete"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output[0].content[0].text == plain.output_text  # greedy: the same 8 tokens


def test_responses_text_format_and_parse(client, model):
    schema = Person.model_json_schema()
    formatted = client.responses.create(
        model=model,
        input="Describe a person as JSON.",
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}},
        max_output_tokens=80,
    )
    jsonschema.validate(json.loads(formatted.output_text), schema)
    parsed = client.responses.parse(model=model, input="Describe a person.", text_format=Person, max_output_tokens=80)
    assert isinstance(parsed.output_parsed, Person)
    with client.responses.stream(model=model, input="A person.", text_format=Person, max_output_tokens=80) as s:
        for _ in s:
            pass
        assert isinstance(s.get_final_response().output_parsed, Person)


def test_responses_with_a_function_tool(client, model):
    tool = {"type": "function", **WEATHER["function"]}
    asked = dict(
        model=model, input="What is the weather in Paris?", tools=[tool], tool_choice="required", temperature=0
    )
    called = client.responses.create(**asked, parallel_tool_calls=False)
    (call,) = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["function"]["parameters"])
    items = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": RESULT},
    ]
    answer = client.responses.create(
        model=model, input=items, tools=[tool], tool_choice="none", temperature=0, max_output_tokens=40
    )
    # The items are the chat below, call and result included, so the model reads the function's answer as it
    # does through /v1/chat/completions (test_a_tool_round_trip_with_the_sdk); the words a 135M model then
    # picks greedily differ between CPUs (AVX2 and AVX-512 kernels round apart), so the test compares texts.
    assistant = {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
    messages = [
        items[0],
        {"role": "assistant", "content": None, "tool_calls": [assistant]},
        {"role": "tool", "tool_call_id": call.call_id, "content": RESULT},
    ]
    chat = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER], tool_choice="none", temperature=0, max_completion_tokens=40
    )
    assert answer.output_text and answer.output_text == chat.choices[0].message.content
    with client.responses.stream(**asked, parallel_tool_calls=False) as s:
        kinds = [e.type for e in s]
        streamed = s.get_final_response().output[0]
    assert "response.function_call_arguments.delta" in kinds and streamed.name == "get_weather"
    jsonschema.validate(json.loads(streamed.arguments), WEATHER["function"]["parameters"])


def test_responses_are_stateless(server, model):
    refused = httpx.post(
        f"{server.url}/v1/responses", json={"model": model, "input": "hi", "previous_response_id": "resp_1"}
    )
    assert_openai_error(refused, 400, "previous_response_id")
    stored = httpx.post(
        f"{server.url}/v1/responses",
        json={"model": model, "input": "hi", "store": True, "max_output_tokens": 2},
        timeout=300,
    )
    assert stored.status_code == 200 and stored.json()["store"] is False


# ------------------------------------------------------------------ bad input: a 400 naming the field


def nested(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def schema_format(schema) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


BAD = [
    ({"response_format": schema_format({"type": "objekt"})}, "response_format.json_schema.schema", "objekt"),
    ({"response_format": schema_format({"type": "array", "uniqueItems": True})}, "", "does not support"),
    ({"response_format": schema_format(nested(100))}, "response_format.json_schema.schema", "at most 64"),
    ({"response_format": schema_format({"type": "integer", "minimum": 5, "maximum": 3})}, "", "no output can"),
    ({"response_format": schema_format({"enum": [f"v{i:06d}" for i in range(12_000)]})}, "", "at most 100,000"),
    ({"regex": "(abc"}, "regex", "unclosed group"),
    ({"grammar": "start: foo"}, "grammar", "unknown name"),
    ({"grammar": "root ::= " + "(" * 5000 + '"a"' + ")" * 5000}, "grammar", "nested too deeply"),
    ({"grammar": 'root ::= "a'}, "grammar", "invalid GBNF"),
    ({"grammar": "root ::= foo"}, "grammar", "Rule 'foo' not found"),
    ({"regex": "a", "response_format": {"type": "json_object"}}, "regex", "only one of"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]}, "", "objekt"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required", "regex": "a"}, "", ""),
]


@pytest.mark.parametrize("fields, param, message", BAD, ids=range(len(BAD)))
def test_bad_grammars_are_a_400_naming_the_field(server, model, fields, param, message):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}
    error = assert_openai_error(httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60), 400)
    assert error["param"] == (param or error["param"]) and message in error["message"]
    if "tools" in fields:
        assert error["param"].startswith("tools")


def test_a_grammar_bomb_mid_generation_fails_its_request_alone(server, model):
    bomb = {"model": model, "prompt": "aaaa", "regex": "(a?){5000}a{5000}", "max_tokens": 300}
    with ThreadPoolExecutor(2) as pool:
        hello = {"prompt": "Hello", "max_tokens": 20}
        plain = pool.submit(httpx.post, f"{server.url}/v1/completions", json=hello, timeout=300)
        failed = httpx.post(f"{server.url}/v1/completions", json=bomb, timeout=300)
        assert plain.result().status_code == 200
    assert "too large or too complex" in assert_openai_error(failed, 400, "regex")["message"]
    streamed = sse_events(
        httpx.post(f"{server.url}/v1/completions", json={**bomb, "stream": True}, timeout=300).iter_lines()
    )
    assert streamed[-1]["error"]["param"] == "regex"  # after the first byte: the stream's error event
    assert httpx.get(f"{server.url}/ready").status_code == 200
    assert server.metric("pocketlm_active_slots") == 0  # no slot left held


def test_the_openapi_document_states_the_limits(server):
    doc = httpx.get(f"{server.url}/openapi.json").json()["components"]["schemas"]
    assert "100,000 bytes" in doc["JsonSchemaSpec"]["properties"]["schema"]["description"]
    assert "64 nested" in doc["JsonSchemaSpec"]["properties"]["schema"]["description"]
    chat = doc["ChatCompletionRequest"]["properties"]
    assert chat["regex"]["anyOf"][0]["maxLength"] == 100_000 and "GBNF" in chat["grammar"]["description"]
