"""Two plain ASGI middlewares: request-body checks and the access log with request metrics.

They are pure ASGI (not BaseHTTPMiddleware) so that streamed responses pass
through untouched and a client disconnect still reaches the route.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime

from pocketlm.api.errors import BodyTooLarge, RequestBodyTimeout, error_body, error_headers
from pocketlm.errors import InvalidParameter, PocketLMError

access_log = logging.getLogger("pocketlm.access")

_DRAIN_CAP = 64 << 20  # read at most this much of an oversized body before answering


class BodyLimit:
    """Check a request body before anything parses it: its size, how long it takes to arrive, its text.

    - over ``max_bytes``: 413. The bytes are counted as they arrive, so a missing
      or lying Content-Length (chunked uploads) is caught too;
    - not complete within ``timeout`` seconds of the headers (a client trickling
      its body): 408, so a slow client cannot hold a connection and a task forever;
    - not UTF-8, or a JSON string escaping half of a UTF-16 surrogate pair
      (``"\\ud800"``, valid JSON but no text): 400 naming the problem, where the
      text would otherwise fail deep inside the tokenizer.

    The body is buffered (it is small by definition) and replayed to the app;
    later ``receive`` calls go to the server, so the app can still notice a disconnect.
    """

    def __init__(self, app, max_bytes: int, timeout: float = 30.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _drain(receive)
            return await _reject(scope, send, self._too_large(declared))
        try:
            async with asyncio.timeout(self.timeout):
                chunks, size = [], 0
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left before sending its body: nobody to answer
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_bytes:
                        if message.get("more_body"):
                            size += await _drain(receive)
                        return await _reject(scope, send, self._too_large(size))
                    chunks.append(body)
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            return await _reject(
                scope,
                send,
                RequestBodyTimeout(
                    f"the request body did not arrive within {self.timeout:g} s of its headers; send it at once "
                    "(the limit is --body-timeout, POCKETLM_BODY_TIMEOUT)"
                ),
            )
        body = b"".join(chunks)
        problem = text_problem(body) if _is_text(scope) else None  # uploads (images: multipart) are bytes
        if problem is not None:
            return await _reject(scope, send, problem)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, size: int) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body has {size} bytes or more; this server accepts at most {self.max_bytes} "
            f"(raise it with --max-body-bytes or POCKETLM_MAX_BODY_BYTES)"
        )


async def _reject(scope, send, err: PocketLMError) -> None:
    payload = json.dumps(error_body(err, scope["path"])).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in error_headers(err).items()]
    await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# A \uXXXX escape in the UTF-16 surrogate range, with the escapes of a whole pair matched together.
# (?<!\\)(?:\\\\)* keeps an escaped backslash ("\\\\ud800": a backslash, then the text 'ud800') out.
_SURROGATE_ESCAPES = re.compile(
    r"(?<!\\)(?:\\\\)*\\u(?:([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|[dD][c-fC-F][0-9a-fA-F]{2})"
)


def text_problem(body: bytes) -> InvalidParameter | None:
    """Why ``body`` is not text a model can read (not UTF-8, or a lone surrogate escape), or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return InvalidParameter(
            "body",
            f"the request body is not valid UTF-8 (byte {e.start}: {body[e.start : e.start + 1]!r}); "
            "send JSON encoded as UTF-8",
        )
    if "\\u" not in text:
        return None
    for match in _SURROGATE_ESCAPES.finditer(text):
        if not (match.group(1) and match.group(2)):  # a high half without its low half, or a low half alone
            escape = match.group(0)[match.group(0).rindex("u") - 1 :]
            return InvalidParameter(
                "body",
                f"the request body escapes half of a UTF-16 surrogate pair ('{escape}' "
                f"at character {match.start()}), which is no text; escape whole characters",
            )
    return None


def _is_text(scope) -> bool:
    """JSON, a form of text fields, or no content type (read as JSON): bodies that must be UTF-8 text."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind = value.split(b";")[0].strip().lower()
            return kind in (b"application/json", b"application/x-www-form-urlencoded", b"text/plain") or kind.endswith(
                b"+json"
            )
    return True


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive) -> int:
    """Read and discard the rest of a body so the client gets to read our answer."""
    drained = 0
    while drained < _DRAIN_CAP:
        message = await receive()
        if message["type"] != "http.request":
            break
        drained += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    return drained


class AccessLog:
    """One log line per request (text or JSON) and the per-route request counters."""

    def __init__(self, app, metrics, log_format: str = "text"):
        self.app = app
        self.metrics = metrics
        self.json = log_format == "json"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 499  # stays 499 (client closed request) if no response was started
        sent = 0

        async def send_and_watch(message):
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException:
            status = 500 if status == 499 else status
            raise
        finally:
            self._record(scope, status, sent, time.perf_counter() - start)

    def _record(self, scope, status: int, sent: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"  # templates only: bounded label set
        self.metrics.requests.labels(route=route, status=str(status)).inc()
        self.metrics.request_seconds.labels(route=route).observe(seconds)
        client = scope.get("client") or ("-", 0)
        if self.json:
            access_log.info(
                json.dumps(
                    {
                        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                        "client": f"{client[0]}:{client[1]}",
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "bytes": sent,
                        "duration_ms": round(seconds * 1000, 1),
                        "user_agent": _header(scope, b"user-agent"),
                    }
                )
            )
        else:
            access_log.info(
                '%s:%s "%s %s" %d %dB %.1fms',
                client[0],
                client[1],
                scope["method"],
                scope["path"],
                status,
                sent,
                seconds * 1000,
            )


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
