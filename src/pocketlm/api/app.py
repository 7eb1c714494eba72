"""The FastAPI application around one shared, already-loaded engine.

``create_app(engine, settings)`` wires routes, errors, auth, metrics and the
middlewares; it does not load anything, so the model is loaded exactly once
(by ``pocketlm serve``, or by whoever embeds the app) and every request shares it.
"""

from __future__ import annotations

import time

from fastapi import Depends, FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from pocketlm import __version__
from pocketlm.api import docs, errors, openapi, routes_generate, routes_openai, routes_service
from pocketlm.api.auth import require_api_key
from pocketlm.api.generation import ClientDisconnected
from pocketlm.api.metrics import Metrics
from pocketlm.api.middleware import AccessLog, BodyLimit
from pocketlm.api.settings import Settings

DESCRIPTION = """\
Text generation with small language models on a plain CPU.

* **The seeds' contract**: `POST /generate` with `{"prompt": "..."}` answers `{"response": "<prompt + continuation>"}`.
* **OpenAI**: `/v1/completions`, `/v1/chat/completions` (streaming with `"stream": true`), `/v1/models`.
* **Hugging Face TGI**: `POST /`, `/generate` with `{"inputs": ...}`, \
`/generate_stream` (for `huggingface_hub.InferenceClient`).

Errors use OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
"""


def create_app(engine, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics(engine)
    middleware = [
        Middleware(AccessLog, metrics=metrics, log_format=settings.log_format)
    ]  # outermost: sees every status
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    middleware.append(Middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout))
    app = FastAPI(
        title="pocketlm",
        version=__version__,
        description=DESCRIPTION,
        middleware=middleware,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )  # served by pocketlm.api.docs: offline, keyed

    app.state.engine = engine
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.draining = False  # set on SIGTERM: /ready turns 503
    app.state.started = int(time.time())
    app.state.eos_id = _eos_id(engine)

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
    app.include_router(routes_generate.router, dependencies=keyed)
    return app


def _eos_id(engine) -> int:
    """The end-of-sequence token's id, for TGI's last stream event when nothing else was generated."""
    ids = engine.tokenize(engine.info.eos_token, add_special=True) if engine.info.eos_token else []
    return ids[-1] if ids else 0
