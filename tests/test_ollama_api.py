"""Ollama's routes in-process, on the scripted backend: Ollama's rules and shapes, what is refused, in milliseconds.

The official `ollama` client against a real server with real models is in test_models_serving.py; here each
rule is checked to the byte (tests/fake_backend.py: the model writes SCRIPT, one token per byte).
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from fake_backend import fake_engine
from pocketlm.models.registry import EMBEDDED
from pocketlm.server import ServeSettings, build_app
from pocketlm.tasks.settings import TaskSettings

SCRIPT = " Paris is lovely in the spring, and in the autumn too."
MODEL = "fake-model"


@pytest.fixture(scope="module")
def client():
    with fake_engine(SCRIPT, n_ctx=256) as engine, TestClient(build_app(engine)) as c:
        yield c


def refused(client, route: str, body: dict, status: int = 400) -> str:
    answer = client.post(route, json=body)
    assert answer.status_code == status, answer.text
    assert list(answer.json()) == ["error"] and isinstance(answer.json()["error"], str)  # Ollama's shape
    return answer.json()["error"]


def test_chat_streams_one_json_object_per_line_then_the_counts():
    with fake_engine(SCRIPT, n_ctx=256) as engine, TestClient(build_app(engine)) as client:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "options": {"num_predict": 12}}
        with client.stream("POST", "/api/chat", json=body) as response:
            assert response.headers["content-type"] == "application/x-ndjson"
            parts = [json.loads(line) for line in response.iter_lines() if line]
    *pieces, last = parts
    assert all(p["done"] is False and p["message"]["role"] == "assistant" for p in pieces)
    assert "".join(p["message"]["content"] for p in pieces) == SCRIPT[:12]
    assert last["done"] and last["done_reason"] == "length" and last["message"]["content"] == ""
    assert last["eval_count"] == 12 and last["prompt_eval_count"] > 0
    assert last["total_duration"] >= last["eval_duration"] >= 0 and last["created_at"].endswith("Z")


def test_generate_whole_raw_and_with_the_chat_template(client):
    whole = client.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False, "raw": True})
    assert whole.json()["response"] == SCRIPT and whole.json()["done_reason"] == "stop"
    templated = client.post(
        "/api/generate", json={"model": f"{MODEL}:latest", "prompt": "Hi", "system": "Be brief.", "stream": False}
    )
    assert templated.json()["response"] == SCRIPT and templated.json()["model"] == MODEL


def test_the_body_is_json_whatever_its_content_type_says(client):
    body = json.dumps({"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 3}})
    form = client.post("/api/generate", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200 and form.json()["response"] == SCRIPT[:3]


def test_no_prompt_loads_the_model_and_keep_alive_zero_unloads_it(client):
    loaded = client.post("/api/generate", json={"model": MODEL})
    assert loaded.json()["done_reason"] == "load" and loaded.json()["response"] == ""
    chat = client.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": 0})
    assert chat.json()["done_reason"] == "unload" and chat.json()["message"] == {"role": "assistant", "content": ""}


def test_options_keep_ollamas_names_in_errors(client):
    message = refused(client, "/api/chat", {"model": MODEL, "messages": [], "options": {"temperature": -1}})
    assert message.startswith("options.temperature: must be >= 0.0")
    assert refused(client, "/api/generate", {"model": MODEL, "prompt": "x", "options": {"num_predict": -3}}).startswith(
        "options.num_predict"
    )
    too_long = refused(client, "/api/generate", {"model": MODEL, "prompt": "x", "options": {"num_ctx": 4096}})
    assert "gives each request 256 tokens of context" in too_long


@pytest.mark.parametrize(
    "field, value",
    [
        ("options", {"mirostat": 2}),
        ("options", {"tfs_z": 0.5}),
        ("options", {"no_such_option": 1}),
        ("format", "yaml"),
        ("think", True),
        ("images", ["aGk="]),
        ("context", [1, 2]),
    ],
)
def test_what_pocketlm_does_not_do_is_refused_by_name(client, field, value):
    body = {"model": MODEL, "prompt": "Hi", field: value}
    name = f"{field}.{next(iter(value))}" if field == "options" else field
    assert refused(client, "/api/generate", body).startswith(name)


def test_runner_options_are_accepted_and_change_nothing(client):
    body = {"model": MODEL, "prompt": "Hi", "raw": True, "stream": False, "options": {"num_thread": 8, "num_gpu": 0}}
    assert client.post("/api/generate", json=body).json()["response"] == SCRIPT


def test_a_model_not_served_and_a_bad_keep_alive(client):
    assert "is not served here; this server serves 'fake-model'" in refused(
        client, "/api/chat", {"model": "llama3.2", "messages": []}, status=404
    )
    assert refused(client, "/api/generate", {"model": MODEL, "keep_alive": "soon"}).startswith("keep_alive:")
    assert refused(client, "/api/tags-typo", {}, status=404).startswith("no route")


def test_tags_ps_show_version(client):
    tags = client.get("/api/tags").json()["models"]
    assert [t["name"] for t in tags] == [MODEL] and tags[0]["details"]["family"] == "fake"
    running = client.get("/api/ps").json()["models"]
    assert running[0]["name"] == MODEL and running[0]["context_length"] == 256
    assert running[0]["expires_at"].startswith("9999")  # kept forever
    shown = client.post("/api/show", json={"model": MODEL}).json()
    assert "num_ctx 256" in shown["parameters"] and shown["capabilities"] == ["completion"]
    assert client.get("/api/version").json() == {"version": __import__("pocketlm").__version__}


def test_embed_without_an_encoder_to_serve_says_how_to_serve_one(tmp_path):
    """The encoder's files gone after start-up (as when its package or torch is missing): Ollama's embeddings
    routes answer a 404 in Ollama's shape that says no embeddings model is served and names --embedding-model."""
    link = tmp_path / "encoder"
    link.symlink_to(EMBEDDED["all-minilm-l6-v2"].path())
    settings = ServeSettings(tasks=TaskSettings(embedding_model=str(link)))  # checked at start-up: there
    link.unlink()
    with fake_engine(SCRIPT, n_ctx=256) as engine, TestClient(build_app(engine, settings)) as client:
        for route, body in (("/api/embed", {"input": "Hi"}), ("/api/embeddings", {"prompt": "Hi"})):
            message = refused(client, route, body, status=404)
            assert message.startswith("no embeddings model is served here") and "--embedding-model" in message
        assert "--embedding-model" in refused(client, "/api/embed", {"model": MODEL, "input": "Hi"}, status=404)
