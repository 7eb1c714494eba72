"""OpenAI's ``/v1/completions``, ``/v1/chat/completions`` and ``/v1/models`` bodies.

OpenAI's rules: ``max_tokens`` is 16 by default on completions and "until the
turn ends" on chat (where ``max_completion_tokens`` is the newer name),
``top_logprobs`` needs ``logprobs``, and a few fields other servers accept
(top_k, min_p, repetition_penalty, ignore_eos) are extensions. Chat roles are
checked by the engine (``pocketlm.engine.chat``); here they are only listed for /docs.

Structured output: ``response_format`` (json_object, json_schema) on both routes, and two
extensions, ``regex`` and ``grammar`` (engine/constraints.py says their dialects). Chat also
takes ``tools`` (engine/tools.py). Log-probabilities, wherever reported, are the model's own
before any grammar's mask (as vLLM reports them by default): an alternative in
``top_logprobs`` may be a token the grammar did not allow.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from pocketlm.api.errors import Unsupported
from pocketlm.api.wire.common import (
    Aliases,
    Stop,
    model_field,
    reject_unsupported,
    sampling_field,
    stop_tuple,
    unsupported_field,
)
from pocketlm.engine.chat import ROLES
from pocketlm.engine.constraints import MAX_GRAMMAR_BYTES, MAX_SCHEMA_DEPTH, Grammar
from pocketlm.engine.outputs import TokenLogprob, Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.tools import NAME, Call, CallReader, Function, ToolCall, Tools
from pocketlm.errors import InvalidParameter
from pocketlm.wire_types import PROMPT, Integer, RequestBody

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
FinishReason = Literal["stop", "length", "tool_calls"]
_FINISH = (
    "stop: the model ended or a stop string matched; length: the token limit or the context was reached; "
    "tool_calls: the model called functions (chat with tools)."
)
_LIMITS = (
    f"At most {MAX_GRAMMAR_BYTES:,} bytes (a schema as JSON) and {MAX_SCHEMA_DEPTH} nested objects/arrays; "
    "an invalid, unsupported, unsatisfiable or too complex one is a 400 naming this field."
)


def _when(field: str, schema: dict, then: dict) -> dict:
    """JSON Schema: when ``field`` is present and matches ``schema``, the body must match ``then``."""
    return {"if": {"required": [field], "properties": {field: schema}}, "then": then}


_PLAIN_FORMAT = {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"type": {"const": "text"}}}]}
_NOT_IGNORE_EOS = {"ignore_eos": {"const": False}}  # a grammar decides where the output ends
_JSON_FORMAT = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": ["json_object", "json_schema"]}},
}
# One grammar per request: response_format (other than text), regex or grammar; none of them beside tools.
ONE_GRAMMAR = [
    _when(
        "regex",
        {"type": "string"},
        {"properties": {"grammar": {"type": "null"}, "response_format": _PLAIN_FORMAT, **_NOT_IGNORE_EOS}},
    ),
    _when("grammar", {"type": "string"}, {"properties": {"response_format": _PLAIN_FORMAT, **_NOT_IGNORE_EOS}}),
    _when("response_format", _JSON_FORMAT, {"properties": _NOT_IGNORE_EOS}),
]


class JsonSchemaSpec(RequestBody):
    name: str = Field(description="A name for the format (accepted; not used).", max_length=64)
    description: str | None = Field(None, description="What the format is for (accepted; not used).")
    schema_: dict[str, Any] = Field(
        alias="schema",
        description="The JSON Schema the output follows (llguidance's subset: types, properties, required, "
        "enum, const, anyOf/oneOf/allOf, local $ref, string length/pattern/format, number and array bounds; other "
        "keywords are refused, not ignored). The output is one line of JSON laid out as Python's json.dumps. "
        + _LIMITS,
    )
    strict: bool | None = Field(
        None,
        description="true: objects take only the properties they list (additionalProperties false where the schema "
        "says nothing), as OpenAI's strict mode. The output follows the schema either way.",
    )


class TextFormat(RequestBody):
    type: Literal["text"] = Field(description="Plain text: no constraint.")


class JsonObjectFormat(RequestBody):
    type: Literal["json_object"] = Field(description="Any JSON object.")


class JsonSchemaFormat(RequestBody):
    type: Literal["json_schema"] = Field(description="JSON that follows json_schema.schema.")
    json_schema: JsonSchemaSpec = Field(description="The schema.")


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


def format_grammar(fmt: RequestBody | None, field: str) -> Grammar | None:
    """The grammar a response format asks for (None: plain text): chat's, or the Responses API's, whose
    json_schema format holds the schema itself."""
    if isinstance(fmt, JsonSchemaFormat):
        fmt, field = fmt.json_schema, f"{field}.json_schema"
    if isinstance(fmt, JsonSchemaSpec):
        return Grammar.json_schema(fmt.schema_, field=f"{field}.schema", closed=bool(fmt.strict))
    if isinstance(fmt, JsonObjectFormat):
        return Grammar.json_object(field=field)
    return None


class StreamOptions(RequestBody):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage before [DONE].")


class _OpenAISampling(RequestBody):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model: str | None = model_field()
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
    response_format: ResponseFormat | None = Field(
        None, description="text (the default), json_object (any JSON object) or json_schema (JSON that follows it)."
    )
    regex: str | None = Field(
        None,
        min_length=1,
        description="Extension: the whole output matches this regular expression (Rust regex syntax: no "
        f"look-around, no back-references). At most {MAX_GRAMMAR_BYTES:,} bytes.",
        max_length=MAX_GRAMMAR_BYTES,
    )
    grammar: str | None = Field(
        None,
        min_length=1,
        description="Extension: the output follows this context-free grammar, in llguidance's Lark dialect (a "
        "`start` rule; Rust regexes in /.../; `%json {schema}` inline) or in llama.cpp's GBNF (a `root ::=` rule, "
        f"as llama-server takes it; converted to Lark). At most {MAX_GRAMMAR_BYTES:,} bytes.",
        max_length=MAX_GRAMMAR_BYTES,
    )

    def _grammar(self) -> Grammar | None:
        """What the output must follow: one of response_format, regex and grammar."""
        grammars = {
            "response_format": format_grammar(self.response_format, "response_format"),
            "regex": Grammar.regex(self.regex, field="regex") if self.regex is not None else None,
            "grammar": Grammar.lark(self.grammar, field="grammar") if self.grammar is not None else None,
        }
        given = [name for name, grammar in grammars.items() if grammar is not None]
        if len(given) > 1:
            raise InvalidParameter(given[1], f"give only one of {', '.join(given)}: each constrains the whole output")
        return grammars[given[0]] if given else None

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
            grammar=self._grammar(),
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


MAX_PROMPTS = 32  # prompts in one completions request (each is a request of the engine's queue)


class CompletionRequest(_OpenAISampling):
    model_config = ConfigDict(json_schema_extra={"allOf": ONE_GRAMMAR})
    prompt: str | list[Integer] | list[str] | list[list[Integer]] = Field(
        description=f"Text or token ids, or a list of up to {MAX_PROMPTS} of either: each prompt gets n choices, "
        "prompt i's at indices i*n to i*n+n-1.",
        json_schema_extra={PROMPT: MAX_PROMPTS},
    )
    max_tokens: Integer | None = sampling_field(
        "max_new_tokens", DEFAULT_MAX_TOKENS, note=f"OpenAI's default: {DEFAULT_MAX_TOKENS}. 0 with echo scores."
    )
    logprobs: Integer | None = sampling_field(
        "logprobs", note="With echo, the prompt's tokens get them too (the first null), from the same forward pass."
    )
    echo: bool = Field(
        False,
        description="Prepend the prompt to each choice's text; with logprobs, its tokens' log-probabilities "
        "too (a scored prompt is computed whole, never taken from the prefix cache).",
    )
    suffix: str | None = unsupported_field()
    best_of: Integer | None = unsupported_field(
        "1 is accepted; use n instead.", accepted=({"type": "integer", "enum": [1]},)
    )

    def engine_request(self) -> tuple[list[str | list[int]], SamplingParams, Aliases]:
        """The prompts (one or more), the parameters each runs with, and OpenAI's names for them."""
        reject_unsupported({"suffix": self.suffix})
        if self.best_of not in (None, 1):
            raise Unsupported("best_of", "is not supported by pocketlm; use n instead")
        params = self._params(self.max_tokens, self.logprobs)
        if self.echo and self.logprobs is not None:
            params = replace(params, prompt_logprobs=self.logprobs)
        aliases = {"max_new_tokens": "max_tokens", "prompt_logprobs": "logprobs"}
        return self._prompts(), params, aliases

    def _prompts(self) -> list[str | list[int]]:
        prompt = self.prompt
        several = isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], (str, list))
        prompts = list(prompt) if several else [prompt]
        if len(prompts) > MAX_PROMPTS:
            raise InvalidParameter("prompt", f"holds {len(prompts)} prompts; at most {MAX_PROMPTS}: split the request")
        return prompts


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


