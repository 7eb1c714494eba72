"""The HTTP app in-process, on the scripted backend: each protocol's translation rules, in milliseconds.

``build_app(engine, settings)`` driven by Starlette's TestClient; the engine runs on
tests/fake_backend.py, so every answer is known to the byte. The real server with
real clients is tested in test_api_clients.py and test_api_serving.py.
"""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from api_server import assert_openai_error, sse_events
from fake_backend import BOS, fake_engine
from pocketlm.api.wire import openai, seeds, tgi
from pocketlm.api.wire.openai import ChatCompletionRequest, CompletionRequest
from pocketlm.api.wire.seeds import GenerateRequest
from pocketlm.api.wire.tgi import TGIRequest
from pocketlm.engine.params import SamplingParams
from pocketlm.server import ServeSettings, build_app
from pocketlm.settings import declared

# Longer than every default limit (16, 50, 100 tokens); one byte is one token.
SCRIPT = (
    " Paris.\nUser: and Rome?\nAssistant: Rome is the capital of Italy; both are old cities "
    "with many museums, bridges, parks and squares."
)
PROMPT = "Capital of France?"


@pytest.fixture(scope="module")
def engine():
    with fake_engine(SCRIPT, n_ctx=256, max_n=4) as eng:
        yield eng


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(build_app(engine)) as c:
        yield c


def tokenize(text: str) -> list[int]:
    return [BOS, *text.encode()]


def error(client, route: str, body: dict, param: str, status: int = 400) -> dict:
    return assert_openai_error(client.post(route, json=body), status, param)


def stream(client, route: str, body: dict) -> list:
    with client.stream("POST", route, json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.iter_lines())


def test_script_is_longer_than_every_default():
    assert len(SCRIPT) > tgi.DEFAULT_MAX_NEW_TOKENS > seeds.DEFAULT_MAX_NEW_TOKENS > openai.DEFAULT_MAX_TOKENS


# ------------------------------------------------------------------------------ the seeds' /generate


def test_seeds_response_repeats_the_prompt_with_50_new_tokens(client):
    body = client.post("/generate", json={"prompt": PROMPT}).json()
    assert body == {"response": PROMPT + SCRIPT[: seeds.DEFAULT_MAX_NEW_TOKENS]}


def test_seeds_max_length_counts_the_prompt(client):
    prompt_tokens = len(tokenize("ab"))
    body = client.post("/generate", json={"prompt": "ab", "max_length": prompt_tokens + 4}).json()
    assert body == {"response": "ab" + SCRIPT[:4]}
    assert (
        client.post("/generate", json={"prompt": "ab", "max_length": prompt_tokens, "do_sample": False}).json()[
            "response"
        ]
        == "ab" + SCRIPT[:1]
    )  # a prompt already max_length long still gets one new token, as HF generate
    error(client, "/generate", {"prompt": "ab", "max_length": 10, "max_new_tokens": 2}, "max_length")
    error(client, "/generate", {"prompt": "ab", "max_length": 10**6}, "max_length")  # the engine's max_new_tokens limit


def test_seeds_num_return_sequences_gives_responses(client):
    body = client.post("/generate", json={"prompt": "ab", "num_return_sequences": 2, "max_new_tokens": 3}).json()
    assert body == {"responses": ["ab" + SCRIPT[:3]] * 2}
    error(client, "/generate", {"prompt": "ab", "num_return_sequences": 5}, "num_return_sequences")


def test_seeds_sampling_defaults_and_do_sample_false():
    _, params, _ = GenerateRequest(prompt="x").engine_request(tokenize)
    assert (params.max_new_tokens, params.top_k, params.temperature, params.n) == (50, seeds.DEFAULT_TOP_K, 1.0, 1)
    _, params, _ = GenerateRequest(prompt="x", do_sample=False, temperature=0.7, top_k=9).engine_request(tokenize)
    assert params.greedy and (params.temperature, params.top_k) == (0.0, 0)
    prompt, params, _ = GenerateRequest(prompt="ab", max_length=7).engine_request(tokenize)
    assert prompt == tokenize("ab") and params.max_new_tokens == 4  # submitted as the ids it counted


