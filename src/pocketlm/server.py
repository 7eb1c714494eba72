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
import inspect
import json
import logging
import signal
import sys
import time

import click
import uvicorn
from fastapi import Depends, FastAPI

from pocketlm.api.app import create_app
from pocketlm.api.auth import require_api_key
from pocketlm.api.settings import Settings
from pocketlm.engine.options import engine_options
from pocketlm.inspection import routes as inspection_routes
from pocketlm.models.options import env_var, model_options

log = logging.getLogger("pocketlm.serve")


def _option(flag: str, name: str | None = None, **kwargs):
    """A server flag stored as Settings.<name>, also read from POCKETLM_<FLAG> (``--api-key`` -> POCKETLM_API_KEY)."""
    name = name or flag.lstrip("-").replace("-", "_")
    return click.option(flag, name, envvar=env_var(flag), show_envvar=True, **kwargs)


@click.command()
@model_options()
@engine_options("slots", "n_ctx", "max_queue", "max_prompt_tokens", "max_new_tokens", "max_n", "max_stop")
@_option("--host", default=Settings.host, show_default=True, help="Address to bind; 0.0.0.0 inside containers.")
@_option("--port", type=int, default=Settings.port, show_default=True)
@_option("--api-key", "api_keys", multiple=True, help="Accept this key as 'Authorization: Bearer <key>' (repeatable). None: no auth.")
@_option("--cors-origin", "cors_origins", multiple=True, help="Allow browser requests from this origin (repeatable; '*' for any). Default: CORS off.")
@_option("--max-body-bytes", type=click.IntRange(min=1), default=Settings.max_body_bytes, show_default=True, help="Largest request body accepted (413 beyond).")
@_option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=Settings.request_timeout, show_default=True, help="Seconds a request may run.")
@_option("--log-format", type=click.Choice(["text", "json"]), default=Settings.log_format, show_default=True, help="json: one JSON object per log line (access log included).")
@_option("--grace-period", type=click.FloatRange(min=0), default=Settings.grace_period, show_default=True, help="Seconds SIGTERM waits for in-flight requests.")
def serve(model_options, engine_config, api_keys, cors_origins, **options):
    """Serve a model over HTTP: the seeds' POST /generate, OpenAI's /v1 routes, Hugging Face TGI's routes."""
    settings = Settings(model_options=model_options, engine=engine_config, api_keys=tuple(api_keys),
                        cors_origins=tuple(cors_origins), **options)
    configure_logging(settings.log_format)
    sys.exit(run(settings))


def build_app(engine, settings: Settings) -> FastAPI:
    """The whole HTTP service around one loaded engine: the API, and every package's routes."""
    app = create_app(engine, settings)
    app.include_router(inspection_routes.router, dependencies=[Depends(require_api_key)])
    return app


def run(settings: Settings) -> int:
    """Load the engine, serve until SIGTERM/SIGINT, drain, and return the exit code."""
    from pocketlm.engine import load_engine

    started = time.perf_counter()
    engine = load_engine(settings.model_options, settings.engine)
    app = build_app(engine, settings)
    log.info("loaded %s in %.1f s; serving on http://%s:%d", engine.info.name, time.perf_counter() - started, settings.host, settings.port)

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        # uvicorn waits for open connections a little longer than the engine's grace, so that
        # requests the engine cancels at the deadline still end their responses cleanly.
        timeout_graceful_shutdown=settings.grace_period + 2.0,
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
