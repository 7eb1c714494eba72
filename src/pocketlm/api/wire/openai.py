"""OpenAI's ``/v1/completions``, ``/v1/chat/completions`` and ``/v1/models`` bodies.

OpenAI's rules: ``max_tokens`` is 16 by default on completions and "until the
turn ends" on chat (where ``max_completion_tokens`` is the newer name),
``top_logprobs`` needs ``logprobs``, and a few fields other servers accept
(top_k, min_p, repetition_penalty, ignore_eos) are extensions. Chat roles are
checked by the engine (``pocketlm.engine.chat``); here they are only listed for /docs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pocketlm.api.errors import Unsupported
from pocketlm.api.wire.common import (
    Aliases,
    Stop,
    reject_unsupported,
    sampling_field,
    stop_tuple,
    unsupported_field,
)
from pocketlm.engine.chat import ROLES
from pocketlm.engine.outputs import TokenLogprob, Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.errors import InvalidParameter
from pocketlm.wire_types import PROMPT, SERVED_MODEL, Integer, RequestBody

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
_TEXT_FORMAT = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["text"]}},
    "additionalProperties": False,
}
FinishReason = Literal["stop", "length"]
_FINISH = "stop: the model ended or a stop string matched; length: the token limit or the context was reached."


class StreamOptions(RequestBody):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage before [DONE].")


class _OpenAISampling(RequestBody):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model: str | None = Field(
        None,
        description="A served model's id (GET /v1/models); none: the default model; another id is a 404.",
        json_schema_extra={SERVED_MODEL: True},
    )
    temperature: float = sampling_field("temperature", 1.0)
    top_p: float = sampling_field("top_p", 1.0)
    n: Integer = sampling_field("n", 1)
    stream: bool = Field(False, description="Stream server-sent events (chunks), ending with `data: [DONE]`.")
    stream_options: StreamOptions | None = Field(None, description="Streaming options.")
    stop: Stop = sampling_field("stop")
    presence_penalty: float = sampling_field("presence_penalty", 0.0)
    frequency_penalty: float = sampling_field("frequency_penalty", 0.0)
    seed: Integer | None = sampling_field("seed")
    user: str | None = Field(None, description="An id of the end user; accepted and ignored.")
    # Extensions many OpenAI-compatible servers accept (vLLM, llama.cpp).
    top_k: Integer = sampling_field("top_k", 0, note="Extension (vLLM, llama.cpp).")
    min_p: float = sampling_field("min_p", 0.0, note="Extension (vLLM, llama.cpp).")
    repetition_penalty: float = sampling_field("repetition_penalty", 1.0, note="Extension (vLLM, llama.cpp).")
    ignore_eos: bool = sampling_field("ignore_eos", False, note="Extension (vLLM).")
    logit_bias: dict[str, float] | None = unsupported_field(
        "An empty object is accepted.", accepted=({"type": "object", "maxProperties": 0},)
    )

    def _params(self, max_new_tokens: int | None, logprobs: int | None) -> SamplingParams:
        reject_unsupported({"logit_bias": self.logit_bias})
        return SamplingParams(
            max_new_tokens=max_new_tokens,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            stop=stop_tuple(self.stop),
            n=self.n,
            logprobs=logprobs,
            ignore_eos=self.ignore_eos,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_OpenAISampling):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["echo"], "properties": {"echo": {"const": True}}},
            "then": {"properties": {"logprobs": {"type": "null"}}},
        }
    )
    prompt: str | list[Integer] | list[str] = Field(
        description="Text, or token ids; a list of strings must hold exactly one.", json_schema_extra={PROMPT: True}
    )
    max_tokens: Integer | None = sampling_field(
        "max_new_tokens", DEFAULT_MAX_TOKENS, note=f"OpenAI's default: {DEFAULT_MAX_TOKENS}."
    )
    logprobs: Integer | None = sampling_field("logprobs")
    echo: bool = Field(False, description="Prepend the prompt to each choice's text.")
    suffix: str | None = unsupported_field()
    best_of: Integer | None = unsupported_field(
        "1 is accepted; use n instead.", accepted=({"type": "integer", "enum": [1]},)
    )

    def engine_request(self) -> tuple[str | list[int], SamplingParams, Aliases]:
        reject_unsupported({"suffix": self.suffix})
        if self.best_of not in (None, 1):
            raise Unsupported("best_of", "is not supported by pocketlm; use n instead")
        if self.echo and self.logprobs is not None:
            raise Unsupported("echo", "cannot be combined with logprobs: pocketlm has no logprobs for prompt tokens")
        return self._prompt(), self._params(self.max_tokens, self.logprobs), {"max_new_tokens": "max_tokens"}

    def _prompt(self) -> str | list[int]:
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            if len(self.prompt) != 1:
                raise InvalidParameter(
                    "prompt",
                    "pocketlm takes one prompt per request; send several requests instead of a list of prompts",
                )
            return self.prompt[0]
        return self.prompt


def _required(*names: str):
    """Schema-only: the engine refuses a message without these (400 naming it), pydantic lets it reach the engine."""
    return ConfigDict(json_schema_extra={"required": list(names)})


def _not_null(schema: dict) -> None:
    schema["anyOf"] = [branch for branch in schema.get("anyOf", [schema]) if branch.get("type") != "null"]
    schema.pop("default", None)


class ContentPart(RequestBody):
    model_config = _required("type", "text")

    type: str = Field(description="The part's kind; only text is supported.", json_schema_extra={"enum": ["text"]})
    text: str | None = Field(None, description="The text of a text part.", json_schema_extra=_not_null)


class ChatMessage(RequestBody):
    """A chat turn. Roles: system, developer (read as system), user, assistant."""

    role: str = Field(
        description="Who speaks; developer is read as system. tool and function are refused (no tool calling).",
        json_schema_extra={"enum": list(ROLES)},
    )
    model_config = _required("role", "content")

    content: str | list[ContentPart] | None = Field(
        None, description="The text, or a list of text parts.", json_schema_extra=_not_null
    )
    name: str | None = Field(None, description="A name for the speaker; accepted and ignored.")
    tool_calls: list[dict] | None = unsupported_field(
        "pocketlm does not do tool calling.", accepted=({"type": "array", "maxItems": 0},)
    )

    def as_engine_message(self, index: int) -> dict:
        """The message as the engine's chat template takes it (the engine checks role and content)."""
        if self.tool_calls:
            raise Unsupported(f"messages[{index}].tool_calls", "is not supported: pocketlm does not do tool calling")
        content = self.content
        if isinstance(content, list):
            content = [part.model_dump(exclude_none=True) for part in content]
        return {"role": self.role, "content": content}


