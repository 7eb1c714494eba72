"""Several models behind one real server: the openai SDK and the official ollama client over HTTP, models loaded
on demand and unloaded under --max-loaded-models, a stream that keeps flowing while another model loads.

The models: the embedded SmolLM2 (the default, loaded at start-up) and a tiny random Llama the tests build
(tests/tiny_models.py; converted to GGUF once, into the cache, on its first load); for the stream, a tiny Llama
of new random weights, so its first load converts it (in a child process) while SmolLM2 streams.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import replace

import httpx
import pytest

from api_server import Server
from pocketlm.engine import EngineConfig, ModelOptions, SamplingParams, load_engine
from pocketlm.files import remove_entry
from pocketlm.models.conversions import converted_models
from tiny_models import build_tiny_llama, tiny_model_dir

SMOLLM2, TINY, FRESH = "smollm2-135m-instruct", "tiny-llama", "fresh-llama"
ENCODER = "all-minilm-l6-v2"  # the server's --embedding-model, by default
CONFIG = EngineConfig(slots=2, n_ctx=512)
SERVE = ("--slots", "2", "--n-ctx", "512")
PROMPTS = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The best way to learn is"]


def rss_mb(server: Server) -> float:
    for line in open(f"/proc/{server.process.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def tiny() -> str:
    return str(tiny_model_dir("llama"))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> str:
    """A model no cache has seen: its first load converts it. Its conversion is removed afterwards."""
    path = build_tiny_llama(tmp_path_factory.mktemp("models") / FRESH, seed=random.randrange(1 << 30))
    yield str(path)
    for gguf, source in converted_models():
        if source == str(path.resolve()):
            remove_entry(gguf)
            gguf.with_suffix(".json").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server(tiny, fresh):
    s = Server("--model", SMOLLM2, "--model", tiny, "--model", fresh, *SERVE)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def alone(tiny) -> dict[str, dict[str, str]]:
    """Each model's greedy continuation of each prompt, from an engine that serves it alone (same slots, context)."""
    answers = {}
    for name, model in ((SMOLLM2, SMOLLM2), (TINY, tiny)):
        engine = load_engine(replace(ModelOptions(), model=model), CONFIG)
        try:
            params = SamplingParams(temperature=0, max_new_tokens=12)
            answers[name] = {p: asyncio.run(engine.complete(p, params)).samples[0].text for p in PROMPTS}
        finally:
            engine.stop(0)
    return answers


def test_the_openai_sdk_alternates_two_models_each_answering_as_it_does_alone(server, alone):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    listed = {m.id: m for m in client.models.list().data}
    assert listed[SMOLLM2].model_extra["default"] and not listed[TINY].model_extra["default"]
    for i, prompt in enumerate(PROMPTS * 2):
        model = (SMOLLM2, TINY)[i % 2]
        answer = client.completions.create(model=model, prompt=prompt, max_tokens=12, temperature=0)
        assert answer.model == model and answer.choices[0].text == alone[model][prompt], (model, prompt)
    models = httpx.get(f"{server.url}/v1/models").json()["data"]
    states = {m["id"]: m["state"] for m in models if m.get("state")}
    assert states == {SMOLLM2: "loaded", TINY: "loaded", FRESH: "unloaded"}


def test_the_seeds_generate_and_tgi_bodies_name_a_model_or_get_the_default(server, alone):
    prompt, greedy = PROMPTS[0], {"do_sample": False, "max_new_tokens": 12}
    for model in (TINY, None, "gpt-4"):
        named = {"model": model} if model else {}
        seeds = httpx.post(f"{server.url}/generate", json={"prompt": prompt, **greedy, **named}, timeout=120)
        tgi = httpx.post(
            f"{server.url}/generate",
            json={"inputs": prompt, "parameters": {"max_new_tokens": 12}, **named},  # TGI's default is greedy
            timeout=120,
        )
        if model == "gpt-4":
            for answer in (seeds, tgi):
                assert answer.status_code == 404 and f"'{SMOLLM2}', '{TINY}'" in answer.json()["error"]["message"]
            continue
        expected = alone[model or SMOLLM2][prompt]
        assert seeds.json() == {"response": prompt + expected}, model
        assert tgi.json()["generated_text"] == expected, model


