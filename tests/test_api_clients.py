"""The HTTP API with real clients over real HTTP: curl, the openai SDK, huggingface_hub, httpx.

One server process (the embedded SmolLM2) is shared by the whole module.
Requests ask for few tokens to keep the suite fast.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from api_server import Server, assert_openai_error, sse_events

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def server():
    s = Server("--slots", "4", "--max-n", "4")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def model(server) -> str:
    return httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]


@pytest.fixture(scope="module")
def openai_client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


# ------------------------------------------------------------------------------ the seeds' contract


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_seeds_curl_example(server):
    # The seeds' README command, byte for byte; only the port differs.
    command = f"""curl -X POST -H "Content-Type: application/json" -d '{{"prompt": "{PROMPT}"}}' http://localhost:{server.port}/generate"""
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert list(body) == ["response"]
    assert body["response"].startswith(PROMPT) and len(body["response"]) > len(PROMPT)


def test_generate_options(server):
    url = f"{server.url}/generate"
    greedy = {"prompt": PROMPT, "do_sample": False, "max_new_tokens": 6}
    first, second = httpx.post(url, json=greedy, timeout=60).json(), httpx.post(url, json=greedy, timeout=60).json()
    assert first == second and "Paris" in first["response"]

    many = httpx.post(
        url, json={"prompt": PROMPT, "num_return_sequences": 2, "max_new_tokens": 4, "seed": 1}, timeout=60
    ).json()
    assert len(many["responses"]) == 2 and all(r.startswith(PROMPT) for r in many["responses"])

    prompt_tokens = httpx.post(f"{server.url}/tokenize", json={"text": PROMPT}).json()["count"]
    capped = httpx.post(
        url, json={"prompt": PROMPT, "max_length": prompt_tokens + 3, "do_sample": False}, timeout=60
    ).json()
    continuation = capped["response"][len(PROMPT) :]
    assert (
        0 < httpx.post(f"{server.url}/tokenize", json={"text": continuation, "add_special": False}).json()["count"] <= 3
    )

    stopped = httpx.post(
        url, json={"prompt": PROMPT, "do_sample": False, "max_new_tokens": 8, "stop": ["."]}, timeout=60
    ).json()
    assert stopped["response"] == PROMPT + " Paris"


# ------------------------------------------------------------------------------ OpenAI SDK


def test_openai_chat(openai_client, model):
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    reply = openai_client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert (
        reply.usage.completion_tokens <= 12
        and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    )

    pieces, usage, finish = [], None, None
    stream = openai_client.chat.completions.create(
        model=model,
        messages=messages,
        max_completion_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == reply.choices[0].message.content  # greedy: streaming changes nothing
    assert finish == reply.choices[0].finish_reason and usage.completion_tokens == reply.usage.completion_tokens


def test_openai_completion_n_stop_seed(openai_client, model):
    two = openai_client.completions.create(model=model, prompt=PROMPT, max_tokens=6, n=2, seed=7, temperature=1.0)
    assert sorted(c.index for c in two.choices) == [0, 1]
    again = openai_client.completions.create(model=model, prompt=PROMPT, max_tokens=6, n=2, seed=7, temperature=1.0)
    assert [c.text for c in two.choices] == [c.text for c in again.choices]  # same seed, same text

    stopped = openai_client.completions.create(model=model, prompt=PROMPT, max_tokens=8, temperature=0, stop=["."])
    assert stopped.choices[0].text == " Paris" and stopped.choices[0].finish_reason == "stop"

    texts = {0: "", 1: ""}
    for chunk in openai_client.completions.create(model=model, prompt=PROMPT, max_tokens=6, n=2, seed=7, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert [texts[0], texts[1]] == [c.text for c in two.choices]  # streamed = not streamed


def test_openai_logprobs(openai_client, model):
    out = openai_client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=3,
        logprobs=True,
        top_logprobs=2,
        temperature=0,
    )
    content = out.choices[0].logprobs.content
    assert 1 <= len(content) <= 3
    for token in content:
        assert len(token.top_logprobs) == 2 and token.logprob <= 0
        assert token.token == token.top_logprobs[0].token  # greedy picks the most likely token
        assert bytes(token.bytes).decode("utf-8", "replace") == token.token


# ------------------------------------------------------------------------------ huggingface_hub


def test_huggingface_text_generation(server):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=server.url)
    text = client.text_generation(PROMPT, max_new_tokens=6)
    assert "Paris" in text and not text.startswith(PROMPT)  # TGI returns the continuation only (greedy by default)

    events = list(client.text_generation(PROMPT, max_new_tokens=6, stream=True, details=True))
    assert "".join(e.token.text for e in events) == text
    assert events[-1].generated_text == text and events[-1].details.finish_reason in ("length", "eos_token")
    assert all(e.generated_text is None for e in events[:-1])
    assert list(client.text_generation(PROMPT, max_new_tokens=6, stream=True)) == [e.token.text for e in events]

    detailed = client.text_generation(PROMPT, max_new_tokens=4, details=True, return_full_text=True)
    assert detailed.generated_text.startswith(PROMPT) and detailed.details.generated_tokens == 4


# ------------------------------------------------------------------------------ service routes