def test_protocol_defaults_never_exceed_the_servers_max_new_tokens():
    """A server capped at 16 new tokens answers a seeds or TGI request that names no length with 16 tokens, not a 400
    for the protocol's own default (50, 100); the OpenAPI document says so."""
    with fake_engine(SCRIPT, n_ctx=256, max_new_tokens=16) as capped, TestClient(build_app(capped)) as c:
        assert c.post("/generate", json={"prompt": "ab"}).json() == {"response": "ab" + SCRIPT[:16]}
        assert c.post("/generate", json={"inputs": "ab"}).json() == {"generated_text": SCRIPT[:16]}
        assert c.post("/generate", json={"prompt": "ab", "max_new_tokens": 17}).status_code == 400  # asked: refused
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
        for body in (schemas["GenerateRequest"], schemas["TGIParameters"]):
            assert "or the server's max_new_tokens when lower" in body["properties"]["max_new_tokens"]["description"]


def test_seeds_errors_name_the_seeds_fields(client):
    error(client, "/generate", {"prompt": "ab", "max_new_tokens": -1}, "max_new_tokens")
    error(client, "/generate", {"prompt": "ab", "top_k": -1}, "top_k")
    error(client, "/generate", {"prompt": "ab", "inputs": "cd"}, "prompt")
    error(client, "/generate", {"prompt": "ab", "parameters": {}}, "parameters")


# ------------------------------------------------------------------------------ TGI


def test_tgi_continuation_only_100_tokens_by_default(client):
    for route in ("/", "/generate"):
        assert client.post(route, json={"inputs": PROMPT}).json() == {
            "generated_text": SCRIPT[: tgi.DEFAULT_MAX_NEW_TOKENS]
        }


def test_tgi_do_sample_is_inferred_from_sampling_parameters():
    def params(**p):
        return TGIRequest(inputs="x", parameters=p).engine_request(tokenize)[1]

    assert params().greedy and params().max_new_tokens == 100
    assert params(top_k=5).temperature == 1.0 and params(seed=1).temperature == 1.0
    assert params(temperature=0.5).temperature == 0.5
    assert params(temperature=0.5, do_sample=False).greedy
    assert params(do_sample=True).temperature == 1.0


def test_tgi_details_truncate_and_full_text(client):
    body = client.post(
        "/",
        json={
            "inputs": "abcdef",
            "parameters": {"max_new_tokens": 3, "details": True, "truncate": 2, "return_full_text": True, "seed": 4},
        },
    ).json()
    assert body["generated_text"] == "abcdef" + SCRIPT[:3]
    details = body["details"]
    assert (details["finish_reason"], details["generated_tokens"], details["input_length"], details["seed"]) == (
        "length",
        3,
        2,
        4,
    )
    assert [t["text"] for t in details["tokens"]] == list(SCRIPT[:3]) and all(
        t["logprob"] <= 0 for t in details["tokens"]
    )
    stopped = client.post("/", json={"inputs": "x", "parameters": {"stop": ["."], "details": True}}).json()
    assert stopped["generated_text"] == " Paris" and stopped["details"]["finish_reason"] == "stop_sequence"
    error(client, "/", {"inputs": "abc", "parameters": {"truncate": 0}}, "parameters.truncate")


def test_tgi_refuses_what_it_does_not_implement_naming_the_parameter(client):
    for name, value in (
        ("watermark", True),
        ("best_of", 2),
        ("typical_p", 0.5),
        ("grammar", {"type": "json"}),
        ("decoder_input_details", True),
        ("adapter_id", "x"),
    ):
        err = error(client, "/", {"inputs": "x", "parameters": {name: value}}, f"parameters.{name}")
        assert err["code"] == "unsupported_parameter"
    assert (
        client.post(
            "/", json={"inputs": "x", "parameters": {"best_of": 1, "typical_p": 1.0, "max_new_tokens": 1}}
        ).status_code
        == 200
    )


def test_tgi_errors_name_the_tgi_fields(client):
    error(client, "/", {"inputs": "x", "parameters": {"max_new_tokens": -1}}, "parameters.max_new_tokens")
    error(client, "/", {"inputs": "x", "parameters": {"top_n_tokens": 100}}, "parameters.top_n_tokens")
    error(client, "/generate_stream", {"inputs": "x" * 300}, "inputs")  # longer than the context


def test_tgi_stream_events(client):
    events = stream(client, "/generate_stream", {"inputs": "x", "parameters": {"max_new_tokens": 4, "top_n_tokens": 2}})
    assert [e["index"] for e in events] == [0, 1, 2, 3]
    assert "".join(e["token"]["text"] for e in events) == SCRIPT[:4]
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == SCRIPT[:4]
    assert events[-1]["details"] == {"finish_reason": "length", "generated_tokens": 4, "input_length": 2, "seed": None}
    assert all(len(e["top_tokens"]) == 2 and e["top_tokens"][0]["text"] == e["token"]["text"] for e in events)


