"""The OpenAPI document of this server as it runs: what it enforces and what it answers, exactly.

FastAPI's document is built from the pydantic models alone. The server also
enforces what the engine checks (sampling ranges under the configured
``Limits``, ``n`` up to the slots, token ids within the vocabulary, the served
model's id), answers with statuses FastAPI cannot see (400 from the engine and
the body checks, 401 with keys, 408, 413, 503, 504), never answers 422 (its
validation errors are 400 in OpenAI's shape), and only asks for a key when keys
are configured. This module rewrites the generated document accordingly, taking
every number from the one place it is enforced (``engine.params.bounds``: the
declarations of ``SamplingParams``; ``Limits``; the engine's model info), so the
document a client generator or a gateway reads is the contract the server keeps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pocketlm.engine.params import bounds
from pocketlm.service import AppState, app_state
from pocketlm.service.ollama import OLLAMA_PREFIX
from pocketlm.settings import Range
from pocketlm.wire_types import CONTEXT, PROMPT, SAMPLING, SERVED_MODEL, TOKEN_IDS

# Markers the wire models put in their JSON schemas where a constraint depends on the server's configuration;
# document() replaces each with the constraint.
ERROR_REF = {"$ref": "#/components/schemas/Error"}
OLLAMA_ERROR_REF = {"$ref": "#/components/schemas/OllamaError"}  # api.wire.ollama.OllamaError, on Ollama's routes

ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "description": "Every error, in OpenAI's shape.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "description": "What went wrong.",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "description": "What was wrong and how to fix it."},
                "type": {
                    "type": "string",
                    "description": (
                        "invalid_request_error, authentication_error, overloaded_error, timeout_error or server_error."
                    ),
                },
                "param": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": "The parameter at fault, as the client spelled it.",
                },
                "code": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": "A stable machine-readable reason.",
                },
            },
        }
    },
}

SSE_EVENT = {  # one server-sent event: its data is a JSON document (the route's chunk), or [DONE] on OpenAI's routes
    "type": "object",
    "required": ["data"],
    "description": "One server-sent event (`data: ...` then a blank line).",
    "properties": {
        "data": {"type": "string", "description": "A JSON chunk (or [DONE], the last event of OpenAI's streams)."}
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_ERRORS = {
    400: "A parameter is invalid (`param` names it), or the body is not UTF-8 JSON of the right shape.",
    401: "The API key is missing or wrong: send `Authorization: Bearer <key>`.",
    404: "The model asked for is not served here.",
    408: "The request body did not arrive within --body-timeout seconds.",
    413: "The request body is larger than --max-body-bytes.",
    431: "The request line and headers are larger than --max-header-bytes (the connection is closed).",
    503: "Every slot is busy and the queue is full, --max-connections are open, or the server is shutting down: "
    "retry after `Retry-After` seconds.",
    504: "The request ran longer than --request-timeout seconds.",
}


def install(app: FastAPI) -> None:
    """Serve ``document(app)`` as the app's OpenAPI document (built once, on first request)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi


def document(app: FastAPI) -> dict:
    state = app_state(app)
    settings = state.settings
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 bodies: this server answers 400
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    context = _served(state)
    for body in schemas.values():
        _walk(body, context)
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            _responses(path, op, bool(settings.api_keys))
    if not settings.api_keys:
        components.pop("securitySchemes", None)
    for hook in state.openapi_hooks:  # the other features' routes state their own limits
        hook(schema)
    return schema


def _served(state: AppState) -> dict:
    """What the served models allow, for the markers: bounds that hold for every one of them (a token id within
    the smallest vocabulary, a prompt within the smallest context), so whatever the document accepts, every
    model accepts."""
    table = state.models
    engines = [engine for _, engine in table.loaded()]
    config = engines[0].config if engines else state.settings.engine  # every model's engine runs with one config
    limits = config.limits
    numeric = bounds(limits)
    numeric["n"] = replace(numeric["n"], high=min(limits.max_n, config.slots))  # a sample needs a slot
    served = list(table.models.values())
    n_ctx = min(m.n_ctx for m in served)
    vocabularies = [m.row.n_vocab for m in served if m.row.n_vocab]
    # "" is a prompt where the tokenizer adds BOS (the engine refuses a prompt of no tokens): known of a loaded model
    adds_bos = len(engines) == len(served) and all(engine.tokenize("", add_special=True) for engine in engines)
    return {
        "numeric": numeric,
        "limits": limits,
        "n_vocab": min(vocabularies) if vocabularies else 1,
        "models": list(table.models),
        "n_ctx": max(m.n_ctx for m in served),
        "max_prompt_ids": min(n_ctx - 1, limits.max_prompt_tokens or n_ctx),
        "min_prompt_chars": 0 if adds_bos else 1,
    }


