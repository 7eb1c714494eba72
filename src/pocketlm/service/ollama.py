"""What every route of Ollama's API shares, whichever feature serves it (text in ``api``, vectors in ``tasks``).

Ollama reads a request's body as JSON whatever its ``Content-Type`` says: its documentation's
``curl -d '{...}'`` sends JSON labelled as a form, and its clients' users copy those lines.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

OLLAMA_PREFIX = "/api"  # Ollama's routes; their errors take Ollama's shape, {"error": "..."} (api.errors)


class JsonBody(APIRoute):
    """A route whose body is JSON whatever its Content-Type says, as Ollama reads it."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def as_json(request: Request):
            headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
            scope = {**request.scope, "headers": [*headers, (b"content-type", b"application/json")]}
            return await handler(Request(scope, request.receive))

        return as_json
