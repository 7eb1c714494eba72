"""What ``pocketlm serve`` runs: load the model once, serve everything over HTTP, drain on SIGTERM.

This module sits above the packages that serve something (``api`` for text
generation; the others add their routes here, in ``build_app``), so none of
them imports another: the server is where they meet. The command itself is in
``pocketlm.cli``; its settings are ``api.settings.Settings``, the same wherever
the app runs (a container, AWS Lambda, Ray Serve).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
import sys
import time

import uvicorn
from fastapi import Depends, FastAPI

from pocketlm.api import openapi
from pocketlm.api.app import create_app
from pocketlm.api.auth import api_key_or_field, require_api_key
from pocketlm.api.connections import guarded_protocol
from pocketlm.api.settings import Settings
from pocketlm.inspection import routes as inspection_routes
from pocketlm.tasks import routes as task_routes
from pocketlm.web import install as install_web

log = logging.getLogger("pocketlm.serve")


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
