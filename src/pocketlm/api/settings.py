"""Every knob of `pocketlm serve`, in one frozen object.

What loads the model (``ModelOptions``) and what the engine runs with
(``EngineConfig``, its ``Limits``) are declared by their own packages and shared
with the other commands; the fields below are the HTTP server's own. Each is a
flag (``--max-body-bytes``) and an environment variable named after it
(``POCKETLM_MAX_BODY_BYTES``), declared in ``commands.py``. Defaults live here,
beside the fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pocketlm.engine import EngineConfig
from pocketlm.models.options import ModelOptions


@dataclass(frozen=True)
class Settings:
    model_options: ModelOptions = field(default_factory=ModelOptions)
    engine: EngineConfig = field(default_factory=EngineConfig)
    host: str = "127.0.0.1"  # 0.0.0.0 inside containers
    port: int = 5000  # the seeds' Flask port
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    cors_origins: tuple[str, ...] = ()  # empty: CORS off
    max_body_bytes: int = 1 << 20  # 1 MiB: far more than any prompt that fits the context
    request_timeout: float = 600.0  # seconds from arrival to the last token
    # Connections (see api/connections.py): what one client may hold, and for how long, before it is let go.
    max_connections: int = 512  # open connections at once; more are answered 503 (uvicorn's limit_concurrency)
    keep_alive: float = 5.0  # seconds an idle connection stays open after a response (uvicorn's timeout_keep_alive)
    header_timeout: float = 10.0  # seconds from opening a connection (or the last response) to a request's full headers
    body_timeout: float = 30.0  # seconds from a request's headers to the end of its body (408 beyond)
    send_timeout: float = (
        30.0  # seconds a response may wait on a client that reads nothing, before the connection drops
    )
    send_buffer_bytes: int = (
        256 * 1024
    )  # kernel send buffer per connection (Linux would grow it to 4 MiB for a non-reader)
    max_header_bytes: int = 16384  # request line and headers together (h11's max incomplete event size; 400 beyond)
    public_docs: bool = False  # with API keys: serve /docs, /redoc and /openapi.json without a key
    # Served beside the API by pocketlm.tasks (the server hands it over in build_app): the image-to-text
    # model of the captioning routes, a Hugging Face directory or cached hub id; None: captioning off.
    caption_model: str | None = None
    log_format: Literal["text", "json"] = "text"
    grace_period: float = 30.0  # seconds SIGTERM waits for in-flight requests
