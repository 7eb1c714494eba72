"""Ollama's ``/api/generate``, ``/api/chat``, ``/api/tags``, ``/api/ps``, ``/api/show`` and ``/api/version`` bodies.

Ollama's rules: ``stream`` is on unless the body says ``false`` (one JSON object per line,
``application/x-ndjson``); sampling goes in ``options`` under Ollama's names (``num_predict`` is
``max_new_tokens``, ``repeat_penalty`` is ``repetition_penalty``) with Ollama's defaults (temperature
0.8, top_k 40, top_p 0.9); ``keep_alive`` is a duration (``pocketlm.service.quantities``); a generate
request with no prompt, or a chat with no messages, only loads the model (or unloads it, with
``keep_alive: 0``). ``/api/generate`` renders its prompt with the model's chat template, as a user turn
after ``system``, unless ``raw``. What pocketlm does not do is refused by name, never ignored
(docs/serving.md has the table); the options that only say how Ollama runs a model on its hardware
(``num_thread``, ``num_gpu``, ...) are accepted and have no effect: the server's flags decide that here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pocketlm.api.errors import Unsupported
from pocketlm.api.wire.common import Aliases, Stop, reject_unsupported, sampling_field, stop_tuple, unsupported_field
from pocketlm.engine.chat import ROLES
from pocketlm.engine.constraints import Grammar
from pocketlm.engine.params import SamplingParams
from pocketlm.errors import InvalidParameter
from pocketlm.service.quantities import DURATION_PATTERN, keep_alive_seconds
from pocketlm.wire_types import CONTEXT, SAMPLING, SERVED_MODEL, Integer, RequestBody

# Ollama's defaults for what a request's options leave out (its documented Modelfile defaults).
DEFAULT_TEMPERATURE, DEFAULT_TOP_K, DEFAULT_TOP_P = 0.8, 40, 0.9
UNLIMITED = (-1, -2)  # num_predict: -1 as many as the limit allows, -2 until the context is full

_HARDWARE = "How Ollama runs the model on its hardware: accepted, no effect (pocketlm's server flags decide)."


def _num_predict(schema: dict) -> None:
    schema.clear()
    schema.update(
        description="Tokens to generate at most (0: none, the prompt is only read); -1 or -2: until the end of "
        "the answer or the context (capped by --max-new-tokens).",
        anyOf=[
            {"type": "null"},
            {"type": "integer", "enum": list(UNLIMITED)},
            {"type": "integer", SAMPLING: "max_new_tokens"},
        ],
    )


class OllamaOptions(RequestBody):
    """Ollama's ``options``: the sampling parameters under their Ollama names, and its runner settings."""

    model_config = ConfigDict(strict=True, extra="forbid")  # an option pocketlm does not know is refused

    num_predict: Integer | None = Field(None, json_schema_extra=_num_predict)
    num_ctx: Integer | None = Field(
        None,
        description="Context the request needs, in tokens: at most what the server gives each request (--n-ctx, "
        "capped by the model's training; /api/show's parameters say it). It cannot be raised per request.",
        json_schema_extra={CONTEXT: True},
    )
    temperature: float | None = sampling_field("temperature", note=f"Ollama's default: {DEFAULT_TEMPERATURE}.")
    top_k: Integer | None = sampling_field("top_k", note=f"Ollama's default: {DEFAULT_TOP_K}.")
    top_p: float | None = sampling_field("top_p", note=f"Ollama's default: {DEFAULT_TOP_P}.")
    min_p: float | None = sampling_field("min_p")
    repeat_penalty: float | None = sampling_field(
        "repetition_penalty", note="Over the whole prompt and answer (Ollama counts the last repeat_last_n tokens)."
    )
    presence_penalty: float | None = sampling_field("presence_penalty")
    frequency_penalty: float | None = sampling_field("frequency_penalty")
    seed: Integer | None = sampling_field("seed")
    stop: Stop = sampling_field("stop")
    # How Ollama loads and runs a model: the server's own flags decide these here.
    numa: bool | None = Field(None, description=_HARDWARE)
    num_batch: Integer | None = Field(None, description=_HARDWARE)
    num_gpu: Integer | None = Field(None, description=_HARDWARE)
    main_gpu: Integer | None = Field(None, description=_HARDWARE)
    low_vram: bool | None = Field(None, description=_HARDWARE)
    vocab_only: bool | None = Field(None, description=_HARDWARE)
    use_mmap: bool | None = Field(None, description=_HARDWARE)
    use_mlock: bool | None = Field(None, description=_HARDWARE)
    num_thread: Integer | None = Field(None, description=_HARDWARE)
    # Samplers pocketlm does not have: they would change the text, so they are refused rather than ignored.
    num_keep: Integer | None = unsupported_field()
    typical_p: float | None = unsupported_field()
    repeat_last_n: Integer | None = unsupported_field("repeat_penalty counts the whole prompt and answer.")
    tfs_z: float | None = unsupported_field()
    mirostat: Integer | None = unsupported_field("0 (off) is accepted.", accepted=({"type": "integer", "enum": [0]},))
    mirostat_tau: float | None = unsupported_field()
    mirostat_eta: float | None = unsupported_field()
    penalize_newline: bool | None = unsupported_field(
        "false (no newline penalty) is accepted.", accepted=({"type": "boolean", "enum": [False]},)
    )

    def params(self, n_ctx: int) -> SamplingParams:
        """The engine's parameters (Ollama's defaults where left out); ``n_ctx``: the served model's context."""
        reject_unsupported(
            {
                f"options.{name}": getattr(self, name)
                for name in ("num_keep", "typical_p", "repeat_last_n", "tfs_z", "mirostat_tau", "mirostat_eta")
            }
            | {"options.penalize_newline": self.penalize_newline}
        )
        if self.mirostat not in (None, 0):
            raise Unsupported("options.mirostat", "is not supported by pocketlm; remove it or send 0 (off)")
        if self.num_ctx is not None and not 0 < self.num_ctx <= n_ctx:
            raise InvalidParameter(
                "options.num_ctx",
                f"this model gives each request {n_ctx} tokens of context (--n-ctx); ask for at most {n_ctx}, "
                "or leave it out",
            )
        if self.num_predict is not None and self.num_predict not in UNLIMITED and self.num_predict < 0:
            raise InvalidParameter("options.num_predict", f"must be >= 0, or -1 or -2; got {self.num_predict}")
        return SamplingParams(
            max_new_tokens=None if self.num_predict in (None, *UNLIMITED) else self.num_predict,
            temperature=DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            top_k=DEFAULT_TOP_K if self.top_k is None else self.top_k,
            top_p=DEFAULT_TOP_P if self.top_p is None else self.top_p,
            min_p=self.min_p or 0.0,
            repetition_penalty=1.0 if self.repeat_penalty is None else self.repeat_penalty,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            seed=self.seed,
            stop=stop_tuple(self.stop),
        )