def _responses(path: str, op: dict, keyed: bool) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    codes = [431, 503]  # before any route: a head too large, one connection too many
    if "requestBody" in op:
        op["requestBody"]["required"] = True
        codes += [400, 408, 413]
    if op.get("security"):
        if keyed:
            codes.append(401)
        else:
            del op["security"]
    streams = "text/event-stream" in responses.get("200", {}).get("content", {})
    if streams:  # the routes that run the model
        codes += [404, 504] if path.startswith("/v1/") else [504]
        responses["200"]["content"]["text/event-stream"].setdefault("schema", SSE_EVENT)
    if "{" in path:
        codes.append(404)
    for code in codes:
        responses.setdefault(str(code), {"description": _ERRORS[code]})
    error = OLLAMA_ERROR_REF if path.startswith(f"{OLLAMA_PREFIX}/") else ERROR_REF
    for code, entry in responses.items():  # every error, the statuses above and those a route declares itself
        if code[0] in "45":
            entry["content"] = {"application/json": {"schema": error}}
            if code == "503":
                entry["headers"] = _RETRY_AFTER


def _walk(node: Any, context: dict) -> None:
    """Apply the server's constraints wherever a marker asks for them, in place."""
    if isinstance(node, list):
        for item in node:
            _walk(item, context)
        return
    if not isinstance(node, dict):
        return
    if "type" in node:  # pydantic leaves a constraint on a validated type (wire.common.Integer) under its own name
        for short, keyword in (
            ("ge", "minimum"),
            ("le", "maximum"),
            ("gt", "exclusiveMinimum"),
            ("lt", "exclusiveMaximum"),
        ):
            if short in node:
                node[keyword] = node.pop(short)
    name = node.pop(SAMPLING, None)
    if name is not None:
        _constrain(node, name, context)
    prompts = node.pop(PROMPT, False)
    if prompts:
        _prompt(node, context, 1 if prompts is True else prompts)
    if node.pop(TOKEN_IDS, False):
        node.setdefault("items", {}).update(minimum=0, maximum=context["n_vocab"] - 1)
    served = node.pop(SERVED_MODEL, False)
    if served:
        _branches(node, "string")[0]["enum"] = [*context["models"], *(served if isinstance(served, list) else [])]
    if node.pop(CONTEXT, False):
        for branch in _branches(node, "integer"):
            branch.update(minimum=1, maximum=context["n_ctx"])
    for value in node.values():
        _walk(value, context)


def _prompt(node: dict, context: dict, most: int) -> None:
    """Text (not empty unless the tokenizer adds BOS), token ids of the vocabulary that fit the context, or a list
    of up to ``most`` of either (the marker's number; True: a list of one text)."""
    for branch in _branches(node, "string"):
        branch["minLength"] = context["min_prompt_chars"]
    for branch in _branches(node, "array"):
        items = branch.setdefault("items", {})
        if items.get("type") == "integer":
            _token_ids(branch, context)
        elif items.get("type") == "array":
            branch.update(minItems=1, maxItems=most)
            _token_ids(items, context)
        else:
            branch.update(minItems=1, maxItems=most)
            items["minLength"] = context["min_prompt_chars"]


def _token_ids(branch: dict, context: dict) -> None:
    branch.update(minItems=1, maxItems=context["max_prompt_ids"])
    branch["items"].update(minimum=0, maximum=context["n_vocab"] - 1)


def _constrain(node: dict, name: str, context: dict) -> None:
    limits = context["limits"]
    if name == "stop":
        text = {"minLength": 1, "maxLength": limits.max_stop_chars}
        for branch in _branches(node, "string"):
            branch.update(text)
        for branch in _branches(node, "array"):
            branch.update(maxItems=limits.max_stop)
            branch.setdefault("items", {}).update(text)
        return
    bound: Range | None = context["numeric"].get(name)
    if bound is None:
        return
    for branch in _branches(node, "integer") + _branches(node, "number"):
        if bound.low is not None:
            branch["exclusiveMinimum" if bound.low_open else "minimum"] = bound.low
        if bound.high is not None:
            branch["maximum"] = bound.high


def _branches(node: dict, kind: str) -> list[dict]:
    """The sub-schemas of ``node`` (itself, or its anyOf branches) of JSON type ``kind``."""
    options = node.get("anyOf", [node])
    return [o for o in options if o.get("type") == kind]
