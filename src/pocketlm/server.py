"""``pocketlm serve``: load the model once, serve everything over HTTP, drain on SIGTERM.

This module sits above the packages that serve something (``api`` for text
generation; the others add their routes here, in ``build_app``), so none of
them imports another: the server is where they meet.

Every flag can also come from the environment: ``--max-queue`` is
``POCKETLM_MAX_QUEUE``; flags that may repeat (``--api-key``, ``--cors-origin``)
take space-separated values there (``POCKETLM_API_KEY="key1 key2"``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import signal
import sys
import time

import click
import uvicorn
from fastapi import Depends, FastAPI

from pocketlm.api import openapi
from pocketlm.api.app import create_app
from pocketlm.api.auth import api_key_or_field, require_api_key
from pocketlm.api.connections import guarded_protocol
from pocketlm.api.settings import Settings
from pocketlm.engine.options import engine_options
from pocketlm.inspection import routes as inspection_routes
from pocketlm.models.options import env_var, model_options
from pocketlm.tasks import routes as task_routes
from pocketlm.web import install as install_web

log = logging.getLogger("pocketlm.serve")


def _option(flag: str, name: str | None = None, **kwargs):
    """A server flag stored as Settings.<name>, also read from POCKETLM_<FLAG> (``--api-key`` -> POCKETLM_API_KEY)."""
    name = name or flag.lstrip("-").replace("-", "_")
    return click.option(flag, name, envvar=env_var(flag), show_envvar=True, **kwargs)


def serve_options(f):
    """Every flag of ``pocketlm serve``, for any command that serves the app; it receives one ``settings: Settings``.

    The commands that deploy the same app elsewhere (a container, Lambda, Ray Serve) take
    exactly these flags and environment variables, so a setting has one name everywhere.
    """

    @functools.wraps(f)
    def command(*args, model_options, engine_config, api_keys, cors_origins, **kwargs):
        own = {name: kwargs.pop(name) for name in _SERVER_FIELDS if name in kwargs}
        settings = Settings(
            model_options=model_options,
            engine=engine_config,
            api_keys=tuple(api_keys),
            cors_origins=tuple(cors_origins),
            **own,
        )
        return f(*args, settings=settings, **kwargs)

    decorators = (
        model_options(),
        engine_options(
            "slots",
            "n_ctx",
            "max_queue",
            "max_prompt_tokens",
            "max_new_tokens",
            "max_n",
            "max_stop",
            "draft_tokens",
        ),
        _option("--host", default=Settings.host, show_default=True, help="Address to bind; 0.0.0.0 inside containers."),
        _option("--port", type=int, default=Settings.port, show_default=True),
        _option(
            "--api-key",
            "api_keys",
            multiple=True,
            help="Accept this key as 'Authorization: Bearer <key>' (repeatable). None: no auth.",
        ),
        _option(
            "--cors-origin",
            "cors_origins",
            multiple=True,
            help="Allow browser requests from this origin (repeatable; '*' for any). Default: CORS off.",
        ),
        _option(
            "--max-body-bytes",
            type=click.IntRange(min=1),
            default=Settings.max_body_bytes,
            show_default=True,
            help="Largest request body accepted (413 beyond).",
        ),
        _option(
            "--request-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.request_timeout,
            show_default=True,
            help="Seconds a request may run.",
        ),
        _option(
            "--max-connections",
            type=click.IntRange(min=1),
            default=Settings.max_connections,
            show_default=True,
            help="Open connections at once; beyond, new requests get 503.",
        ),
        _option(
            "--keep-alive",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.keep_alive,
            show_default=True,
            help="Seconds an idle connection stays open after a response.",
        ),
        _option(
            "--header-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.header_timeout,
            show_default=True,
            help="Seconds a connection may take to send a request's headers; then it is closed (408).",
        ),
        _option(
            "--body-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.body_timeout,
            show_default=True,
            help="Seconds a request's body may take to arrive after its headers (408 beyond).",
        ),
        _option(
            "--send-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=Settings.send_timeout,
            show_default=True,
            help=(
                "Seconds a response may wait on a client that reads nothing; "
                "then the connection is dropped and its request cancelled."
            ),
        ),
        _option(
            "--send-buffer-bytes",
            type=click.IntRange(min=4096),
            default=Settings.send_buffer_bytes,
            show_default=True,
            help="Kernel send buffer of each connection: what a client that stops reading can pin.",
        ),
        _option(
            "--max-header-bytes",
            type=click.IntRange(min=1024),
            default=Settings.max_header_bytes,
            show_default=True,
            help="Largest request line plus headers (400 beyond).",
        ),
        _option(
            "--public-docs",
            is_flag=True,
            default=Settings.public_docs,
            help="With --api-key: serve /docs, /redoc and /openapi.json without a key (the rest still needs one).",
        ),
        _option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default=Settings.log_format,
            show_default=True,
            help="json: one JSON object per log line (access log included).",
        ),
        _option(
            "--grace-period",
            type=click.FloatRange(min=0),
            default=Settings.grace_period,
            show_default=True,
            help="Seconds SIGTERM waits for in-flight requests.",
        ),
        _option(
            "--caption-model",
            default=Settings.caption_model,
            callback=_existing_model,
            help="Image-to-text model for POST /v1/images/captions and /v1/pipelines/describe (a Hugging Face "
            "directory or cached hub id, e.g. ViT-GPT2 or BLIP). Default: captioning off.",
        ),
    )
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


_SERVER_FIELDS = (
    "host",
    "port",
    "max_body_bytes",
    "request_timeout",
    "log_format",
    "grace_period",
    "max_connections",
    "keep_alive",
    "header_timeout",
    "body_timeout",
    "send_timeout",
    "send_buffer_bytes",
    "max_header_bytes",
    "public_docs",
    "caption_model",
)


def _existing_model(ctx, param, value: str | None) -> str | None:
    """A model name that does not resolve fails at start-up, in one line, not at the first request."""
    if not value:
        return None  # POCKETLM_CAPTION_MODEL="" means off too
    from pocketlm.errors import PocketLMError
    from pocketlm.models import resolve

    try:
        resolve(value)
    except PocketLMError as e:
        raise click.BadParameter(e.message, ctx=ctx, param=param) from None
    return value


@click.command()
@serve_options
def serve(settings: Settings):
    """Serve a model over HTTP: the seeds' POST /generate, OpenAI's /v1 routes, Hugging Face TGI's routes."""
    configure_logging(settings.log_format)
    sys.exit(run(settings))


