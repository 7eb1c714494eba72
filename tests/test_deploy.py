"""pocketlm.deploy without a cluster: the Lambda handler fed real Function URL / API Gateway v2 events,
the SAM template through cfn-lint, the settings read from POCKETLM_* variables."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from api_server import Server

pytest.importorskip("mangum", reason="the deploy extra: pip install -e '.[deploy]'")

from pocketlm.deploy.aws_lambda import create_handler  # noqa: E402
from pocketlm.deploy.settings import settings_from_env  # noqa: E402
from pocketlm.engine import EngineConfig  # noqa: E402
from pocketlm.errors import InvalidParameter  # noqa: E402
from pocketlm.server import ServeSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVENTS = Path(__file__).parent / "lambda_events"


class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the fields Mangum and a handler may read)."""

    function_name = "pocketlm"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:pocketlm"
    memory_limit_in_mb = 3008
    aws_request_id = "c0ffee00-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/pocketlm"
    log_stream_name = "2026/11/29/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture(scope="module")
def handler():
    return create_handler(ServeSettings(engine=EngineConfig(slots=1, n_ctx=256)))


def invoke(handler, name: str) -> tuple[dict, dict | str]:
    event = json.loads((EVENTS / name).read_text())
    result = handler(event, LambdaContext())
    body = base64.b64decode(result["body"]).decode() if result.get("isBase64Encoded") else result["body"]
    try:
        return result, json.loads(body)
    except ValueError:
        return result, body


def test_function_url_seeds_generate(handler):
    result, body = invoke(handler, "function_url_generate.json")
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert body["response"].startswith("The capital of France is") and len(body["response"]) > len(
        "The capital of France is"
    )


def test_api_gateway_v2_openai_completion_with_base64_body(handler):
    result, body = invoke(handler, "api_gateway_v2_openai_completion.json")
    assert result["statusCode"] == 200
    assert body["object"] == "text_completion" and body["model"] == "smollm2-135m-instruct"
    assert body["choices"][0]["text"] and body["usage"]["completion_tokens"] == 8


def test_bad_parameter_is_a_400_naming_it(handler):
    result, body = invoke(handler, "function_url_bad_temperature.json")
    assert result["statusCode"] == 400
    assert body["error"]["param"] == "temperature" and body["error"]["type"] == "invalid_request_error"


