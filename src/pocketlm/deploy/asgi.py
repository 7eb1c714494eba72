"""Small ASGI helpers shared by the adapters: name the replica that answered, probe a route in-process."""

from __future__ import annotations

import os
import socket


def replica_name() -> str:
    """host:pid, unique per replica on a cluster."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ReplicaHeader:
    """Adds ``X-Pocketlm-Replica: host:pid`` to every response, so a client can see which replica answered."""

    header = b"x-pocketlm-replica"

    def __init__(self, app, name: str | None = None):
        self.app = app
        self.value = (name or replica_name()).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (self.header, self.value)]}
            await send(message)

        await self.app(scope, receive, send_with_header)


async def get_status(app, path: str) -> int:
    """Status code of ``GET path`` on an ASGI app, called in-process (no socket, no HTTP client)."""
    status = 0
    request_sent = False

    async def receive():
        nonlocal request_sent
        if request_sent:  # the app only reads past the body to watch for a disconnect
            return {"type": "http.disconnect"}
        request_sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    return status