# Engine parameter -> Ollama's name, for errors.
ALIASES: Aliases = {
    "max_new_tokens": "options.num_predict",
    "temperature": "options.temperature",
    "top_k": "options.top_k",
    "top_p": "options.top_p",
    "min_p": "options.min_p",
    "repetition_penalty": "options.repeat_penalty",
    "presence_penalty": "options.presence_penalty",
    "frequency_penalty": "options.frequency_penalty",
    "seed": "options.seed",
    "stop": "options.stop",
}


def _keep_alive_schema(schema: dict) -> None:
    schema.clear()
    schema.update(
        description="How long the model stays loaded after this request: seconds, or a duration such as '5m' or "
        "'1h30m'; negative: forever; 0: unload it as soon as its requests are done. It becomes the model's "
        "keep-alive (default: --keep-alive).",
        anyOf=[{"type": "null"}, {"type": "number"}, {"type": "string", "pattern": DURATION_PATTERN}],
    )


class _OllamaRequest(RequestBody):
    model: str = Field(
        min_length=1,
        description="A served model's id (GET /api/tags); 'name:latest' is 'name'.",
        json_schema_extra={SERVED_MODEL: True},
    )
    stream: bool = Field(True, description="One JSON object per line as the answer is made (the default), or one.")
    options: OllamaOptions | None = Field(None, description="Sampling, under Ollama's names.")
    keep_alive: float | str | None = Field(None, json_schema_extra=_keep_alive_schema)
    format: Literal["", "json"] | dict[str, Any] | None = Field(
        None,
        description="json: the answer is a JSON object; a JSON schema: the answer follows it (llguidance's subset, "
        "as response_format's json_schema on /v1/chat/completions; objects take only the properties they list); "
        "empty or none: plain text.",
    )
    think: bool | None = unsupported_field(
        "false is accepted: the served models do not think aloud.", accepted=({"type": "boolean", "enum": [False]},)
    )
    logprobs: bool | None = unsupported_field(
        "false is accepted; /v1/chat/completions returns log-probabilities.",
        accepted=({"type": "boolean", "enum": [False]},),
    )
    top_logprobs: Integer | None = unsupported_field()

    def keep_alive_seconds(self) -> float | None:
        return None if self.keep_alive is None else keep_alive_seconds(self.keep_alive)

    def sampling(self, n_ctx: int) -> SamplingParams:
        reject_unsupported({"think": self.think, "logprobs": self.logprobs, "top_logprobs": self.top_logprobs})
        return replace((self.options or OllamaOptions()).params(n_ctx), grammar=self._grammar())

    def _grammar(self) -> Grammar | None:
        """What ``format`` asks the answer to follow (as Ollama does, an object's unlisted keys are not written)."""
        if self.format == "json":
            return Grammar.json_object(field="format")
        if isinstance(self.format, dict):  # {} too: an empty schema still asks for JSON
            return Grammar.json_schema(self.format, field="format", closed=True)
        return None


