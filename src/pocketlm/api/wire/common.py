"""What every protocol's schema shares: sampling fields described once, stop lists, refusals."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pocketlm.api.errors import Unsupported
from pocketlm.engine.params import Limits, SamplingParams
from pocketlm.settings import declared
from pocketlm.wire_types import SAMPLING, SERVED_MODEL

Stop = str | list[str] | None


Aliases = dict[str, str]  # engine parameter name -> the client's name for it


def sampling_field(name: str, default: Any = None, note: str = "", **kwargs) -> Any:
    """A field that fills ``SamplingParams.<name>``: the help its declaration gives, plus this protocol's ``note``
    (usually its default), so /docs explains each sampling field in the same words on every route and in --help."""
    # The marker lets the OpenAPI document state the engine's bounds for it, under the server's limits (api.openapi).
    description = f"{declared(SamplingParams, name).help} {note}".strip()
    return Field(default, description=description, json_schema_extra={SAMPLING: name}, **kwargs)


def model_field(role: str = "") -> Any:
    """A request's optional ``model``: ``role`` (what the model does for this route) and which ids it takes."""
    # The marker lists the served ids, and "", in the OpenAPI document (api.openapi): what the server accepts.
    description = f"{role}a served model's id (GET /v1/models); none or empty: the default model; another id is a 404."
    return Field(None, description=description[0].upper() + description[1:], json_schema_extra={SERVED_MODEL: [""]})


NULL = {"type": "null"}


def unsupported_field(note: str = "", default: Any = None, accepted: tuple[dict, ...] = ()) -> Any:
    """A field other servers implement and pocketlm does not: refused when set to anything but null or the
    ``accepted`` values (JSON schemas), which is all the OpenAPI document allows."""
    description = f"Not supported by pocketlm: refused when set. {note}".strip()

    def only_accepted(schema: dict) -> None:
        schema.clear()
        schema.update(description=description, anyOf=[NULL, *accepted])

    return Field(default, description=description, json_schema_extra=only_accepted)


def stop_tuple(stop: Stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def reject_unsupported(values: dict[str, Any]) -> None:
    """Refuse parameters pocketlm does not implement, rather than ignore them."""
    for name, value in values.items():
        if value is not None and value is not False and value != [] and value != {}:
            raise Unsupported(name, "is not supported by pocketlm; remove it from the request")


def or_default(value, default):
    return default if value is None else value


def protocol_default(default: int, limits: Limits) -> int:
    """A protocol's own default length (the seeds' 50 new tokens, TGI's 100), never above the server's limit:
    a request that names no length must not be refused for a length it did not ask for."""
    return min(default, limits.max_new_tokens)