# ------------------------------------------------------------------------------ OpenAI completions


def test_completions_16_tokens_by_default_with_usage(client):
    body = client.post("/v1/completions", json={"prompt": PROMPT}).json()
    assert body["object"] == "text_completion" and body["model"] == "fake-model"
    assert body["choices"] == [{"index": 0, "text": SCRIPT[:16], "logprobs": None, "finish_reason": "length"}]
    n = len(tokenize(PROMPT))
    usage = body["usage"]
    assert {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == {
        "prompt_tokens": n,
        "completion_tokens": 16,
        "total_tokens": n + 16,
    }
    # Asked again, the prompt's keys/values are still in a free slot: all but its last token are reused.
    again = client.post("/v1/completions", json={"prompt": PROMPT}).json()
    assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": n - 1}
    assert again["choices"] == body["choices"]


def test_completions_echo_n_stop_and_prompt_forms(client):
    echoed = client.post("/v1/completions", json={"prompt": "hi", "echo": True, "max_tokens": 3, "n": 2}).json()
    assert [c["text"] for c in echoed["choices"]] == ["hi" + SCRIPT[:3]] * 2
    ids = client.post("/v1/completions", json={"prompt": [ord("h"), ord("i")], "echo": True, "max_tokens": 3}).json()
    assert ids["choices"][0]["text"] == "hi" + SCRIPT[:3]  # token ids echoed as their text
    listed = client.post("/v1/completions", json={"prompt": ["hi"], "stop": ["."]}).json()
    assert listed["choices"][0]["text"] == " Paris" and listed["choices"][0]["finish_reason"] == "stop"
    several = client.post("/v1/completions", json={"prompt": ["a", "bc"], "max_tokens": 2, "n": 2}).json()
    assert [c["index"] for c in several["choices"]] == [0, 1, 2, 3]  # prompt k's choices at k*n..k*n+n-1
    assert several["usage"]["prompt_tokens"] == 5 and several["usage"]["completion_tokens"] == 8  # with BOS each
    ids = client.post("/v1/completions", json={"prompt": [[ord("a")], [ord("b")]], "echo": True, "max_tokens": 1})
    assert [c["text"] for c in ids.json()["choices"]] == ["a" + SCRIPT[0], "b" + SCRIPT[0]]
    error(client, "/v1/completions", {"prompt": [[97], [999]]}, "prompt")
    error(client, "/v1/completions", {"prompt": []}, "prompt")
    error(client, "/v1/completions", {"prompt": [1, 999]}, "prompt")


def test_completions_logprobs(client):
    body = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 3, "logprobs": 2}).json()
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"] == list(SCRIPT[:3]) and logprobs["text_offset"] == [0, 1, 2]
    assert all(lp <= 0 for lp in logprobs["token_logprobs"])
    assert [list(alts) for alts in logprobs["top_logprobs"]] == [[c, "?"] for c in SCRIPT[:3]]


def test_completions_refusals_and_renames(client):
    for body, param in (
        ({"best_of": 2}, "best_of"),
        ({"suffix": "x"}, "suffix"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
    ):
        assert error(client, "/v1/completions", {"prompt": "x", **body}, param)["code"] == "unsupported_parameter"
    error(client, "/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens")
    error(client, "/v1/completions", {"prompt": "x", "echo": True, "logprobs": 21}, "logprobs")
    error(client, "/v1/completions", {"prompt": ["x"] * 33}, "prompt")
    error(client, "/v1/completions", {"prompt": "x", "n": 5}, "n")
    error(client, "/v1/completions", {"prompt": "x", "model": "gpt-4o"}, "model", status=404)


# ------------------------------------------------------------------------------ OpenAI chat


def chat(client, messages=None, **fields):
    return client.post(
        "/v1/chat/completions", json={"messages": messages or [{"role": "user", "content": PROMPT}], **fields}
    )


def test_chat_uses_the_engine_chat_path_and_stops_at_the_next_user_turn(client, engine):
    body = chat(client).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": " Paris."}
    assert body["choices"][0]["finish_reason"] == "stop"
    prompt = engine.render_chat([{"role": "user", "content": PROMPT}])
    assert body["usage"]["prompt_tokens"] == len(tokenize(prompt))


def test_chat_max_tokens_and_max_completion_tokens(client):
    for name in ("max_tokens", "max_completion_tokens"):
        body = chat(client, **{name: 3}).json()
        assert (
            body["choices"][0]["message"]["content"] == SCRIPT[:3] and body["choices"][0]["finish_reason"] == "length"
        )
        error(client, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], name: -1}, name)
    assert (
        chat(client, max_tokens=3, max_completion_tokens=3).status_code == 400
    )  # one name only: the OpenAPI document can say so
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "max_completion_tokens": 4},
        "max_completion_tokens",
    )


