"""API keys: ``Authorization: Bearer <key>``, compared in constant time.

With no ``--api-key`` the server is open (it binds to 127.0.0.1 by default).
Open even with keys: ``/health`` and ``/ready`` (probes from orchestrators carry
no secrets). Everything else needs a key: ``/metrics`` and the API documentation
(``/docs``, ``/redoc``, ``/openapi.json``) too, unless ``--public-docs`` opens the latter.
A key is never logged: the access log has the path, never headers or the query string.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pocketlm.api.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="One of the keys given to `pocketlm serve --api-key`.")


def key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """True if ``given`` equals one of ``keys``; every key is compared so timing reveals nothing."""
    given_bytes = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_bytes, key.encode())
    return found


async def require_api_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    keys: tuple[str, ...] = request.app.state.settings.api_keys
    if not keys:
        return
    if credentials is None:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
    if not key_matches(credentials.credentials, keys):
        raise Unauthorized("invalid API key: the key in 'Authorization: Bearer <key>' is not one the server accepts")