def test_pocketlm_models_lists_a_running_servers_models(server):
    from click.testing import CliRunner

    from pocketlm.cli import main

    out = CliRunner().invoke(main, ["models", "--url", server.url])
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line for line in out.output.splitlines() if line.strip()}
    assert "loaded" in lines[SMOLLM2] and "(default)" in lines[SMOLLM2] and "instruct" in lines[SMOLLM2]
    assert lines[FRESH].split()[1] == "unloaded"


def test_a_model_that_is_not_served_is_a_404_naming_the_choices(server):
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "Hi"}])
    assert f"this server serves '{SMOLLM2}', '{TINY}', '{FRESH}'" in caught.value.body["message"]


def test_the_ollama_client_lists_shows_chats_and_generates(server):
    import ollama

    client = ollama.Client(host=server.url, timeout=120)
    assert {m.model for m in client.list().models} == {SMOLLM2, TINY, FRESH}
    shown = client.show(SMOLLM2)
    assert shown.details.family == "llama" and shown.modelinfo["general.architecture"] == "llama"
    assert "<|im_start|>" in shown.template and "completion" in shown.capabilities

    greedy = {"temperature": 0, "num_predict": 10}
    messages = [{"role": "user", "content": "Name a colour."}]
    whole = client.chat(model=SMOLLM2, messages=messages, options=greedy)
    assert whole.done and whole.done_reason in ("stop", "length") and whole.message.content.strip()
    assert whole.eval_count <= 10 and whole.prompt_eval_count > 0 and whole.total_duration > 0
    parts = list(client.chat(model=SMOLLM2, messages=messages, options=greedy, stream=True))
    assert len(parts) > 2 and parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts) == whole.message.content  # greedy: the same text

    generated = client.generate(model=TINY, prompt="Once upon a time", raw=True, options=greedy)
    assert generated.done and generated.response and generated.model == TINY
    running = {m.model: m for m in client.ps().models}
    assert set(running) == {SMOLLM2, TINY} and running[TINY].context_length == 512

    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="llama3.2", messages=messages)
    assert caught.value.status_code == 404 and "this server serves" in caught.value.error


def test_the_ollama_client_asks_for_json_and_for_a_schema(server):
    import jsonschema
    import ollama
    from pydantic import BaseModel, Field

    class Colour(BaseModel):
        name: str = Field(max_length=20)
        hex: str = Field(pattern=r"^#[0-9a-f]{6}$")

    client = ollama.Client(host=server.url, timeout=120)
    messages = [{"role": "user", "content": "Describe the colour red."}]
    schema = Colour.model_json_schema()  # no additionalProperties: Ollama writes the listed keys only
    answer = client.chat(model=SMOLLM2, messages=messages, format=schema, options={"temperature": 0.7, "seed": 3})
    assert answer.done_reason == "stop"
    assert set(json.loads(answer.message.content)) == {"name", "hex"}
    jsonschema.validate(json.loads(answer.message.content), schema)
    anything = client.generate(model=TINY, prompt="A person:", format="json", options={"num_predict": 60})
    if anything.done_reason == "stop":  # a random model may run out of tokens mid-object; the shape holds
        assert isinstance(json.loads(anything.response), dict)
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model=SMOLLM2, messages=messages, format={"type": "object", "uniqueItems": True})
    assert caught.value.status_code == 400 and caught.value.error.startswith("format")


