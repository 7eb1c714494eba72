"""Every failure as OpenAI's error object: ``{"error": {message, type, param, code}}``; on Ollama's routes
(``/api/...``) as Ollama's, ``{"error": "message"}``, which its clients read.

Engine errors (``pocketlm.errors``) already carry their HTTP status, type, code
and parameter; this module only turns them into responses. It also covers what
FastAPI and Starlette raise on their own (bad JSON, wrong types, unknown routes)
so that a client never sees a different error shape, and bad input never
becomes a 500.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pocketlm.errors import InvalidParameter, Overloaded, PocketLMError, Unauthorized
from pocketlm.service import app_state
from pocketlm.service.ollama import OLLAMA_PREFIX

log = logging.getLogger("pocketlm.api")


class BodyTooLarge(PocketLMError):
    http_status = 413
    type = "invalid_request_error"
    code = "body_too_large"


class RequestBodyTimeout(PocketLMError):
    http_status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class RequestTimeout(PocketLMError):
    http_status = 504
    type = "timeout_error"
    code = "request_timeout"


class Unsupported(InvalidParameter):
    """A parameter other servers know but pocketlm does not implement."""

    code = "unsupported_parameter"


def error_body(err: PocketLMError, path: str = "") -> dict:
    """The error as the client of ``path`` reads it: Ollama's shape on its routes, OpenAI's everywhere else."""
    return _shaped(path, err.message, err.type, err.param, err.code)


def _shaped(path: str, message: str, kind: str, param: str | None, code: str | None) -> dict:
    if path.startswith(f"{OLLAMA_PREFIX}/"):
        return {"error": message}
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_headers(err: PocketLMError) -> dict[str, str]:
    headers = {}
    retry_after = getattr(err, "retry_after", None)
    if isinstance(err, Overloaded) or retry_after is not None or err.http_status == 503:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after or 1)))
    if isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def error_response(err: PocketLMError, path: str = "") -> JSONResponse:
    return JSONResponse(error_body(err, path), status_code=err.http_status, headers=error_headers(err))


def renamed(err: InvalidParameter, aliases: dict[str, str]) -> InvalidParameter:
    """The same error, naming the parameter as the client spelled it (``max_tokens``, not ``max_new_tokens``)."""
    client_name = aliases.get(err.param or "")
    if client_name is None or client_name == err.param:
        return err
    detail = err.message.removeprefix(f"{err.param}: ")
    return type(err)(client_name, detail)


def validation_error(exc: RequestValidationError) -> InvalidParameter:
    """FastAPI's list of pydantic errors -> one InvalidParameter naming the first bad field."""
    first = exc.errors()[0]
    loc = [part for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return InvalidParameter(
            "body", f"the request body is not valid JSON ({reason} at character {loc[0] if loc else '?'})"
        )
    if not loc and kind in ("model_attributes_type", "dict_type"):
        return InvalidParameter(
            "body", "the request body must be a JSON object; send it with 'Content-Type: application/json'"
        )
    if not loc and kind == "missing":
        return InvalidParameter("body", "the request needs a JSON body")
    param = _dotted(loc)
    return InvalidParameter(param, first.get("msg", "invalid value").removeprefix("Value error, "))


def _dotted(loc: list) -> str:
    """('messages', 0, 'role') -> 'messages[0].role'"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


_HTTP_ERRORS = {
    400: ("invalid_request_error", "bad_request"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "body_too_large"),
}


def _allowed(request: Request) -> list[str]:
    """Every method some route answers on this request's path."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)
    ]


def install(app: FastAPI) -> None:
    """Register one handler per kind of failure."""

    @app.exception_handler(PocketLMError)
    async def pocketlm_error(request: Request, exc: PocketLMError):
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        return error_response(validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind, code = _HTTP_ERRORS.get(exc.status_code, ("invalid_request_error", None))
        message = str(exc.detail)
        if exc.status_code == 404:
            why = app_state(request).unserved.get(request.url.path, "see /docs for the API")
            message = f"no route {request.method} {request.url.path}; {why}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
        elif exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            message = "the request body is JSON nested too deeply to read; no parameter takes more than a few levels"
        elif exc.status_code == 400 and "parsing the body" in message:
            message = "the request body could not be read: it must be UTF-8 encoded JSON"
        headers = getattr(exc, "headers", None)
        if (
            exc.status_code == 405
        ):  # Starlette names the methods of the first route on the path; a path may have several
            headers = {**(headers or {}), "Allow": ", ".join(_allowed(request))}
        body = _shaped(request.url.path, message, kind, None, code)
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # A bug, never bad input: log the traceback, tell the client nothing internal.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = _shaped(request.url.path, "internal server error", "server_error", None, None)
        return JSONResponse(body, status_code=500)