def build_app(engine, settings: Settings) -> FastAPI:
    """The whole HTTP service around one loaded engine: the API, and every package's routes."""
    app = create_app(engine, settings)
    app.include_router(inspection_routes.router, dependencies=[Depends(require_api_key)])
    install_web(app)  # the playground at GET / (POST / stays TGI's)
    # translation, speech, captions; LibreTranslate's clients may send their key as an `api_key` field instead
    task_routes.include(
        app,
        dependencies=[Depends(require_api_key)],
        caption_model=settings.caption_model,
        libretranslate_dependencies=[Depends(api_key_or_field(task_routes.LIBRETRANSLATE_KEY_FIELD))],
    )
    openapi.add_hook(app, task_routes.caption_model_schema)  # the configured caption model, in the document
    return app


def run(settings: Settings) -> int:
    """Load the engine, serve until SIGTERM/SIGINT, drain, and return the exit code."""
    from pocketlm.engine import load_engine

    started = time.perf_counter()
    engine = load_engine(settings.model_options, settings.engine)
    app = build_app(engine, settings)
    kv = f" (KV cache {engine.info.kv_cache})" if engine.info.kv_cache else ""
    log.info(
        "loaded %s in %.1f s%s; serving on http://%s:%d",
        engine.info.name,
        time.perf_counter() - started,
        kv,
        settings.host,
        settings.port,
    )

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # uvicorn waits for open connections a little longer than the engine's grace, so that
        # requests the engine cancels at the deadline still end their responses cleanly.
        timeout_graceful_shutdown=settings.grace_period + 2.0,
        # What one client may hold: see pocketlm.api.connections.
        http=guarded_protocol(settings.header_timeout, settings.send_timeout, settings.send_buffer_bytes),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    server = DrainingServer(config, app, engine, settings.grace_period)
    # uvicorn re-raises the signal it caught once it has shut down, which would end the process
    # "killed by SIGTERM" (or with a KeyboardInterrupt traceback). These placeholder handlers make
    # that re-raise a no-op: a drained shutdown is a clean exit.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


class DrainingServer(uvicorn.Server):
    """uvicorn's Server, plus: on the first SIGTERM/SIGINT, mark the app draining and stop the engine gracefully.

    uvicorn itself stops accepting connections and waits for open ones; the engine
    meanwhile finishes running requests for up to ``grace_period`` seconds, then cancels the rest.
    """

    def __init__(self, config: uvicorn.Config, app, engine, grace_period: float):
        super().__init__(config)
        self.app, self.engine, self.grace_period = app, engine, grace_period
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame):
        if not self.should_exit and self.loop is not None:
            self.app.state.draining = True
            log.info("signal %d: accepting no new requests; running ones get up to %g s", sig, self.grace_period)
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(stop_engine(self.engine, self.grace_period)))
        super().handle_exit(sig, frame)


async def stop_engine(engine, grace_period: float) -> None:
    """engine.stop may be a coroutine or a blocking call; never block the event loop with it."""
    if inspect.iscoroutinefunction(engine.stop):
        await engine.stop(grace_period)
    else:
        await asyncio.to_thread(engine.stop, grace_period)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; access-log records are JSON already and pass through."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "pocketlm.access":
            return record.getMessage()
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