def _when(field: str, schema: dict, then: dict) -> dict:
    """JSON Schema: when ``field`` is present and matches ``schema``, the body must match ``then``."""
    return {"if": {"required": [field], "properties": {field: schema}}, "then": then}


class ChatCompletionRequest(_OpenAISampling):
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                _when(
                    "top_logprobs",
                    {"type": "integer"},
                    {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}},
                ),
                _when("max_tokens", {"type": "integer"}, {"properties": {"max_completion_tokens": {"type": "null"}}}),
            ]
        }
    )
    messages: list[ChatMessage] = Field(
        description="The conversation so far (at least one message), rendered with the model's chat template.",
        json_schema_extra={"minItems": 1},
    )  # checked by the engine
    max_tokens: Integer | None = sampling_field(
        "max_new_tokens", note="Deprecated OpenAI name of max_completion_tokens."
    )
    max_completion_tokens: Integer | None = sampling_field(
        "max_new_tokens", note="Default: until the end of the turn (capped by the server)."
    )
    logprobs: bool = Field(
        False, description="Return the log-probability of each chosen token (choices[].logprobs.content)."
    )
    top_logprobs: Integer | None = sampling_field("logprobs", note="Needs logprobs: true.")
    tools: list[dict] | None = unsupported_field(
        "An empty list is accepted; pocketlm does not do tool calling.", accepted=({"type": "array", "maxItems": 0},)
    )
    tool_choice: Any = unsupported_field('"none" is accepted.', accepted=({"type": "string", "enum": ["none"]},))
    response_format: dict | None = Field(
        None,
        description='Only {"type": "text"} is supported; anything else is refused.',
        json_schema_extra=lambda schema: schema.update(anyOf=[{"type": "null"}, _TEXT_FORMAT]),
    )

    def engine_request(self) -> tuple[list[dict], SamplingParams, Aliases]:
        """The messages for the engine's chat path, its parameters, and OpenAI's names for them."""
        reject_unsupported({"tools": self.tools})
        if self.tool_choice not in (None, "none"):
            raise Unsupported(
                "tool_choice", 'is not supported by pocketlm: it does not do tool calling; leave it out or send "none"'
            )
        if self.response_format not in (None, {"type": "text"}):
            raise Unsupported("response_format", 'only {"type": "text"} is supported by pocketlm')
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidParameter("top_logprobs", "needs logprobs: true")
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise InvalidParameter(
                "max_completion_tokens", "max_tokens is the old name of max_completion_tokens; send only one of them"
            )
        limit_name = (
            "max_tokens"
            if self.max_completion_tokens is None and self.max_tokens is not None
            else "max_completion_tokens"
        )
        max_new = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        logprobs = (self.top_logprobs or 0) if self.logprobs else None
        messages = [m.as_engine_message(i) for i, m in enumerate(self.messages)]
        return (
            messages,
            self._params(max_new, logprobs),
            {"max_new_tokens": limit_name, "logprobs": "top_logprobs", "prompt": "messages"},
        )