def test_service_routes(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"
    ids = httpx.post(f"{server.url}/tokenize", json={"text": "Olá, coração 🙂", "add_special": False}).json()["tokens"]
    assert httpx.post(f"{server.url}/detokenize", json={"tokens": ids}).json()["text"] == "Olá, coração 🙂"
    assert "/v1/chat/completions" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    docs = httpx.get(f"{server.url}/docs").text  # works offline: the assets are served locally, not from a CDN
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn." not in docs
    assert httpx.get(f"{server.url}/docs-assets/swagger-ui-bundle.js").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    for name in (
        "pocketlm_requests_total",
        "pocketlm_prompt_tokens_total",
        "pocketlm_time_to_first_token_seconds_bucket",
        "pocketlm_inter_token_latency_seconds_bucket",
        "pocketlm_queue_depth",
        "pocketlm_active_slots",
    ):
        assert name in metrics


# ------------------------------------------------------------------------------ disconnects free slots

# The slot is freed at the engine's next step (milliseconds on an idle machine; the issue asks for < 1 s).
# The poll allows much more, because one step can take seconds on an overloaded CI machine; what the
# test tells apart is "cancelled" from "ran to the end": LONG requests hold a slot for 2000 tokens
# (15 s or more at this machine's best speed) unless they are cancelled.
FREED_WITHIN = 10.0
LONG = {"max_tokens": 2000, "ignore_eos": True}


def _wait_for_free_slots(server) -> float:
    start = time.monotonic()
    while time.monotonic() - start < FREED_WITHIN:
        if server.metric("pocketlm_active_slots") == 0:
            freed = time.monotonic() - start
            print(f"slot freed {freed * 1000:.0f} ms after the client left")
            return freed
        time.sleep(0.02)
    raise AssertionError(f"slots still busy {FREED_WITHIN} s after the client left")


def test_closing_a_stream_frees_the_slot(server, model):
    body = {"model": model, "prompt": PROMPT, "stream": True, **LONG}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{server.url}/v1/completions", json=body) as response:
            lines = response.iter_lines()
            while not next(lines).startswith("data: "):
                pass
            assert server.metric("pocketlm_active_slots") == 1
    _wait_for_free_slots(server)


def test_abandoned_plain_request_frees_the_slot(server, model):
    body = {"model": model, "prompt": PROMPT, **LONG}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/completions", json=body, timeout=httpx.Timeout(60, read=0.5))
    _wait_for_free_slots(server)


# ------------------------------------------------------------------------------ bad input


def _bad_requests(model: str) -> list[tuple[str, str, dict, int, str | None]]:
    """(name, route, httpx keyword arguments, expected status, expected param)."""
    chat = "/v1/chat/completions"
    completions = "/v1/completions"
    json_headers = {"Content-Type": "application/json"}
    return [
        ("malformed JSON", "/generate", {"content": b'{"prompt": "x"', "headers": json_headers}, 400, "body"),
        ("wrong type", "/generate", {"json": {"prompt": 42}}, 400, "prompt"),
        (
            "wrong type, OpenAI",
            completions,
            {"json": {"model": model, "prompt": "x", "max_tokens": "ten"}},
            400,
            "max_tokens",
        ),
        ("missing prompt", "/generate", {"json": {"max_new_tokens": 5}}, 400, "prompt"),
        ("missing prompt, OpenAI", completions, {"json": {"model": model}}, 400, "prompt"),
        ("unknown model", completions, {"json": {"model": "gpt-4o", "prompt": "x"}}, 404, "model"),
        (
            "negative max_tokens",
            completions,
            {"json": {"model": model, "prompt": "x", "max_tokens": -1}},
            400,
            "max_tokens",
        ),
        (
            "huge max_tokens",
            chat,
            {"json": {"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}},
            400,
            "max_tokens",
        ),
        ("n above the limit", completions, {"json": {"model": model, "prompt": "x", "n": 100}}, 400, "n"),
        (
            "invalid chat role",
            chat,
            {"json": {"model": model, "messages": [{"role": "wizard", "content": "x"}]}},
            400,
            "messages[0].role",
        ),
        ("non-UTF-8 body", "/generate", {"content": b'{"prompt": "caf\xe9 \xff"}', "headers": json_headers}, 400, None),
        (
            "10 MB body",
            "/generate",
            {"content": b'{"prompt": "' + b"a" * 10_000_000 + b'"}', "headers": json_headers},
            413,
            None,
        ),
        (
            "10,000 stop strings",
            completions,
            {"json": {"model": model, "prompt": "x", "stop": [f"s{i}" for i in range(10_000)]}},
            400,
            "stop",
        ),
        ("unknown route", "/v2/nothing", {"json": {}}, 404, None),
    ]


def test_bad_input_is_4xx_and_leaves_others_alone(server, model):
    streamed: dict = {}

    def stream_alongside():
        body = {
            "model": model,
            "prompt": PROMPT,
            "stream": True,
            "max_tokens": 24,
            "ignore_eos": True,
            "temperature": 0,
        }
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as response:
            streamed["events"] = sse_events(response.iter_lines())

    neighbour = threading.Thread(target=stream_alongside)
    neighbour.start()
    for name, route, kwargs, status, param in _bad_requests(model):
        response = httpx.post(f"{server.url}{route}", timeout=60, **kwargs)
        error = assert_openai_error(response, status, param)
        assert error["type"] == "invalid_request_error", name
    neighbour.join(timeout=120)

    events = streamed["events"]
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"]).strip()
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert (
        httpx.post(f"{server.url}/generate", json={"prompt": PROMPT, "max_new_tokens": 2}, timeout=60).status_code
        == 200
    )
