"""Connection-level limits uvicorn does not have: slow headers and clients that stop reading.

uvicorn closes a keep-alive connection that stays idle between requests, but it
starts no clock when a connection opens, and none while a response waits for a
client to read it. So a client can hold a connection (and a place under
``--max-connections``) forever by sending a request's headers one byte at a
time, by connecting and sending nothing, or by never reading a stream it asked
for. This protocol adds both clocks:

- ``header_timeout``: from the moment a connection opens, or the previous
  response ends, the next request's headers must be complete within this many
  seconds; otherwise the connection is closed (with a 408 if part of a request arrived);
- ``send_timeout``: when the client reads nothing and the socket's send buffer
  stays full for this many seconds, the connection is dropped. The route sees
  a disconnect, so a stream nobody reads frees its engine slot.

And two sizes: ``max_connections``, open connections at once (a request on one more is
answered 503 with ``Retry-After`` in OpenAI's error shape, where uvicorn's own limit
answers plain text), and ``max_header_bytes``, the request line and headers together. h11
enforces its own limit only on a head that arrives in pieces; a head that arrives
whole in one read was accepted at any size. Counting here, before h11 parses,
refuses both with 431 and closes the connection.

``send_buffer_bytes`` caps what a connection buffers for a client that does not
read: the kernel's send buffer (which Linux would otherwise grow up to
``net.ipv4.tcp_wmem``'s maximum, 4 MiB by default, so a response looks "sent"
long after the client stopped reading) and the event loop's buffer above it
(asyncio's high-water mark). A token stream needs a few KB per second; a quarter MiB is plenty.

Slow *bodies* are timed by ``api.middleware.BodyLimit``, which can still answer
with an error the client reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("pocketlm.api")


def guarded_protocol(
    header_timeout: float, send_timeout: float, send_buffer_bytes: int, max_header_bytes: int, max_connections: int
) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with these limits (pass it as ``uvicorn.Config(http=...)``)."""
    limits = {
        "header_timeout": header_timeout,
        "send_timeout": send_timeout,
        "send_buffer_bytes": send_buffer_bytes,
        "max_header_bytes": max_header_bytes,
        "max_connections": max_connections,
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)


class GuardedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    send_timeout: float = 30.0
    send_buffer_bytes: int = 256 * 1024
    max_header_bytes: int = 16384
    max_connections: int = 512

    def connection_made(self, transport: asyncio.Transport) -> None:
        self._header_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of a request arrived, its headers are not complete yet
        self._head = b""  # what arrived of the next request's head (up to its blank line), to measure it
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        transport.set_write_buffer_limits(high=self.send_buffer_bytes)  # pause_writing beyond: the send clock starts
        super().connection_made(transport)
        self._await_request()

    def data_received(self, data: bytes) -> None:
        if not self._in_request() and (self._too_many_connections() or self._head_too_large(data)):
            return
        super().data_received(data)
        if self._in_request():
            self._cancel_header_timer()
        else:
            self._partial = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._in_request():  # a pipelined request may have started already
            self._await_request()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout, self._reader_too_slow)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().connection_lost(exc)

    # ------------------------------------------------------------ clocks

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _too_many_connections(self) -> bool:
        """A request on a connection beyond ``max_connections`` (this one counted) is refused: 503, retry later."""
        if len(self.connections) <= self.max_connections:
            return False
        self._refuse(_error_response(503, "Service Unavailable", _TOO_MANY, self.max_connections, retry_after=1))
        return True

    def _refuse(self, response: bytes) -> None:
        self._cancel_header_timer()
        self.transport.write(response)
        self.transport.close()

    def _head_too_large(self, data: bytes) -> bool:
        """Keep what arrived of the head until its end (``\\r\\n\\r\\n``); past ``max_header_bytes``, refuse."""
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        size = len(head) if end < 0 else end
        if size <= self.max_header_bytes:
            self._head = head if end < 0 else b""
            return False
        log.info("%s: request head over %d bytes (--max-header-bytes); closing", _peer(self), self.max_header_bytes)
        self._refuse(_error_response(431, "Request Header Fields Too Large", _HEAD_TOO_LARGE, self.max_header_bytes))
        return True

    def _await_request(self) -> None:
        self._cancel_header_timer()
        self._partial = False
        self._head = b""
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_request() or self.transport.is_closing():
            return
        if self._partial:
            log.info(
                "%s: request headers incomplete after %g s (--header-timeout); closing",
                _peer(self),
                self.header_timeout,
            )
            self.transport.write(_error_response(408, "Request Timeout", _HEAD_TOO_SLOW, self.header_timeout))
        self.transport.close()

    def _reader_too_slow(self) -> None:
        self._send_timer = None
        if self.transport.is_closing():
            return
        log.info(
            "%s: read nothing of its response for %g s (--send-timeout); dropping the connection",
            _peer(self),
            self.send_timeout,
        )
        self.transport.abort()  # close() would wait to flush what the client is not reading


def _peer(protocol: H11Protocol) -> str:
    client = protocol.client
    return f"{client[0]}:{client[1]}" if client else "client"


_HEAD_TOO_SLOW = (
    "invalid_request_error",
    "request_timeout",
    "the request headers did not arrive within {:g} s (--header-timeout)",
)
_HEAD_TOO_LARGE = (
    "invalid_request_error",
    "header_too_large",
    "the request line and headers exceed {} bytes (--max-header-bytes)",
)
_TOO_MANY = (
    "overloaded_error",
    "too_many_connections",
    "the server has {} connections open (--max-connections); retry after Retry-After seconds",
)


def _error_response(status: int, reason: str, error: tuple[str, str, str], limit: float, retry_after: int = 0) -> bytes:
    """A whole HTTP response in OpenAI's error shape, written before any route runs; the connection then closes."""
    kind, code, message = error
    body = json.dumps(
        {
            "error": {
                "message": message.format(limit),
                "type": kind,
                "param": None,
                "code": code,
            }
        }
    ).encode()
    retry = f"retry-after: {retry_after}\r\n" if retry_after else ""
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{retry}connection: close\r\n\r\n"
    ).encode()
    return head + body