def test_the_ollama_client_embeds_with_the_encoder_of_v1_embeddings(server):
    import ollama

    client = ollama.Client(host=server.url, timeout=120)
    texts = ["The cat sat on the mat.", "Stocks fell sharply today."]
    answer = client.embed(model=f"{ENCODER}:latest", input=texts)
    openai = httpx.post(f"{server.url}/v1/embeddings", json={"input": texts}, timeout=120).json()
    assert answer.model == ENCODER and answer.prompt_eval_count == openai["usage"]["prompt_tokens"]
    for got, want in zip(answer.embeddings, openai["data"], strict=True):
        assert got == pytest.approx(want["embedding"], abs=1e-6)  # one encoder behind both APIs
    assert client.embeddings(model=ENCODER, prompt=texts[0]).embedding == pytest.approx(answer.embeddings[0], abs=1e-6)

    long = "word " * 1000  # more than the 256 tokens MiniLM reads: Ollama cuts it by default
    assert len(client.embed(model=ENCODER, input=long).embeddings[0]) == len(answer.embeddings[0])
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(model=ENCODER, input=long, truncate=False)
    assert caught.value.status_code == 400 and caught.value.error.startswith("input: has 1002 tokens")
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(model=SMOLLM2, input="Hi")  # a text model makes no vectors here
    assert caught.value.status_code == 404 and f"use '{ENCODER}' (the server's --embedding-model)" in caught.value.error


def test_a_stream_keeps_flowing_while_another_model_loads(server):
    """SmolLM2 streams while the fresh model loads for the first time (converted to GGUF, then loaded)."""
    arrivals: list[float] = []
    first = threading.Event()

    def stream():
        body = {"model": SMOLLM2, "prompt": "Count:", "max_tokens": 2000, "temperature": 0, "ignore_eos": True}
        with httpx.stream("POST", f"{server.url}/v1/completions", json={**body, "stream": True}, timeout=300) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.monotonic())
                    first.set()
                if len(arrivals) > 5 and loaded:  # enough: the load is over
                    return

    loaded: list[float] = []
    streaming = threading.Thread(target=stream)
    streaming.start()
    assert first.wait(60)
    sent = time.monotonic()
    answer = httpx.post(
        f"{server.url}/v1/completions", json={"model": FRESH, "prompt": "Hi", "max_tokens": 1}, timeout=300
    )
    loaded.append(time.monotonic())
    streaming.join(300)
    assert answer.status_code == 200, answer.text
    load_seconds = server.metric("pocketlm_model_load_seconds_sum", model=FRESH)
    during = [t for t in arrivals if sent <= t <= loaded[0]]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:]) if sent <= b and a <= loaded[0]]
    assert len(during) > 10, f"{len(during)} tokens streamed during a {load_seconds:.1f} s load"
    assert max(gaps) < load_seconds, f"a gap of {max(gaps):.3f} s, longer than the {load_seconds:.3f} s load"


def test_twenty_alternating_requests_with_one_model_loaded_at_a_time(tiny):
    server = Server("--model", SMOLLM2, "--model", tiny, "--max-loaded-models", "1", *SERVE)
    try:
        rss = []
        for i in range(20):
            model = (TINY, SMOLLM2)[i % 2]  # the last is SmolLM2, as at start-up
            answer = httpx.post(
                f"{server.url}/v1/completions",
                json={"model": model, "prompt": PROMPTS[i % 4], "max_tokens": 4, "temperature": 0},
                timeout=120,
            )
            assert answer.status_code == 200 and answer.json()["model"] == model, answer.text
            listed = httpx.get(f"{server.url}/v1/models").json()["data"]
            assert [m["id"] for m in listed if m.get("state") == "loaded"] == [model]
            rss.append(rss_mb(server))
        for model, loads in ((SMOLLM2, 11), (TINY, 10)):  # SmolLM2 also loaded at start-up
            assert server.metric("pocketlm_model_loads_total", model=model) == loads
            assert server.metric("pocketlm_model_unloads_total", model=model, reason="max_loaded_models") == 10
        # SmolLM2 alone, after its first swap and after its tenth: no memory kept from the nine in between
        assert abs(rss[-1] - rss[1]) < 0.1 * rss[1], f"RSS {rss[1]:.0f} MB then {rss[-1]:.0f} MB"
    finally:
        server.stop()