def test_unknown_route_is_a_404_in_openai_shape(handler):
    result, body = invoke(handler, "function_url_unknown_route.json")
    assert result["statusCode"] == 404
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_a_stream_arrives_whole_through_mangum(handler):
    """Mangum buffers: an SSE answer comes back as one body, ending with [DONE]
    (RESPONSE_STREAM is the other function)."""
    event = json.loads((EVENTS / "function_url_generate.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/completions"
    event["body"] = json.dumps({"model": "smollm2-135m-instruct", "prompt": "Hi", "max_tokens": 4, "stream": True})
    result = handler(event, LambdaContext())
    assert result["statusCode"] == 200 and result["headers"]["content-type"].startswith("text/event-stream")
    assert result["body"].rstrip().endswith("data: [DONE]")


def test_settings_come_from_pocketlm_environment_variables(monkeypatch):
    monkeypatch.setenv("POCKETLM_SLOTS", "1")
    monkeypatch.setenv("POCKETLM_N_CTX", "512")
    monkeypatch.setenv("POCKETLM_API_KEY", "k1 k2")
    monkeypatch.setenv("POCKETLM_LOG_FORMAT", "json")
    settings = settings_from_env()
    assert (settings.engine.slots, settings.engine.n_ctx, settings.api_keys, settings.log_format) == (
        1,
        512,
        ("k1", "k2"),
        "json",
    )


def test_the_served_models_come_from_the_environment_as_for_serve(monkeypatch):
    monkeypatch.setenv("POCKETLM_MODEL", "smollm2-135m-instruct gemma3-270m")
    monkeypatch.setenv("POCKETLM_MAX_LOADED_MODELS", "1")
    monkeypatch.setenv("POCKETLM_KEEP_ALIVE", "5m")
    monkeypatch.setenv("POCKETLM_MEMORY_BUDGET", "2GB")
    settings = settings_from_env()
    assert settings.models == ("smollm2-135m-instruct", "gemma3-270m") and settings.max_loaded_models == 1
    assert (settings.keep_alive_seconds, settings.memory_budget_bytes) == (300.0, 2_000_000_000)
    monkeypatch.setenv("POCKETLM_KEEP_ALIVE", "a while")
    with pytest.raises(InvalidParameter, match="POCKETLM_KEEP_ALIVE") as e:
        settings_from_env()
    assert e.value.param == "keep_alive"


def test_a_bad_environment_variable_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("POCKETLM_SLOTS", "0")
    with pytest.raises(InvalidParameter, match="POCKETLM_SLOTS") as e:
        settings_from_env()
    assert e.value.param == "slots"


def test_sam_template_passes_cfn_lint():
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is in the test extra"
    run = subprocess.run([cfn_lint, "--", str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_sam_template_builds_both_lambda_targets_from_the_dockerfile():
    text = (ROOT / "template.yaml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for target in ("lambda", "lambda-stream"):
        assert f"DockerBuildTarget: {target}\n" in text
        assert f" AS {target}\n" in dockerfile
    assert "InvokeMode: BUFFERED" in text and "InvokeMode: RESPONSE_STREAM" in text


@pytest.mark.parametrize(
    "args",
    [
        ["--min-replicas", "1"],
        ["--min-replicas", "3", "--max-replicas", "2"],
    ],
)
def test_ray_scaling_is_checked_before_ray_starts(args):
    from click.testing import CliRunner

    from pocketlm.cli import main

    result = CliRunner().invoke(main, ["deploy", "ray", *args])
    assert result.exit_code != 0 and "replicas" in result.output


def test_ray_deployment_options_follow_the_settings():
    from pocketlm.deploy.ray_serve import Scaling, replica_settings

    settings = ServeSettings(engine=EngineConfig(slots=4, max_queue=8))
    fixed = Scaling(replicas=3, cpus_per_replica=2).deployment_options(settings)
    assert fixed["num_replicas"] == 3 and fixed["ray_actor_options"] == {"num_cpus": 2}
    assert fixed["max_ongoing_requests"] == 12 and "autoscaling_config" not in fixed
    auto = Scaling(min_replicas=1, max_replicas=4, target_ongoing_requests=2).deployment_options(settings)
    assert auto["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2}
    assert "num_replicas" not in auto
    assert replica_settings(settings, Scaling(cpus_per_replica=2)).model_options.threads == 2


def _modules_of_extras(*extras: str) -> set[str]:
    """The top-level modules of the packages these extras of pocketlm add (pyproject.toml's lists)."""
    from importlib.metadata import packages_distributions, requires

    modules: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules.setdefault(canonicalize_name(dist), set()).add(module)
    found = set()
    for requirement in map(Requirement, requires("pocketlm")):
        name = canonicalize_name(requirement.name)
        if name != "pocketlm" and requirement.marker and any(requirement.marker.evaluate({"extra": e}) for e in extras):
            found |= modules.get(name, set())
    return found


def test_a_server_without_the_extras_serves_and_names_what_to_install(tmp_path):
    """The Docker image installs pocketlm with the lambda extra alone. Every feature's routes load without their
    libraries (the tasks' request schemas once imported faster-whisper, and the server did not start), text is
    generated, and a task's request says which extra it needs instead of failing inside."""
    missing = _modules_of_extras("torch", "gemma", "tasks", "deploy") - {"mangum", "awslambdaric"}
    assert {"torch", "faster_whisper", "python_multipart", "piper"} <= missing
    # as if not installed: importing them fails, importlib.util.find_spec finds nothing
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({sorted(missing)!r}))\n")
    server = Server(env={"PYTHONPATH": str(tmp_path)})
    try:
        assert httpx.get(f"{server.url}/openapi.json", timeout=30).status_code == 200
        seeds = httpx.post(f"{server.url}/generate", json={"prompt": "The capital of France is"}, timeout=60)
        assert seeds.status_code == 200 and seeds.json()["response"].startswith("The capital of France is")
        speech = httpx.post(f"{server.url}/v1/audio/speech", json={"input": "hello", "voice": "joe"}, timeout=30)
        assert speech.status_code == 400 and "pocketlm[tasks]" in speech.json()["error"]["message"]
        form = httpx.post(f"{server.url}/translate", data={"q": "hello", "source": "en", "target": "pt"}, timeout=30)
        assert form.status_code == 400 and "python-multipart" in form.json()["error"]["message"]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
