"""Bodies of the service routes: tokenizer, liveness, readiness."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pocketlm.api.wire.common import model_field
from pocketlm.wire_types import TOKEN_IDS, Integer, RequestBody

_MODEL = model_field("Whose tokenizer: ")


class TokenizeRequest(RequestBody):
    model: str | None = _MODEL
    text: str = Field(description="Text to turn into token ids.")
    add_special: bool = Field(
        True, description="Add BOS where the model expects one and parse special tokens such as <|im_start|>."
    )


class TokenizeResponse(BaseModel):
    tokens: list[int] = Field(description="The token ids.")
    count: int = Field(description="How many tokens.")


class DetokenizeRequest(RequestBody):
    model: str | None = _MODEL
    tokens: list[Integer] = Field(description="Token ids to turn back into text.", json_schema_extra={TOKEN_IDS: True})


class DetokenizeResponse(BaseModel):
    text: str = Field(description="The text the tokens stand for.")


class Health(BaseModel):
    status: str = Field(description="'ok' while the process answers.")


class Ready(BaseModel):
    status: str = Field(description="'ready', or 'draining' once SIGTERM was received.")
    model: str = Field(description="The default model's id (GET /v1/models lists every model served).")
    slots: int = Field(description="Slots each model's engine decodes together (one sample each).")
    n_ctx: int = Field(
        description="The default model's context of one slot in tokens (prompt + new tokens): what one "
        "conversation can hold."
    )
