"""The API feature: text generation over HTTP (the seeds', OpenAI's and TGI's routes), and what every
route of the service gets from it: errors in OpenAI's shape, the body limit, CORS, the access log and
metrics, the offline /docs and the OpenAPI document.

``install(app, state)`` is this package's side of the server's feature contract
(``pocketlm.service.Feature``). It loads nothing itself: every route asks the served models in
``state`` (``pocketlm.service.ServedModels``) for the engine of the model its request names.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware

from pocketlm.api import (
    docs,
    errors,
    openapi,
    routes_generate,
    routes_ollama,
    routes_openai,
    routes_responses,
    routes_service,
)
from pocketlm.api.generation import ClientDisconnected
from pocketlm.api.metrics import Metrics
from pocketlm.api.middleware import AccessLog, BodyLimit
from pocketlm.api.state import ApiState
from pocketlm.service import AppState
from pocketlm.service.auth import require_api_key

DESCRIPTION = """\
Text generation with small language models on a plain CPU.

* **The seeds' contract**: `POST /generate` with `{"prompt": "..."}` answers `{"response": "<prompt + continuation>"}`.
* **OpenAI**: `/v1/completions`, `/v1/chat/completions` (streaming with `"stream": true`), `/v1/responses`, \
`/v1/models`; structured output (`response_format`, `regex`, `grammar`) and tool calling.
* **Hugging Face TGI**: `POST /`, `/generate` with `{"inputs": ...}`, \
`/generate_stream` (for `huggingface_hub.InferenceClient`).
* **Ollama**: `/api/chat`, `/api/generate` (NDJSON streams), `/api/tags`, `/api/ps`, `/api/show`, `/api/version`.

Several models may be served: a request's `model` picks one (`GET /v1/models` lists them), loaded on demand.
Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`; on Ollama's routes, Ollama's:
`{"error": "..."}`.
"""


def install(app: FastAPI, state: AppState) -> None:
    settings = state.settings
    metrics = Metrics(state.models)
    app.state.api = ApiState(metrics)
    app.description = DESCRIPTION
    # add_middleware wraps what is there: the last added is the outermost
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(AccessLog, metrics=metrics, log_format=settings.log_format)  # outermost: sees every status

    keyed = [Depends(require_api_key)]
    errors.install(app)
    docs.install(app, keyed=[] if settings.public_docs else keyed)
    openapi.install(app)

    @app.exception_handler(ClientDisconnected)
    async def client_left(request, exc):  # nobody reads this; the access log records 499
        return Response(status_code=499)

    app.include_router(routes_service.probes)
    app.include_router(routes_service.router, dependencies=keyed)
    app.include_router(routes_openai.router, dependencies=keyed)
    app.include_router(routes_responses.router, dependencies=keyed)
    app.include_router(routes_generate.router, dependencies=keyed)
    app.include_router(routes_ollama.router, dependencies=keyed)