def test_chat_logprobs(client):
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
        "top_logprobs",
    )
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 100},
        "top_logprobs",
    )
    content = chat(client, max_tokens=2, logprobs=True, top_logprobs=2).json()["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in content] == list(SCRIPT[:2])
    assert all(
        [a["token"] for a in t["top_logprobs"]] == [t["token"], "?"] and t["bytes"] == list(t["token"].encode())
        for t in content
    )


def test_a_streamed_chat_lists_the_logprobs_of_tokens_without_text_as_the_whole_answer_does():
    # "á" is two tokens (one byte each): the first has no text yet; the answer ends with EOS, which has none.
    with fake_engine("Olá", n_ctx=64) as eng, TestClient(build_app(eng)) as c:
        body = {"messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 1}
        whole = chat(c, **body).json()["choices"][0]
        events = stream(c, "/v1/chat/completions", {**body, "stream": True})
    choices = [choice for e in events[:-1] for choice in e["choices"]]
    assert events[-1] == "[DONE]" and "error" not in str(events)
    streamed = [t for choice in choices if choice.get("logprobs") for t in choice["logprobs"]["content"]]
    assert streamed == whole["logprobs"]["content"] and len(streamed) == len("Olá".encode()) + 1
    assert "".join(choice["delta"].get("content") or "" for choice in choices) == whole["message"]["content"] == "Olá"


def test_chat_roles_and_content_parts(client, engine):
    developer = chat(client, [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]).json()
    as_system = engine.render_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert developer["usage"]["prompt_tokens"] == len(tokenize(as_system))
    parts = chat(
        client,
        [{"role": "user", "content": [{"type": "text", "text": "Capital"}, {"type": "text", "text": " of France?"}]}],
    )
    assert parts.json()["usage"] == chat(client).json()["usage"]
    assert (
        "'tool'"
        in error(
            client, "/v1/chat/completions", {"messages": [{"role": "function", "content": "4"}]}, "messages[0].role"
        )["message"]
    )
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}, {"role": "wizard", "content": "y"}]},
        "messages[1].role",
    )
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content",
    )
    error(client, "/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages[0].content")
    assert (
        "non-empty" in error(client, "/v1/chat/completions", {"messages": []}, "messages")["message"]
    )  # the engine's check


def test_chat_checks_tools_and_formats(client):
    message = [{"role": "user", "content": "x"}]
    error(client, "/v1/chat/completions", {"messages": message, "tools": [{"type": "function"}]}, "tools[0].function")
    error(client, "/v1/chat/completions", {"messages": message, "tool_choice": "auto"}, "tool_choice")
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
        "messages[0].tool_calls[0].type",
    )
    error(client, "/v1/chat/completions", {"messages": message, "response_format": {"type": "xml"}}, "response_format")
    ok = {"messages": message, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}, "max_tokens": 1}
    assert client.post("/v1/chat/completions", json=ok).status_code == 200


def test_chat_translation():
    messages, params, tools, aliases = ChatCompletionRequest(
        messages=[{"role": "user", "content": "x"}], logprobs=True
    ).engine_request()
    assert messages == [{"role": "user", "content": "x", "tool_calls": [], "tool_call_id": None}] and tools is None
    assert params.max_new_tokens is None and params.logprobs == 0  # until the turn ends; the chosen token only
    assert aliases["prompt"] == "messages"
    assert CompletionRequest(prompt="x").engine_request()[1].max_new_tokens == openai.DEFAULT_MAX_TOKENS


# ------------------------------------------------------------------------------ OpenAI streaming