class OllamaGenerateRequest(_OllamaRequest):
    model_config = ConfigDict(  # a raw prompt has no template to put a system message in
        json_schema_extra={
            "if": {"required": ["raw"], "properties": {"raw": {"const": True}}},
            "then": {"properties": {"system": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}]}}},
        }
    )

    prompt: str | None = Field(
        None, description="The text to answer; none or empty: only load the model (unload it, with keep_alive 0)."
    )
    system: str | None = Field(None, description="A system message before the prompt (not with raw).")
    raw: bool = Field(False, description="Continue the prompt as it is, without the model's chat template.")
    suffix: str | None = unsupported_field(
        "An empty suffix is accepted.", accepted=({"type": "string", "maxLength": 0},)
    )
    template: str | None = unsupported_field("The model's own chat template is used.")
    context: list[Integer] | None = unsupported_field(
        "Deprecated by Ollama; send the conversation to /api/chat.", accepted=({"type": "array", "maxItems": 0},)
    )
    images: list[str] | None = unsupported_field(
        "The served models read text only.", accepted=({"type": "array", "maxItems": 0},)
    )

    def checked(self) -> None:
        reject_unsupported(
            {"suffix": self.suffix or None, "template": self.template, "context": self.context, "images": self.images}
        )
        if self.raw and self.system:
            raise InvalidParameter("system", "a raw prompt has no template to put a system message in; drop one")

    def messages(self) -> list[dict]:
        """The prompt as chat turns, for the model's template."""
        return [
            *([{"role": "system", "content": self.system}] if self.system else []),
            {"role": "user", "content": self.prompt},
        ]


class OllamaToolCall(RequestBody):
    function: dict = Field(description="The call's name and arguments.")


class OllamaMessage(RequestBody):
    role: str = Field(
        description="system, user or assistant (developer is read as system); tool is refused (no tool calling).",
        json_schema_extra={"enum": list(ROLES)},
    )
    content: str = Field("", description="The text.")
    images: list[str] | None = unsupported_field(
        "The served models read text only.", accepted=({"type": "array", "maxItems": 0},)
    )
    tool_calls: list[OllamaToolCall] | None = unsupported_field(
        "pocketlm does not do tool calling.", accepted=({"type": "array", "maxItems": 0},)
    )
    thinking: str | None = Field(None, description="Accepted and left out of the prompt.")
    tool_name: str | None = unsupported_field()

    def as_engine_message(self, index: int) -> dict:
        where = f"messages[{index}]"
        if self.images:
            raise Unsupported(f"{where}.images", "is not supported: the served models read text only")
        if self.tool_calls or self.tool_name:
            raise Unsupported(f"{where}.tool_calls", "is not supported: pocketlm does not do tool calling")
        return {"role": self.role, "content": self.content}


class OllamaChatRequest(_OllamaRequest):
    messages: list[OllamaMessage] = Field(
        default_factory=list,
        description="The conversation so far; none: only load the model (unload it, with keep_alive 0).",
    )
    tools: list[dict] | None = unsupported_field(
        "An empty list is accepted; pocketlm does not do tool calling.", accepted=({"type": "array", "maxItems": 0},)
    )

    def engine_messages(self) -> list[dict]:
        reject_unsupported({"tools": self.tools})
        return [m.as_engine_message(i) for i, m in enumerate(self.messages)]