# --------------------------------------------------------------------------- responses


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(
        description="Prompt tokens whose keys/values were kept from an earlier request with the "
        "same beginning, so they were not computed again."
    )


class UsageInfo(BaseModel):
    prompt_tokens: int = Field(description="Tokens in the prompt.")
    completion_tokens: int = Field(description="Tokens generated, over all choices.")
    total_tokens: int = Field(description="prompt_tokens + completion_tokens.")
    prompt_tokens_details: PromptTokensDetails = Field(description="How the prompt was processed.")

    @classmethod
    def of(cls, usage: Usage) -> UsageInfo:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
        )


class CompletionLogprobs(BaseModel):
    """OpenAI's legacy completions layout: parallel lists, alternatives as {token: logprob}."""

    tokens: list[str] = Field(default_factory=list, description="Each generated token's text.")
    token_logprobs: list[float] = Field(default_factory=list, description="Each token's log-probability.")
    top_logprobs: list[dict[str, float]] = Field(
        default_factory=list, description="Most likely alternatives per token: {token: logprob}."
    )
    text_offset: list[int] = Field(default_factory=list, description="Where each token starts in the choice's text.")

    @classmethod
    def of(cls, logprobs: list[TokenLogprob] | tuple[TokenLogprob, ...], text_offset: int) -> CompletionLogprobs:
        out = cls()
        for lp in logprobs:
            out.tokens.append(lp.token)
            out.token_logprobs.append(lp.logprob)
            out.top_logprobs.append({alt.token: alt.logprob for alt in lp.top})
            out.text_offset.append(text_offset)
            text_offset += len(lp.token)
        return out


class _Choice(BaseModel):
    """What every choice has, whole or streamed."""

    index: int = Field(description="Which of the n choices.")
    finish_reason: FinishReason | None = Field(
        None, description=_FINISH + " In a stream: on the choice's last chunk only."
    )


class _Envelope(BaseModel):
    """What every completion, chunk or whole, has around its choices."""

    id: str = Field(description="A unique id of this completion (the same on each of its chunks).")
    created: int = Field(description="Unix time of creation.")
    model: str = Field(description="The id of the model that answered.")


class CompletionChoice(_Choice):
    text: str = Field(description="The generated text (after the prompt when echo).")
    logprobs: CompletionLogprobs | None = Field(None, description="With logprobs: per-token log-probabilities.")


class CompletionResponse(_Envelope):
    object: Literal["text_completion"] = Field("text_completion", description="Always text_completion.")
    choices: list[CompletionChoice] = Field(description="One per sample (n); in a stream, those this chunk adds to.")
    usage: UsageInfo | None = Field(
        None, description="Token counts; in a stream, on the last chunk with stream_options.include_usage."
    )


class CompletionChunk(CompletionResponse):
    """One server-sent event of a streamed completion."""


