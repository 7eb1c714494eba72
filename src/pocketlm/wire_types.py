"""Request-body building blocks every HTTP package shares (api, inspection, tasks).

Strict bodies and integers, so that what pydantic accepts is exactly what the
OpenAPI document says; and the markers a schema puts on a field for
``api.openapi`` to fill in with what is only known when the server runs (the
served model's name, the sampling bounds). Here, below every package that
serves HTTP, so that none of them imports another to share them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

SAMPLING = "x-sampling"  # a field that fills SamplingParams.<name> (see api.wire.common.sampling_field)
PROMPT = "x-prompt"  # a prompt: text, token ids, or a list of one text
SERVED_MODEL = "x-served-model"  # a model id: a served one only (a list: these values too)
TOKEN_IDS = "x-token-ids"  # a list of token ids of the model's vocabulary
CONTEXT = "x-context"  # a number of tokens of context: at most what the served models give a request


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema's integer: 3 and 3.0 alike, never "3" or true.
Integer = Annotated[int, BeforeValidator(_integral)]


class RequestBody(BaseModel):
    """A request body, validated as its JSON Schema reads: "5" is not a number, 0 is not false, 3.0 is an integer
    (pydantic's lax mode would accept what the OpenAPI document forbids)."""

    model_config = ConfigDict(strict=True)
