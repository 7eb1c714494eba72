"""Request and response bodies of every route, as pydantic models.

Field names follow the engine (``max_new_tokens``, ``temperature``, ``top_k``,
``top_p``, ``seed``, ``stop``, ``n``) except where a client library fixes the
name: OpenAI's ``max_tokens`` / ``max_completion_tokens`` and the seeds'
``num_return_sequences`` map onto the engine's names in ``sampling_params()``.
Each request model knows how to become ``SamplingParams`` and which client
names to use in error messages (``aliases``: engine name -> client name).
Ranges are checked once, by the engine (``SamplingParams.validated``), so the
limits configured on the server apply everywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from pocketlm.api.errors import Unsupported
from pocketlm.engine.params import SamplingParams
from pocketlm.errors import InvalidParameter

Stop = str | list[str] | None
Aliases = dict[str, str]


def _stop(stop: Stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def _reject_unsupported(values: dict[str, Any]) -> None:
    """Parameters other servers implement and pocketlm does not: refuse them rather than ignore them."""
    for name, value in values.items():
        if value is not None and value is not False and value != [] and value != {}:
            raise Unsupported(name, "is not supported by pocketlm; remove it from the request")


# --------------------------------------------------------------------------- the seeds' /generate and TGI

class TGIParameters(BaseModel):
    """Hugging Face text-generation-inference's ``parameters`` (what ``InferenceClient.text_generation`` sends)."""

    max_new_tokens: int | None = Field(None, description="Tokens to generate (TGI's default: 100).")
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    do_sample: bool | None = Field(None, description="false: greedy. Unset: greedy unless temperature/top_k/top_p/seed is given (as TGI).")
    seed: int | None = None
    stop: list[str] | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    return_full_text: bool | None = Field(None, description="Prepend the prompt to generated_text.")
    details: bool | None = Field(None, description="Add finish_reason, token count, seed and per-token logprobs.")
    top_n_tokens: int | None = Field(None, description="Alternatives per token in details (top_tokens).")
    truncate: int | None = Field(None, description="Keep only the last `truncate` prompt tokens.")
    # Accepted so clients do not break, refused when set: pocketlm does not implement them.
    best_of: int | None = None
    decoder_input_details: bool | None = None
    typical_p: float | None = None
    watermark: bool | None = None
    grammar: dict | None = None
    adapter_id: str | None = None


class GenerateRequest(BaseModel):
    """The seeds' body ``{"prompt": ...}`` with HF-generate-style options, or TGI's ``{"inputs": ..., "parameters": {...}}``."""

    prompt: str | None = Field(None, description="Text to continue; the answer's `response` repeats it (the seeds' contract).")
    max_new_tokens: int | None = Field(None, description="Tokens to generate after the prompt (default 50).")
    max_length: int | None = Field(None, description="Total length in tokens, prompt included (as HF generate(max_length=...)).")
    temperature: float | None = None
    top_k: int | None = Field(None, description="Default 50 when sampling, as HF generate.")
    top_p: float | None = None
    repetition_penalty: float | None = None
    num_return_sequences: int | None = Field(None, description="Several continuations: the answer has `responses` (a list).")
    seed: int | None = None
    stop: Stop = None
    do_sample: bool | None = Field(None, description="false: greedy decoding. Default: sample (as the seeds' GPT-2 pipeline).")
    inputs: str | None = Field(None, description="TGI shape: the prompt. The answer has `generated_text` (continuation only).")
    parameters: TGIParameters | None = None
    stream: bool = Field(False, description="TGI shape only: stream server-sent events as /generate_stream.")

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.prompt is None) == (self.inputs is None):
            raise InvalidParameter("prompt", "give either 'prompt' (pocketlm) or 'inputs' (Hugging Face TGI), not both or neither")
        if self.prompt is not None and (self.parameters is not None or self.stream):
            raise InvalidParameter("parameters", "'parameters' and 'stream' belong to the TGI shape, which uses 'inputs' instead of 'prompt'")
        return self

    @property
    def is_tgi(self) -> bool:
        return self.inputs is not None

    def tgi(self) -> "TGIRequest":
        return TGIRequest(inputs=self.inputs, parameters=self.parameters or TGIParameters(), stream=self.stream)

    def sampling_params(self) -> tuple[SamplingParams, Aliases]:
        sample = self.do_sample is not False
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=(1.0 if self.temperature is None else self.temperature) if sample else 0.0,
            top_k=(50 if self.top_k is None else self.top_k) if sample else 0,
            top_p=1.0 if self.top_p is None else self.top_p,
            repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
            seed=self.seed,
            stop=_stop(self.stop),
            n=1 if self.num_return_sequences is None else self.num_return_sequences,
        )
        return params, {"n": "num_return_sequences"}