class FunctionCall(RequestBody):
    name: str = Field(description="The function called.")
    arguments: str = Field(description="Its arguments: a JSON object, as text.")


class MessageToolCall(RequestBody):
    """A call an assistant message made (sent back in the history)."""

    id: str = Field(description="The call's id; the tool message with its result names it.")
    type: Literal["function"] = Field(description="Always function.")
    function: FunctionCall = Field(description="What was called.")


class ChatMessage(RequestBody):
    """A chat turn. Roles: system, developer (read as system), user, assistant, tool (a function's result)."""

    role: str = Field(
        description="Who speaks; developer is read as system; tool: the result of an assistant's tool call.",
        json_schema_extra={"enum": list(ROLES)},
    )
    model_config = ConfigDict(
        json_schema_extra={
            "required": ["role"],
            # content may be null (or left out) only on an assistant message that holds tool calls
            "anyOf": [
                {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
                {"required": ["tool_calls"], "properties": {"tool_calls": {"type": "array", "minItems": 1}}},
            ],
            # and only an assistant message holds tool calls
            "if": {"required": ["tool_calls"], "properties": {"tool_calls": {"type": "array", "minItems": 1}}},
            "then": {"properties": {"role": {"const": "assistant"}}},
        }
    )

    content: str | list[ContentPart] | None = Field(
        None,
        description="The text, or a list of text parts; may be null on an assistant message with tool_calls.",
    )
    name: str | None = Field(None, description="A name for the speaker; accepted and ignored.")
    tool_calls: list[MessageToolCall] | None = Field(None, description="An assistant message's calls.")
    tool_call_id: str | None = Field(None, description="A tool message's call (accepted; results go in order).")

    def as_engine_message(self, index: int) -> dict:
        """The message as the engine's chat template takes it (the engine checks role and content)."""
        content = self.content
        if isinstance(content, list):
            content = [part.model_dump(exclude_none=True) for part in content]
        calls = [ToolCall(c.function.name, c.function.arguments, c.id) for c in self.tool_calls or []]
        return {"role": self.role, "content": content, "tool_calls": calls, "tool_call_id": self.tool_call_id}


class FunctionSpec(RequestBody):
    name: str = Field(description="The function's name: 1-64 letters, digits, _ or -.", pattern=NAME.pattern)
    description: str | None = Field(None, description="What it does: the model reads it.")
    parameters: dict[str, Any] | None = Field(
        None,
        description="Its arguments' JSON Schema (as response_format's: the arguments always follow it). "
        "Default: no arguments. " + _LIMITS,
    )
    strict: bool | None = Field(None, description="Accepted: arguments always follow the schema, strict or not.")


class ChatTool(RequestBody):
    type: Literal["function"] = Field(description="Always function.")
    function: FunctionSpec = Field(description="The function.")


class FunctionName(RequestBody):
    name: str = Field(description="The function's name.")


class NamedToolChoice(RequestBody):
    type: Literal["function"] = Field(description="Always function.")
    function: FunctionName = Field(description="The function the model must call.")


def tools_of(
    functions: list[tuple[str, str | None, dict | None]],
    choice: str | None,
    parallel: bool | None,
    field: str = "tools[{i}].function",
) -> Tools | None:
    """The engine's ``Tools`` from a request's functions (name, description, parameters) and choice; ``field``
    says where function i is in the request (errors name it)."""
    if not functions and choice in (None, "none"):
        return None
    checked = tuple(Function.checked(n, d, p, field.format(i=i)) for i, (n, d, p) in enumerate(functions))
    return Tools(checked, choice or "auto", True if parallel is None else parallel)


class ToolCallOut(BaseModel):
    id: str = Field(description="The call's id, for the tool message that answers it.")
    type: Literal["function"] = Field("function", description="Always function.")
    function: FunctionCall = Field(description="The function and its arguments (JSON that follows its schema).")

    @classmethod
    def of(cls, call: Call, call_id: str) -> ToolCallOut:
        return cls(id=call_id, function=FunctionCall(name=call.name, arguments=call.arguments))


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
                *ONE_GRAMMAR,
                _when(
                    "tools",
                    {"type": "array", "minItems": 1},
                    {"properties": {"regex": {"type": "null"}, "grammar": {"type": "null"}, **_NOT_IGNORE_EOS}},
                ),
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
    tools: list[ChatTool] | None = Field(
        None,
        description="Functions the model may call. Models whose chat template has a <tool_call> format of its own "
        "get them through it; others (SmolLM2, Gemma 3) in a system message describing that format.",
    )
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None,
        description="auto (the default with tools): call or answer (a text answer then never begins with '<'); "
        "required: call; none: answer; or the one function to call.",
    )
    parallel_tool_calls: bool | None = Field(None, description="Allow several calls in one answer (default true).")

    def engine_request(self) -> tuple[list[dict], SamplingParams, Tools | None, Aliases]:
        """The messages for the engine's chat path, its parameters and tools, and OpenAI's names for them."""
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
        choice = self.tool_choice.function.name if isinstance(self.tool_choice, NamedToolChoice) else self.tool_choice
        functions = [(t.function.name, t.function.description, t.function.parameters) for t in self.tools or []]
        return (
            messages,
            self._params(max_new, logprobs),
            tools_of(functions, choice, self.parallel_tool_calls),
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

    tokens: list[str] = Field(default_factory=list, description="Each token's text (with echo: the prompt's first).")
    token_logprobs: list[float | None] = Field(
        default_factory=list, description="Each token's log-probability (null for a prompt's first token)."
    )
    top_logprobs: list[dict[str, float] | None] = Field(
        default_factory=list, description="Most likely alternatives per token: {token: logprob} (null: first token)."
    )
    text_offset: list[int] = Field(default_factory=list, description="Where each token starts in the choice's text.")

    @classmethod
    def of(cls, logprobs: list[TokenLogprob] | tuple[TokenLogprob, ...], text_offset: int) -> CompletionLogprobs:
        out = cls()
        for lp in logprobs:
            out.tokens.append(lp.token)
            out.token_logprobs.append(lp.logprob)
            out.top_logprobs.append({alt.token: alt.logprob for alt in lp.top} if lp.logprob is not None else None)
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


class _WithoutNulls(BaseModel):
    """Leaves out the fields in ``_omitted`` (all: None) when null, as OpenAI leaves them out: the SDK's stream
    accumulator takes a null ``type`` on a call's later delta as its new type, and clients that never asked for
    tools expect no ``tool_calls`` key."""

    _omitted: ClassVar[tuple[str, ...] | None] = None  # None: every field

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler):
        omitted = self._omitted
        return {k: v for k, v in handler(self).items() if v is not None or (omitted is not None and k not in omitted)}


