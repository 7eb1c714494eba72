"""Schemathesis over the HTTP app: the OpenAPI document tells the truth, for the server as configured.

Every operation, every check Schemathesis has (no 5xx, status codes and
response bodies as documented, schema-valid requests accepted and
schema-violating ones refused, the API key enforced where declared), with
positive and negative data, in-process over ASGI on the scripted backend
(tests/fake_backend.py): the app, its validation and the engine are the real
ones, only the model is scripted. Two configurations: no keys (no security in
the document) and keys.

Bounded for CI by POCKETLM_FUZZ_EXAMPLES (examples per operation and mode,
default 15); `make fuzz` runs it with thousands of cases (RELIABILITY.md).

The context is larger than the body limit here, so a prompt is never too long
for it: how many tokens a text makes is not something JSON Schema can state
(see RELIABILITY.md); token-id prompts and every other limit are in the document.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fake_backend import fake_engine
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from pocketlm.api import Settings, create_app

EXAMPLES = int(os.environ.get("POCKETLM_FUZZ_EXAMPLES", "15"))
KEY = "sk-fuzz-0123456789"
N_CTX = 1 << 21  # more tokens than the 1 MiB body limit lets a text make (one token per byte, plus BOS)


# Loaded at import: Schemathesis makes one test per operation from the document when pytest collects this module.
# (schemathesis.pytest.from_fixture, the lazy way, does not run under pytest 9.)
_engine_context = fake_engine(" Paris is lovely.", slots=4, n_ctx=N_CTX, max_n=4)
ENGINE = _engine_context.__enter__()


CASES = {"open": 0, "keyed": 0}  # requests made, for `make fuzz`'s report


@pytest.fixture(scope="module", autouse=True)
def _stop_engine():
    yield
    _engine_context.__exit__(None, None, None)
    report = os.environ.get("POCKETLM_FUZZ_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(f"cases: {CASES['open']} without keys, {CASES['keyed']} with keys ({EXAMPLES} examples per operation and mode)\n")


def load(keys: tuple[str, ...]):
    config = SchemathesisConfig()
    project = config.projects.default
    project.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES)
    project.phases.update(phases=["examples", "coverage", "fuzzing"])
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    if keys:
        project.update(headers=headers)
    app = create_app(ENGINE, Settings(api_keys=keys))
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config, headers=headers)


open_schema = load(())
keyed_schema = load((KEY,))
# The suite's run is the same every time; `make fuzz` draws new data on each run (pytest --hypothesis-seed=N).
_settings = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize="POCKETLM_FUZZ_REPORT" not in os.environ)


@open_schema.parametrize()
@_settings
def test_open_server(case):
    CASES["open"] += 1
    case.call_and_validate()


@keyed_schema.parametrize()
@_settings
def test_keyed_server(case):
    CASES["keyed"] += 1
    case.call_and_validate()


def test_the_document_follows_the_configuration():
    plain, keyed = open_schema.raw_schema, keyed_schema.raw_schema
    assert "securitySchemes" not in plain.get("components", {})
    assert all("security" not in op for item in plain["paths"].values() for op in item.values())
    completions = keyed["paths"]["/v1/completions"]["post"]
    assert completions["security"] and set(completions["responses"]) >= {"200", "400", "401", "408", "413", "503", "504"}
    assert "422" not in completions["responses"] and "text/event-stream" in completions["responses"]["200"]["content"]
    fields = plain["components"]["schemas"]["CompletionRequest"]["properties"]
    assert fields["temperature"]["maximum"] == 100.0 and fields["top_p"]["exclusiveMinimum"] == 0.0
    assert fields["n"]["maximum"] == 4  # min(--max-n, --slots)