class TGIRequest(BaseModel):
    inputs: str
    parameters: TGIParameters = Field(default_factory=TGIParameters)
    stream: bool = False

    def sampling_params(self) -> tuple[SamplingParams, Aliases]:
        p = self.parameters
        _reject_unsupported({
            "parameters.decoder_input_details": p.decoder_input_details, "parameters.watermark": p.watermark,
            "parameters.grammar": p.grammar, "parameters.adapter_id": p.adapter_id,
        })
        if p.best_of not in (None, 1):
            raise Unsupported("parameters.best_of", "is not supported by pocketlm; remove it or set it to 1")
        if p.typical_p not in (None, 1.0):
            raise Unsupported("parameters.typical_p", "is not supported by pocketlm; use top_p or min_p instead")
        sample = p.do_sample if p.do_sample is not None else any(v is not None for v in (p.temperature, p.top_k, p.top_p, p.seed))
        params = SamplingParams(
            max_new_tokens=100 if p.max_new_tokens is None else p.max_new_tokens,
            temperature=(1.0 if p.temperature is None else p.temperature) if sample else 0.0,
            top_k=0 if p.top_k is None else p.top_k,
            top_p=1.0 if p.top_p is None else p.top_p,
            repetition_penalty=1.0 if p.repetition_penalty is None else p.repetition_penalty,
            frequency_penalty=0.0 if p.frequency_penalty is None else p.frequency_penalty,
            seed=p.seed,
            stop=_stop(p.stop),
            logprobs=(p.top_n_tokens or 0) if (p.details or p.top_n_tokens) else None,
        )
        names = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "frequency_penalty", "seed", "stop")
        aliases = {name: f"parameters.{name}" for name in names}
        aliases["logprobs"] = "parameters.top_n_tokens"
        return params, aliases


class GenerateResponse(BaseModel):
    response: str | None = Field(None, description="Prompt + continuation (without num_return_sequences).")
    responses: list[str] | None = Field(None, description="Prompt + continuation, one per sequence (with num_return_sequences).")


class TGIToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool = False


class TGIDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    input_length: int | None = None
    prefill: list[TGIToken] = Field(default_factory=list)
    tokens: list[TGIToken] | None = None
    top_tokens: list[list[TGIToken]] | None = None


class TGIResponse(BaseModel):
    generated_text: str
    details: TGIDetails | None = None


class TGIStreamDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    input_length: int
    seed: int | None = None


class TGIStreamEvent(BaseModel):
    index: int
    token: TGIToken
    top_tokens: list[TGIToken] | None = None
    generated_text: str | None = None
    details: TGIStreamDetails | None = None


# --------------------------------------------------------------------------- OpenAI

class StreamOptions(BaseModel):
    include_usage: bool = False


