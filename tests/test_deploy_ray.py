"""Ray Serve: two replicas of the app on a local Ray (2 CPUs, 1 per replica), through the openai SDK; two models,
one loaded per replica at a time, routed by Serve's model multiplexing.

Ray takes ~20-40 s to start on 2 cores, so this module is marked slow (`-m 'not slow'` skips it).
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

ray = pytest.importorskip("ray", reason="the deploy extra: pip install -e '.[deploy]'")
from ray import serve  # noqa: E402

from api_server import free_port  # noqa: E402
from pocketlm.deploy.ray_serve import Scaling, build_deployment  # noqa: E402
from pocketlm.engine import EngineConfig  # noqa: E402
from pocketlm.server import ServeSettings  # noqa: E402
from tiny_models import tiny_model_dir  # noqa: E402

SMOLLM2, TINY = "smollm2-135m-instruct", "tiny-llama"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_app():
    port = free_port()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        models = (SMOLLM2, str(tiny_model_dir("llama")))
        settings = ServeSettings(models=models, max_loaded_models=1, engine=EngineConfig(slots=4, n_ctx=256))
        serve.run(
            build_deployment(settings, Scaling(replicas=2, cpus_per_replica=1)), name="pocketlm", route_prefix="/"
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_answer_32_concurrent_openai_requests(ray_app):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ray_app}/v1", api_key="unused", max_retries=0, timeout=120)

    def complete(i: int):
        raw = client.completions.with_raw_response.create(
            model="smollm2-135m-instruct", prompt=f"Fact number {i}:", max_tokens=8, temperature=0
        )
        return raw.headers["x-pocketlm-replica"], raw.parse()

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(complete, range(32)))

    replicas = {replica for replica, _ in results}
    assert len(replicas) == 2, replicas
    assert all(c.choices[0].text and c.usage.completion_tokens > 0 for _, c in results)


def test_replicas_are_separate_processes_each_with_its_own_slots(ray_app):
    seen = {}
    for _ in range(40):
        r = httpx.get(f"{ray_app}/ready", timeout=30)
        assert r.status_code == 200 and r.json()["slots"] == 4
        seen[r.headers["x-pocketlm-replica"]] = r.json()
        if len(seen) == 2:
            break
    pids = {name.rsplit(":", 1)[1] for name in seen}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert all(name.startswith(socket.gethostname()) for name in seen)


def test_seeds_generate_and_errors_pass_through_ray(ray_app):
    r = httpx.post(f"{ray_app}/generate", json={"prompt": "The capital of France is", "max_new_tokens": 4}, timeout=60)
    assert r.status_code == 200 and r.json()["response"].startswith("The capital of France is")
    bad = httpx.post(
        f"{ray_app}/v1/completions", json={"model": "smollm2-135m-instruct", "prompt": "x", "temperature": -1}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"


def test_streaming_through_ray(ray_app):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ray_app}/v1", api_key="unused", max_retries=0, timeout=120)
    chunks = list(
        client.completions.create(
            model="smollm2-135m-instruct", prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
        )
    )
    assert len(chunks) > 1 and "".join(c.choices[0].text for c in chunks if c.choices)


def test_serve_multiplexing_sends_each_model_to_the_replica_that_holds_it(ray_app):
    from openai import OpenAI

    client = OpenAI(base_url=f"{ray_app}/v1", api_key="unused", max_retries=0, timeout=120)
    holders: dict[str, list[str]] = {SMOLLM2: [], TINY: []}
    for i in range(12):
        model = (TINY, SMOLLM2)[i % 2]
        raw = client.completions.with_raw_response.create(
            model=model,
            prompt="Hello",
            max_tokens=2,
            temperature=0,
            extra_headers={"serve_multiplexed_model_id": model},
        )
        assert raw.parse().model == model
        holders[model].append(raw.headers["x-pocketlm-replica"])
    # Once each model is loaded somewhere (a replica holds one at a time), its requests find that replica.
    settled = {model: set(replicas[2:]) for model, replicas in holders.items()}
    assert all(len(replicas) == 1 for replicas in settled.values()), holders
    assert settled[SMOLLM2] != settled[TINY], holders