def test_chat_stream_chunks(client):
    events = stream(
        client,
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": PROMPT}],
            "n": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert [c["delta"] for c in chunks[0]["choices"]] == [{"role": "assistant", "content": ""}] * 2
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[1:-1] if c["choices"][0]["index"] == index]
        assert "".join(c["delta"].get("content") or "" for c in mine) == " Paris."
        assert mine[-1]["finish_reason"] == "stop" and mine[-1]["delta"] == {"role": None, "content": None}
        assert all(c["finish_reason"] is None for c in mine[:-1])


def test_completion_stream_chunks(client):
    events = stream(client, "/v1/completions", {"prompt": "hi", "echo": True, "max_tokens": 3, "stream": True})
    assert events[-1] == "[DONE]" and all(e["usage"] is None for e in events[:-1])
    choices = [e["choices"][0] for e in events[:-1]]
    assert choices[0]["text"] == "hi"  # the echo comes first
    assert "".join(c["text"] for c in choices) == "hi" + SCRIPT[:3]
    assert choices[-1]["finish_reason"] == "length" and all(c["finish_reason"] is None for c in choices[:-1])
    scored = stream(client, "/v1/completions", {"prompt": "hi", "max_tokens": 3, "stream": True, "logprobs": 1})
    assert [e["choices"][0]["logprobs"]["text_offset"] for e in scored[:-2]] == [[0], [1], [2]]


def test_stream_errors_before_the_first_byte_are_plain_errors(client):
    error(
        client,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": -1},
        "max_tokens",
    )


# ------------------------------------------------------------------------------ failures after the answer started

LONG = {"max_tokens": 200, "ignore_eos": True}


def test_request_timeout_is_504_or_an_error_event():
    # 300 scripted tokens with no "User:" turn, 10 ms a step: every request outlives the 0.2 s timeout.
    with (
        fake_engine("la " * 100, n_ctx=512, step_seconds=0.01) as slow,
        TestClient(build_app(slow, ServeSettings(request_timeout=0.2))) as client,
    ):
        err = error(client, "/v1/completions", {"prompt": "x", **LONG}, None, status=504)
        assert err["code"] == "request_timeout"
        events = stream(
            client, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": True, **LONG}
        )
        assert events[-1]["error"]["code"] == "request_timeout"  # OpenAI's shape, then the stream ends
        tgi_events = stream(client, "/generate_stream", {"inputs": "x", "parameters": {"max_new_tokens": 200}})
        assert tgi_events[-1] == {"error": tgi_events[-1]["error"], "error_type": "generation"}
        assert _slots_freed(slow)  # the timed-out requests gave their slots back


def _slots_freed(engine, within: float = 5.0) -> bool:
    """Cancelled requests free their slot at the engine's next step (one 10 ms step here)."""
    deadline = time.monotonic() + within
    while engine.stats().active_slots and time.monotonic() < deadline:
        time.sleep(0.005)
    return engine.stats().active_slots == 0


def test_a_shutdown_mid_stream_ends_it_with_an_error_event():
    with fake_engine(n_ctx=512, step_seconds=0.01) as slow, TestClient(build_app(slow)) as client:
        body = {"prompt": "x", "stream": True, "max_tokens": 400, "ignore_eos": True}  # 4 s: still running at stop()
        with client.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            slow.stop(0)  # what SIGTERM does once the grace period is over
            events = sse_events([first, *lines])
    assert events[-1]["error"]["code"] == "shutting_down" and events[-1]["error"]["type"] == "overloaded_error"


# ------------------------------------------------------------------------------ /docs


def test_openapi_describes_every_field(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    ours = {name: s for name, s in schemas.items() if "ValidationError" not in name}
    missing = [
        f"{name}.{field}"
        for name, s in ours.items()
        for field, prop in s.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not missing
    for model, field, concept in (
        ("CompletionRequest", "temperature", "temperature"),
        ("TGIParameters", "top_n_tokens", "logprobs"),
        ("GenerateRequest", "num_return_sequences", "n"),
        ("ChatCompletionRequest", "max_tokens", "max_new_tokens"),
    ):
        assert ours[model]["properties"][field]["description"].startswith(declared(SamplingParams, concept).help)
    assert ours["ChatMessage"]["properties"]["role"]["enum"] == ["system", "developer", "user", "assistant", "tool"]


def test_ready_reports_the_slots_and_each_slots_context(client):
    # The web playground shows "context used of n_ctx" from these numbers.
    assert client.get("/ready").json() == {"status": "ready", "model": "fake-model", "slots": 4, "n_ctx": 256}