class _OpenAISampling(BaseModel):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model: str | None = Field(None, description="The served model's id (GET /v1/models); optional here.")
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    user: str | None = None
    # Extensions many OpenAI-compatible servers accept (vLLM, llama.cpp).
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    logit_bias: dict[str, float] | None = None  # refused when non-empty

    def _params(self, max_new_tokens: int | None, logprobs: int | None) -> SamplingParams:
        _reject_unsupported({"logit_bias": self.logit_bias})
        return SamplingParams(
            max_new_tokens=max_new_tokens, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            min_p=self.min_p, repetition_penalty=self.repetition_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, seed=self.seed, stop=_stop(self.stop), n=self.n,
            logprobs=logprobs, ignore_eos=self.ignore_eos,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_OpenAISampling):
    prompt: str | list[int] | list[str] = Field(description="Text, or token ids; a list of strings must hold exactly one.")
    max_tokens: int | None = Field(16, description="Tokens to generate per choice (OpenAI's default: 16).")
    logprobs: int | None = Field(None, description="Return the chosen token's logprob and this many alternatives.")
    echo: bool = Field(False, description="Prepend the prompt to each choice's text.")
    suffix: str | None = None  # refused
    best_of: int | None = None  # refused unless 1

    def prompt_input(self) -> str | list[int]:
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            if len(self.prompt) != 1:
                raise InvalidParameter("prompt", "pocketlm takes one prompt per request; send several requests instead of a list of prompts")
            return self.prompt[0]
        return self.prompt

    def sampling_params(self) -> tuple[SamplingParams, Aliases]:
        _reject_unsupported({"suffix": self.suffix})
        if self.best_of not in (None, 1):
            raise Unsupported("best_of", "is not supported by pocketlm; use n instead")
        if self.echo and self.logprobs is not None:
            raise Unsupported("echo", "cannot be combined with logprobs: pocketlm has no logprobs for prompt tokens")
        return self._params(self.max_tokens, self.logprobs), {"max_new_tokens": "max_tokens"}


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """A chat turn. Roles: system, developer (read as system), user, assistant."""

    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict] | None = None  # refused: no tool calling

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role in ("tool", "function"):
            raise ValueError(f"role '{role}' is not supported: pocketlm does not do tool calling; use system, developer, user or assistant")
        if role not in ("system", "developer", "user", "assistant"):
            raise ValueError(f"unknown role '{role}': use system, developer, user or assistant")
        return role

    def as_template_dict(self, index: int) -> dict:
        if self.tool_calls:
            raise Unsupported(f"messages[{index}].tool_calls", "is not supported: pocketlm does not do tool calling")
        if self.content is None:
            raise InvalidParameter(f"messages[{index}].content", "is required (a string or a list of text parts)")
        text = self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)
        role = "system" if self.role == "developer" else self.role  # OpenAI's newer name for the system prompt
        return {"role": role, "content": text}


class ChatCompletionRequest(_OpenAISampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, description="Deprecated OpenAI name of max_completion_tokens.")
    max_completion_tokens: int | None = Field(None, description="Tokens to generate per choice; default: until the end of the turn.")
    logprobs: bool = False
    top_logprobs: int | None = Field(None, description="Alternatives per token (needs logprobs: true).")
    tools: list[dict] | None = None  # refused when non-empty
    tool_choice: Any = None  # refused
    response_format: dict | None = None  # refused unless {"type": "text"}

    def sampling_params(self) -> tuple[SamplingParams, Aliases]:
        _reject_unsupported({"tools": self.tools, "tool_choice": None if self.tool_choice in (None, "none") else self.tool_choice})
        if self.response_format not in (None, {"type": "text"}):
            raise Unsupported("response_format", "only {\"type\": \"text\"} is supported by pocketlm")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidParameter("top_logprobs", "needs logprobs: true")
        if self.max_tokens is not None and self.max_completion_tokens is not None and self.max_tokens != self.max_completion_tokens:
            raise InvalidParameter("max_completion_tokens", "max_tokens and max_completion_tokens disagree; send only max_completion_tokens")
        limit_name = "max_tokens" if self.max_completion_tokens is None and self.max_tokens is not None else "max_completion_tokens"
        max_new = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        logprobs = (self.top_logprobs or 0) if self.logprobs else None
        return self._params(max_new, logprobs), {"max_new_tokens": limit_name, "logprobs": "top_logprobs"}

    def template_messages(self) -> list[dict]:
        return [message.as_template_dict(i) for i, message in enumerate(self.messages)]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float] = Field(default_factory=list)
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChunk(CompletionResponse):
    pass


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "pocketlm"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --------------------------------------------------------------------------- tokenizer and service routes

class TokenizeRequest(BaseModel):
    text: str
    add_special: bool = Field(True, description="Add BOS where the model expects one and parse special tokens such as <|im_start|>.")


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int


class DetokenizeRequest(BaseModel):
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    text: str


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str = Field(description="ready, or draining after SIGTERM.")
    model: str = Field(description="The served model's id.")
    slots: int = Field(description="Requests decoded together (--slots).")
    n_ctx: int = Field(description="Context of one slot in tokens (prompt + new tokens): what one conversation can hold.")
