"""What ``pocketlm serve`` runs: the served models (the default one loaded), the app built from its features,
served until SIGTERM, then drained.

This module sits above the features that serve something (``api`` for text generation, ``inspection``,
``web``, ``tasks``), so none of them imports another: the server only assembles them. Each feature joins
through one contract, ``install(app, state)`` (``pocketlm.service.Feature``), with the typed state they
share. The command itself is in ``pocketlm.cli``; its settings are ``ServeSettings``, the same wherever the
app runs (a container, AWS Lambda, Ray Serve).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn

from pocketlm import __version__
from pocketlm.service import AppState, Feature, ServedModels, Settings, app_state, attach
from pocketlm.tasks.settings import TaskSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from pocketlm.engine import Engine

log = logging.getLogger("pocketlm.serve")


def features() -> tuple[Feature, ...]:
    """Every feature, in the order they install: the API first (errors, auth, middleware every route shares), the
    web page at GET /. Imported when an app is built, not with this module: the command line imports this module
    for ``ServeSettings`` on every start, and the features bring FastAPI and every route's schemas."""
    from pocketlm import api, web
    from pocketlm.inspection import routes as inspection
    from pocketlm.tasks import routes as tasks

    return (api, inspection, web, tasks)


@dataclass(frozen=True)
class ServeSettings(Settings):
    """The service's settings and each feature's own: every flag of ``pocketlm serve``."""

    tasks: TaskSettings = field(default_factory=TaskSettings)


def build_app(models: ServedModels | Engine, settings: Settings = ServeSettings()) -> FastAPI:
    """The HTTP service around the served models (or one engine, already loaded): every feature installed on one
    app, sharing one state."""
    from fastapi import FastAPI

    if not isinstance(models, ServedModels):
        models = ServedModels.serving(models)
    app = FastAPI(title="pocketlm", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    state = AppState(models=models, settings=settings)
    attach(app, state)
    for feature in features():
        feature.install(app, state)
    return app


def run(settings: ServeSettings) -> int:
    """Load the default model, serve until SIGTERM/SIGINT, drain, and return the exit code."""
    started = time.perf_counter()
    models = ServedModels.from_settings(settings).start()
    app = build_app(models, settings)
    engine = models.engine(models.default)
    kv = f" (KV cache {engine.info.kv_cache})" if engine.info.kv_cache else ""
    others = f"; {len(models.models) - 1} more models load on demand" if len(models.models) > 1 else ""
    log.info(
        "loaded %s in %.1f s%s%s; serving on http://%s:%d",
        engine.info.name,
        time.perf_counter() - started,
        kv,
        others,
        settings.host,
        settings.port,
    )

    from pocketlm.api.connections import guarded_protocol

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # uvicorn waits for open connections a little longer than the engines' grace, so that
        # requests the engines cancel at the deadline still end their responses cleanly.
        timeout_graceful_shutdown=settings.grace_period + 2.0,
        # What one client may hold: see pocketlm.api.connections.
        http=guarded_protocol(
            settings.header_timeout,
            settings.send_timeout,
            settings.send_buffer_bytes,
            settings.max_header_bytes,
            settings.max_connections,
        ),
        timeout_keep_alive=settings.http_keep_alive,
        # the protocol refuses larger heads itself (431); h11's own limit must not be lower than it
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    server = DrainingServer(config, app, models, settings.grace_period)
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
    """uvicorn's Server, plus: on the first SIGTERM/SIGINT, mark the app draining and stop the engines gracefully.

    uvicorn itself stops accepting connections and waits for open ones; every loaded model's
    engine meanwhile finishes running requests for up to ``grace_period`` seconds, then cancels the rest.
    """

    def __init__(self, config: uvicorn.Config, app, models: ServedModels, grace_period: float):
        super().__init__(config)
        self.app, self.models, self.grace_period = app, models, grace_period
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame):
        if not self.should_exit and self.loop is not None:
            app_state(self.app).draining = True
            log.info("signal %d: accepting no new requests; running ones get up to %g s", sig, self.grace_period)
            stop = asyncio.to_thread(self.models.stop, self.grace_period)  # it blocks: never on the event loop
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(stop))
        super().handle_exit(sig, frame)


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
