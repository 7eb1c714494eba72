"""Serving behaviour of a real `pocketlm serve` process: API keys, CORS, overload, SIGTERM, JSON logs."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from api_server import Server, assert_openai_error, sse_events

KEYS = ("first-key", "second-key")
ORIGIN = "http://curso.example"


@pytest.fixture(scope="module")
def server():
    s = Server("--slots", "2", "--max-queue", "2", "--api-key", KEYS[0], "--cors-origin", ORIGIN)
    yield s
    s.stop()


def auth(key: str = KEYS[0]) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_api_keys(server):
    body = {"prompt": "Hi", "max_new_tokens": 2}
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes stay open
    error = assert_openai_error(httpx.post(f"{server.url}/generate", json=body), 401)
    assert error["type"] == "authentication_error"
    assert_openai_error(httpx.post(f"{server.url}/generate", json=body, headers=auth("wrong")), 401)
    assert_openai_error(httpx.get(f"{server.url}/metrics"), 401)
    assert httpx.post(f"{server.url}/generate", json=body, headers=auth(KEYS[0]), timeout=60).status_code == 200


def test_cors(server):
    preflight = httpx.options(
        f"{server.url}/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.get(f"{server.url}/health", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_burst_beyond_slots_and_queue(server):
    body = {"prompt": "Once upon a time", "max_tokens": 32, "ignore_eos": True}

    async def burst():
        async with httpx.AsyncClient(
            base_url=server.url, headers=auth(KEYS[0]), timeout=300, limits=httpx.Limits(max_connections=20)
        ) as client:
            return await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(12)))

    responses = asyncio.run(burst())
    refused = [r for r in responses if r.status_code in (429, 503)]
    served = [r for r in responses if r.status_code == 200]
    assert len(refused) + len(served) == len(responses), [r.status_code for r in responses]
    assert refused and len(served) >= 2  # 2 slots + 2 queued fit; 12 at once cannot
    for r in refused:
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["type"] == "overloaded_error"
    for r in served:
        assert r.json()["usage"]["completion_tokens"] == 32
    after = httpx.post(f"{server.url}/generate", json={"prompt": "Hi", "max_new_tokens": 2}, headers=auth(), timeout=60)
    assert after.status_code == 200


def test_sigterm_lets_a_running_stream_finish():
    """Also: options from the environment (several API keys), JSON access log."""
    env = {"POCKETLM_API_KEY": " ".join(KEYS), "POCKETLM_LOG_FORMAT": "json", "POCKETLM_GRACE_PERIOD": "60"}
    s = Server(env=env)
    try:
        from openai import OpenAI

        for key in KEYS:
            assert OpenAI(base_url=f"{s.url}/v1", api_key=key, max_retries=0).models.list().data[0].id
        assert httpx.get(f"{s.url}/v1/models", headers=auth("nope")).status_code == 401

        body = {"prompt": "Once upon a time", "max_tokens": 24, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", f"{s.url}/v1/completions", json=body, headers=auth(KEYS[1]), timeout=120) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            s.process.send_signal(15)  # SIGTERM while streaming
            events = sse_events([first, *lines])
        assert s.process.wait(timeout=60) == 0
    finally:
        log = s.log()
        s.stop()
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("path") == "/v1/completions"]
    assert access and access[0]["status"] == 200 and access[0]["method"] == "POST"