class AssistantMessage(_WithoutNulls):
    _omitted = ("tool_calls",)

    role: Literal["assistant"] = Field("assistant", description="Always assistant.")
    content: str | None = Field(None, description="The answer (null when the model called functions).")
    tool_calls: list[ToolCallOut] | None = Field(None, description="The functions the model called (with tools).")


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def finish_reason(reason: str, reader: CallReader | None) -> str:
    """The engine's reason, or tool_calls when the choice called functions and ended by itself."""
    return "tool_calls" if reader is not None and reader.calls and reason == "stop" else reason


def assistant_message(text: str, reason: str, tools: bool) -> tuple[AssistantMessage, str]:
    """A finished choice's message and finish reason: its text, or the calls it made (with tools)."""
    if not tools:
        return AssistantMessage(content=text), reason
    reader = CallReader()
    reader.feed(text)
    reader.finish()
    calls = [ToolCallOut.of(call, call_id()) for call in reader.calls]
    return AssistantMessage(content=reader.text or None, tool_calls=calls or None), finish_reason(reason, reader)


class ChatChoice(_Choice):
    message: AssistantMessage = Field(description="The assistant's answer.")
    logprobs: ChatLogprobs | None = Field(None, description="With logprobs: per-token log-probabilities.")


class ChatCompletionResponse(_Envelope):
    object: Literal["chat.completion"] = Field("chat.completion", description="Always chat.completion.")
    choices: list[ChatChoice] = Field(description="One per sample (n).")
    usage: UsageInfo = Field(description="Token counts.")


class FunctionCallDelta(_WithoutNulls):
    name: str | None = Field(None, description="On the call's first delta.")
    arguments: str = Field("", description="The next piece of the arguments' JSON text.")


class ToolCallDelta(_WithoutNulls):
    """What a chunk adds to a call: id, type and name on the call's first delta, then pieces of its arguments."""

    index: int = Field(description="Which call of the choice.")
    id: str | None = Field(None, description="On the call's first delta.")
    type: Literal["function"] | None = Field(None, description="On the call's first delta.")
    function: FunctionCallDelta = Field(description="The name (first delta) and a piece of the arguments.")


class ChatDelta(_WithoutNulls):
    _omitted = ("tool_calls",)

    role: Literal["assistant"] | None = Field(None, description="On each choice's first chunk only.")
    content: str | None = Field(None, description="Text added by this chunk.")
    tool_calls: list[ToolCallDelta] | None = Field(None, description="What this chunk adds to the choice's calls.")


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