class OllamaShowRequest(RequestBody):
    model: str = Field(min_length=1, description="A served model's id.", json_schema_extra={SERVED_MODEL: True})
    verbose: bool = Field(False, description="Accepted; the answer is the same.")


# --------------------------------------------------------------------------- responses

DoneReason = Literal["stop", "length", "load", "unload"]


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC, as Ollama writes its times."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat().replace("+00:00", "Z")


class _Answer(BaseModel):
    model: str = Field(description="The model that answered.")
    created_at: str = Field(description="When this object was made (RFC 3339).")
    done: bool = Field(description="True on the last object of an answer.")
    done_reason: DoneReason | None = Field(
        None,
        description="On the last object: stop (the model ended or a stop string matched), length (num_predict "
        "or the context), load or unload (a request that only loaded or unloaded the model).",
    )
    total_duration: int | None = Field(None, description="Nanoseconds from the request to its end.")
    load_duration: int | None = Field(None, description="Nanoseconds spent waiting for the model to load.")
    prompt_eval_count: int | None = Field(None, description="Prompt tokens.")
    prompt_eval_duration: int | None = Field(None, description="Nanoseconds until the first token.")
    eval_count: int | None = Field(None, description="Tokens generated.")
    eval_duration: int | None = Field(None, description="Nanoseconds from the first token to the last.")


class OllamaGenerateResponse(_Answer):
    response: str = Field(description="Text: this object's piece when streaming, else the whole answer.")


class OllamaAssistantMessage(BaseModel):
    role: Literal["assistant"] = Field("assistant", description="Always assistant.")
    content: str = Field(description="Text: this object's piece when streaming, else the whole answer.")


class OllamaChatResponse(_Answer):
    message: OllamaAssistantMessage = Field(description="The assistant's answer, or its next piece.")


class OllamaDetails(BaseModel):
    parent_model: str = Field("", description="Always empty.")
    format: str = Field(description="gguf, or safetensors for a Hugging Face directory.")
    family: str = Field(description="The architecture: llama, gpt2, gemma3, ...")
    families: list[str] = Field(description="The family alone.")
    parameter_size: str = Field(description="Parameters, in words: 135M, 1.2B.")
    quantization_level: str = Field(description="How the weights are stored: Q8_0, F16, ...")


class OllamaTag(BaseModel):
    name: str = Field(description="The model's id.")
    model: str = Field(description="The model's id.")
    modified_at: str = Field(description="When its file last changed (RFC 3339).")
    size: int = Field(description="Bytes of its weights on disk.")
    digest: str = Field(description="A SHA-256 of its file's path, size and time: it changes when the file does.")
    details: OllamaDetails = Field(description="What it is.")


class OllamaTags(BaseModel):
    models: list[OllamaTag] = Field(description="Every model this server serves, loaded or not.")


class OllamaRunning(OllamaTag):
    expires_at: str = Field(description="When its keep-alive ends (RFC 3339); far in the future: never.")
    size_vram: int = Field(0, description="Always 0: pocketlm runs on the CPU.")
    context_length: int = Field(description="Tokens of context each request gets.")


class OllamaPs(BaseModel):
    models: list[OllamaRunning] = Field(description="The models loaded now.")


class OllamaShow(BaseModel):
    modelfile: str = Field(description="Where the model comes from, as a Modelfile would say it.")
    parameters: str = Field(description="What the server runs it with, one `name value` per line.")
    template: str = Field(description="Its chat template (Jinja, as the model ships it), or empty.")
    details: OllamaDetails = Field(description="What it is.")
    model_info: dict[str, Any] = Field(description="Its metadata (a GGUF's scalar keys, or the main ones).")
    capabilities: list[str] = Field(description="completion: it writes text.")
    modified_at: str = Field(description="When its file last changed (RFC 3339).")


class OllamaVersion(BaseModel):
    version: str = Field(description="pocketlm's version.")


class OllamaError(BaseModel):
    """Every error on Ollama's routes, in Ollama's shape."""

    error: str = Field(description="What was wrong and how to fix it.")
