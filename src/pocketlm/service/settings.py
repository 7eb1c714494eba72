"""The settings every feature of the HTTP service shares, in one frozen object.

What loads the model (``ModelOptions``) and what the engine runs with
(``EngineConfig``, its ``Limits``) are declared by their own packages and shared
with the other commands; the fields below are the HTTP server's own. Each is a
flag (``--max-body-bytes``) and an environment variable named after it
(``POCKETLM_MAX_BODY_BYTES``): see ``pocketlm.settings``. A feature's own settings
(the tasks' ``--caption-model``) are declared by the feature and joined to these by
the server (``pocketlm.server.ServeSettings``). The commands that deploy the same
app elsewhere (a container, Lambda, Ray Serve) read exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pocketlm.engine import EngineConfig
from pocketlm.errors import InvalidParameter
from pocketlm.models.options import ModelOptions
from pocketlm.service.quantities import keep_alive_seconds, size_bytes
from pocketlm.settings import Declared, setting


def check_models_dir(path: Path) -> None:
    if not Path(path).expanduser().is_dir():
        raise InvalidParameter("models_dir", f"{path} is not a directory; give the directory that holds the models")


@dataclass(frozen=True)
class Settings(Declared):
    # The models served (pocketlm.service.served): which, how many loaded at once, for how long.
    models: tuple[str, ...] = setting(
        (),
        short="-m",
        help="A model to serve: alias, .gguf file, Hugging Face or LoRA adapter directory, hub id. Repeat it to "
        "serve several; the first is the default (a request that names no model gets it) and loads at start-up, "
        "the others on their first request. Default: the embedded SmolLM2, unless --models-dir gives models.",
    )
    models_dir: Path | None = setting(
        None,
        directory=True,
        check=check_models_dir,
        help="Serve every model in this directory too (after any --model): its .gguf files and its Hugging Face "
        "and LoRA adapter directories, each named by its file stem or directory name.",
    )
    # How to load each model (its backend, threads, ...); its `model` gives way to `models` above.
    model_options: ModelOptions = field(default_factory=ModelOptions)
    engine: EngineConfig = field(default_factory=EngineConfig)  # each loaded model's engine: slots, context, queue
    max_loaded_models: int | None = setting(
        None,
        low=1,
        help="Most models loaded at once; a request for one more unloads the least recently used (idle ones "
        "first). Default: no limit.",
    )
    memory_budget: str | None = setting(
        None,
        check=lambda text: size_bytes(text, "memory_budget"),
        help="Most RAM the loaded models may take together, by their estimates (RAM~ in `pocketlm models`): "
        "4GB, 512MB, 1.5GiB. A request for a model that does not fit unloads the least recently used. "
        "Default: no limit.",
    )
    keep_alive: str = setting(
        "-1",
        check=keep_alive_seconds,
        help="How long a model stays loaded after its last request, as Ollama's keep_alive: 5m, 1h30m, 90 "
        "(seconds), 0 (unload as soon as its requests are done), negative: forever (the default). A request's "
        "keep_alive sets it for its model. Not the HTTP connection's idle time any more: see --http-keep-alive.",
    )
    host: str = setting("127.0.0.1", help="Address to bind; 0.0.0.0 inside containers.")
    port: int = setting(5000, low=0, high=65535, help="Port to listen on (5000: the seeds' Flask port).")
    api_keys: tuple[str, ...] = setting(
        (), help="Accept this key as 'Authorization: Bearer <key>'. Default: no key, no authentication."
    )
    cors_origins: tuple[str, ...] = setting(
        (), help="Allow browser requests from this origin ('*' for any). Default: CORS off."
    )
    # 1 MiB: far more than any prompt that fits the context
    max_body_bytes: int = setting(1 << 20, low=1, help="Largest request body accepted (413 beyond).")
    request_timeout: float = setting(600.0, low=0.0, low_open=True, help="Seconds a request may run.")
    # Connections (see api/connections.py): what one client may hold, and for how long, before it is let go.
    max_connections: int = setting(512, low=1, help="Open connections at once; beyond, new requests get 503.")
    http_keep_alive: float = setting(  # uvicorn's timeout_keep_alive
        5.0,
        low=0.0,
        low_open=True,
        help="Seconds an idle HTTP connection stays open after a response. Named --keep-alive until pocketlm 0.1: that "
        "flag (and POCKETLM_KEEP_ALIVE) now says how long models stay loaded.",
    )
    header_timeout: float = setting(  # from opening a connection (or the last response) to a request's full headers
        10.0,
        low=0.0,
        low_open=True,
        help="Seconds a connection may take to send a request's headers; then it is closed (408).",
    )
    body_timeout: float = setting(
        30.0, low=0.0, low_open=True, help="Seconds a request's body may take to arrive after its headers (408 beyond)."
    )
    send_timeout: float = setting(
        30.0,
        low=0.0,
        low_open=True,
        help="Seconds a response may wait on a client that reads nothing; "
        "then the connection is dropped and its request cancelled.",
    )
    send_buffer_bytes: int = setting(  # Linux would grow it to 4 MiB for a client that reads nothing
        256 * 1024,
        low=4096,
        help="Kernel send buffer of each connection: what a client that stops reading can pin.",
    )
    max_header_bytes: int = setting(16384, low=1024, help="Largest request line plus headers (431 beyond).")
    public_docs: bool = setting(
        False,
        help="With --api-key: serve /docs, /redoc and /openapi.json without a key (the rest still needs one).",
    )
    log_format: Literal["text", "json"] = setting(
        "text", help="json: one JSON object per log line (access log included)."
    )
    grace_period: float = setting(30.0, low=0.0, help="Seconds SIGTERM waits for in-flight requests.")

    @property
    def keep_alive_seconds(self) -> float:
        return keep_alive_seconds(self.keep_alive)

    @property
    def memory_budget_bytes(self) -> int | None:
        return None if self.memory_budget is None else size_bytes(self.memory_budget, "memory_budget")