class ChatTopLogprob(BaseModel):
    token: str = Field(description="The token's text.")
    logprob: float = Field(description="Its log-probability.")
    bytes: list[int] | None = Field(None, description="Its UTF-8 bytes (a token may hold part of a character).")


class ChatTokenLogprob(ChatTopLogprob):
    top_logprobs: list[ChatTopLogprob] = Field(
        default_factory=list, description="Most likely alternatives (top_logprobs)."
    )

    @classmethod
    def of(cls, lp: TokenLogprob) -> ChatTokenLogprob:
        return cls(
            token=lp.token,
            logprob=lp.logprob,
            bytes=list(lp.bytes),
            top_logprobs=[ChatTopLogprob(token=a.token, logprob=a.logprob, bytes=list(a.bytes)) for a in lp.top],
        )


class ChatLogprobs(BaseModel):
    content: list[ChatTokenLogprob] | None = Field(None, description="One entry per generated token.")
    refusal: list[ChatTokenLogprob] | None = Field(None, description="Always null: pocketlm has no refusals.")

    @classmethod
    def of(cls, logprobs: list[TokenLogprob] | tuple[TokenLogprob, ...]) -> ChatLogprobs:
        return cls(content=[ChatTokenLogprob.of(lp) for lp in logprobs])


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = Field("assistant", description="Always assistant.")
    content: str | None = Field(None, description="The answer.")


class ChatChoice(_Choice):
    message: AssistantMessage = Field(description="The assistant's answer.")
    logprobs: ChatLogprobs | None = Field(None, description="With logprobs: per-token log-probabilities.")


class ChatCompletionResponse(_Envelope):
    object: Literal["chat.completion"] = Field("chat.completion", description="Always chat.completion.")
    choices: list[ChatChoice] = Field(description="One per sample (n).")
    usage: UsageInfo = Field(description="Token counts.")


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = Field(None, description="On each choice's first chunk only.")
    content: str | None = Field(None, description="Text added by this chunk.")


class ChatChunkChoice(_Choice):
    delta: ChatDelta = Field(description="What this chunk adds.")
    logprobs: ChatLogprobs | None = Field(None, description="With logprobs: the added tokens' log-probabilities.")


class ChatCompletionChunk(_Envelope):
    object: Literal["chat.completion.chunk"] = Field(
        "chat.completion.chunk", description="Always chat.completion.chunk."
    )
    choices: list[ChatChunkChoice] = Field(description="The choices this chunk adds to (empty on the usage chunk).")
    usage: UsageInfo | None = Field(None, description="On the last chunk with stream_options.include_usage.")


class ModelCard(BaseModel):
    id: str = Field(description="The model's id, for the `model` field of requests.")
    object: Literal["model"] = Field("model", description="Always model.")
    created: int = Field(description="Unix time the server started.")
    owned_by: str = Field("pocketlm", description="Always pocketlm.")
    task: str = Field(
        "text-generation",
        description="What the model does: text-generation, translation, text-to-speech or image-to-text.",
    )
    # pocketlm's own, beside OpenAI's: what a text-generation model is, costs, and whether it is loaded now.
    state: Literal["loaded", "loading", "unloading", "unloaded"] | None = Field(
        None, description="Text-generation models: loaded now, or loaded on its next request."
    )
    default: bool | None = Field(None, description="Text-generation models: the one a request that names none gets.")
    kind: str | None = Field(
        None, description="instruct (it has a chat template), base (it continues text) or encoder."
    )
    size: int | None = Field(None, description="Bytes of its weights on disk.")
    parameters: int | None = Field(None, description="Its number of parameters.")
    quantization: str | None = Field(None, description="How its weights are stored (Q8_0, F16, ...).")
    n_ctx: int | None = Field(None, description="Tokens of context each request gets (prompt + answer).")
    n_ctx_train: int | None = Field(None, description="The context it was trained for.")
    ram_estimate: int | None = Field(
        None, description="Bytes of RAM it takes loaded, estimated from its files (what --memory-budget counts)."
    )


class ModelList(BaseModel):
    object: Literal["list"] = Field("list", description="Always list.")
    data: list[ModelCard] = Field(description="Every model served: the text-generation models, then the tasks'.")
