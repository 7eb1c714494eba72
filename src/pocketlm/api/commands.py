"""``pocketlm serve``: load the model once, serve it over HTTP, drain on SIGTERM.

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

from pocketlm.api.settings import Settings, env_name
from pocketlm.models.convert import QTYPES
from pocketlm.models.hf import ALLOW_PICKLE_HELP, TRUST_REMOTE_CODE_HELP

log = logging.getLogger("pocketlm.serve")


def _option(flag: str, field: str, **kwargs):
    """A flag stored as Settings.<field>, also read from POCKETLM_<FLAG> (``--api-key`` -> POCKETLM_API_KEY)."""
    return click.option(flag, field, envvar=env_name(flag.lstrip("-").replace("-", "_")), show_envvar=True, **kwargs)


@click.command()
@_option("--model", "model", default=None, help="Model alias, .gguf file or HF directory (default: the embedded SmolLM2-135M-Instruct).")
@_option("--backend", "backend", type=click.Choice(["auto", "llama.cpp", "torch"]), default=None, help="Inference backend (default: the fastest that runs the model).")
@_option("--host", "host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 inside containers.")
@_option("--port", "port", type=int, default=5000, show_default=True)
@_option("--api-key", "api_keys", multiple=True, help="Accept this key as 'Authorization: Bearer <key>' (repeatable). None: no auth.")
@_option("--cors-origin", "cors_origins", multiple=True, help="Allow browser requests from this origin (repeatable; '*' for any). Default: CORS off.")
@_option("--max-body-bytes", "max_body_bytes", type=click.IntRange(min=1), default=Settings.max_body_bytes, show_default=True)
@_option("--max-prompt-tokens", "max_prompt_tokens", type=click.IntRange(min=1), default=None, help="Longest prompt accepted (default: what fits the context).")
@_option("--max-new-tokens", "max_new_tokens", type=click.IntRange(min=1), default=None, help="Most tokens one sample may ask for (default: engine's limit).")
@_option("--max-n", "max_n", type=click.IntRange(min=1), default=None, help="Most samples per request (n, num_return_sequences).")
@_option("--max-stop", "max_stop", type=click.IntRange(min=0), default=None, help="Most stop strings per request.")
@_option("--max-queue", "max_queue", type=click.IntRange(min=0), default=None, help="Requests that may wait for a slot; beyond it: 503 + Retry-After.")
@_option("--slots", "slots", type=click.IntRange(min=1), default=None, help="Sequences decoded together (continuous batching).")
@_option("--n-ctx", "n_ctx", type=click.IntRange(min=16), default=None, help="Context of each slot: prompt + new tokens (default 1024). KV cache RAM grows with slots x n-ctx.")
@_option("--quantization", "quantization", type=click.Choice(QTYPES), default=None, help="GGUF type llama.cpp runs, requantized once and cached (default: q8_0 for the embedded SmolLM2, else the file's own).")
@_option("--allow-pickle", "allow_pickle", is_flag=True, help=ALLOW_PICKLE_HELP)
@_option("--trust-remote-code", "trust_remote_code", is_flag=True, help=TRUST_REMOTE_CODE_HELP)
@_option("--threads", "threads", type=click.IntRange(min=1), default=None, help="CPU threads for the model (default: every core).")
@_option("--request-timeout", "request_timeout", type=click.FloatRange(min=0, min_open=True), default=Settings.request_timeout, show_default=True, help="Seconds a request may run.")
@_option("--log-format", "log_format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: one JSON object per log line (access log included).")
@_option("--grace-period", "grace_period", type=click.FloatRange(min=0), default=Settings.grace_period, show_default=True, help="Seconds SIGTERM waits for in-flight requests.")
def serve(**options):
    """Serve a model over HTTP: the seeds' POST /generate, OpenAI's /v1 routes, Hugging Face TGI's routes."""
    options["api_keys"] = tuple(options["api_keys"])
    options["cors_origins"] = tuple(options["cors_origins"])
    settings = Settings(**options)
    configure_logging(settings.log_format)
    sys.exit(run(settings))


def run(settings: Settings) -> int:
    """Load the engine, serve until SIGTERM/SIGINT, drain, and return the exit code."""
    from pocketlm.api.app import create_app
    from pocketlm.engine import load_engine

    started = time.perf_counter()
    engine = load_engine(settings.model, settings.backend, **settings.engine_overrides())
    app = create_app(engine, settings)
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
    meanwhile finishes running requests for up to ``grace`` seconds, then cancels the rest.
    """

    def __init__(self, config: uvicorn.Config, app, engine, grace: float):
        super().__init__(config)
        self.app, self.engine, self.grace = app, engine, grace
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None):
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame):
        if not self.should_exit and self.loop is not None:
            self.app.state.draining = True
            log.info("signal %d: accepting no new requests; running ones get up to %g s", sig, self.grace)
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(stop_engine(self.engine, self.grace)))
        super().handle_exit(sig, frame)


async def stop_engine(engine, grace: float) -> None:
    """engine.stop may be a coroutine or a blocking call; never block the event loop with it."""
    if inspect.iscoroutinefunction(engine.stop):
        await engine.stop(grace)
    else:
        await asyncio.to_thread(engine.stop, grace)


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
