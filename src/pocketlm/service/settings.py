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
from typing import Literal

from pocketlm.engine import EngineConfig
from pocketlm.models.options import ModelOptions
from pocketlm.settings import Declared, setting


@dataclass(frozen=True)
class Settings(Declared):
    model_options: ModelOptions = field(default_factory=ModelOptions)
    engine: EngineConfig = field(default_factory=EngineConfig)
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
    keep_alive: float = setting(  # uvicorn's timeout_keep_alive
        5.0, low=0.0, low_open=True, help="Seconds an idle connection stays open after a response."
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
