"""API keys: ``Authorization: Bearer <key>``, compared in constant time.

Routes that speak another API's dialect may also take the key where that API's
clients put it: ``api_key_or_field("api_key")`` accepts LibreTranslate's
``api_key`` field (query string, form or JSON body) when no Bearer header is sent.

With no ``--api-key`` the server is open (it binds to 127.0.0.1 by default).
Open even with keys: ``/health`` and ``/ready`` (probes from orchestrators carry
no secrets). Everything else needs a key: ``/metrics`` and the API documentation
(``/docs``, ``/redoc``, ``/openapi.json``) too, unless ``--public-docs`` opens the latter.
A key is never logged: the access log has the path, never headers or the query string.
"""

from __future__ import annotations

import hmac
import json

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from pocketlm.errors import Unauthorized
from pocketlm.service.forms import is_form, read_form
from pocketlm.service.state import app_state

_bearer = HTTPBearer(auto_error=False, description="One of the keys given to `pocketlm serve --api-key`.")


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """True if ``given`` equals one of ``keys``; every key is compared so timing reveals nothing."""
    given_bytes = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_bytes, key.encode())
    return found


async def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    keys: tuple[str, ...] = app_state(request).settings.api_keys
    if not keys:
        return
    if credentials is None:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    if not key_matches(credentials.credentials, keys):
        raise Unauthorized("invalid API key: the key in 'Authorization: Bearer <key>' is not one the server accepts")


def api_key_or_field(field: str):
    """A dependency like ``require_api_key`` that also takes the key as ``field`` of the query string or the body.

    The Bearer header, when sent, decides alone (as on every route); otherwise the field
    must hold a key. A refusal names ``field``, so a client sees which value was wrong.
    """

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        keys: tuple[str, ...] = app_state(request).settings.api_keys
        if not keys or credentials is not None:
            return await require_api_key(request, credentials)
        given = request.query_params.get(field) or await _body_field(request, field)
        if not given:
            raise Unauthorized(
                f"missing API key: send the header 'Authorization: Bearer <key>' or the field '{field}'", param=field
            )
        if not isinstance(given, str) or not key_matches(given, keys):
            raise Unauthorized(f"invalid API key: the '{field}' field is not a key the server accepts", param=field)

    return check


async def _body_field(request: Request, field: str):
    """``field`` of a form or JSON-object body, or None. A body that does not parse holds no key: the
    client gets 401 before the route, which then reports the body itself to a client with a key."""
    if is_form(request):
        try:
            form = await read_form(request)  # kept: the route reads it again for free
        except HTTPException:
            return None
        value = form.get(field)
        return value if isinstance(value, str) else None
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        return None
    return data.get(field) if isinstance(data, dict) else None
