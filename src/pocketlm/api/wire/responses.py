"""OpenAI's Responses API (``POST /v1/responses``): its request, its response and its stream's events.

The same engine path as chat: the input items become chat messages (``instructions`` a system message
first; ``function_call`` items an assistant message's calls; ``function_call_output`` items tool
messages), ``text.format`` a grammar, function tools the engine's ``Tools``. pocketlm keeps nothing
between requests: ``store`` is accepted and changes nothing (no response can be fetched later), and
``previous_response_id`` is refused (send the conversation in ``input``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from pocketlm.api.wire.common import Aliases, model_field, reject_unsupported, sampling_field, unsupported_field
from pocketlm.api.wire.openai import (
    FunctionSpec,
    JsonObjectFormat,
    JsonSchemaSpec,
    TextFormat,
    format_grammar,
    tools_of,
)
from pocketlm.engine.outputs import Usage
from pocketlm.engine.params import SamplingParams
from pocketlm.engine.tools import Call, CallReader, ToolCall, Tools
from pocketlm.errors import InvalidParameter
from pocketlm.wire_types import Integer, RequestBody

# ---------------------------------------------------------------- request


class InputText(RequestBody):
    type: Literal["input_text", "output_text"] = Field(description="Text (output_text: an earlier answer's).")
    text: str = Field(description="The text.")


class MessageItem(RequestBody):
    type: Literal["message"] = Field("message", description="A message (the default item).")
    role: Literal["user", "system", "developer", "assistant"] = Field(description="Who speaks.")
    content: str | list[InputText] = Field(description="The text, or text parts.")


class FunctionCallItem(RequestBody):
    type: Literal["function_call"] = Field(description="A call the model made earlier.")
    call_id: str = Field(description="The call's id.")
    name: str = Field(description="The function called.")
    arguments: str = Field(description="Its arguments, as JSON text.")
    id: str | None = Field(None, description="The item's id (accepted).")
    status: str | None = Field(None, description="Accepted and ignored.")


class FunctionCallOutputItem(RequestBody):
    type: Literal["function_call_output"] = Field(description="A call's result.")
    call_id: str = Field(description="The call it answers.")
    output: str = Field(description="The result, as text.")


class JsonSchemaTextFormat(JsonSchemaSpec):
    type: Literal["json_schema"] = Field(description="JSON that follows schema.")


class TextConfig(RequestBody):
    format: TextFormat | JsonObjectFormat | JsonSchemaTextFormat | None = Field(
        None, discriminator="type", description="text (the default), json_object or json_schema."
    )


class FunctionTool(FunctionSpec):
    type: Literal["function"] = Field(description="Always function (the only kind pocketlm runs).")


class NamedFunction(RequestBody):
    type: Literal["function"] = Field(description="Always function.")
    name: str = Field(description="The function the model must call.")


def _items_not_empty(schema: dict) -> None:
    for branch in schema["anyOf"]:
        if branch.get("type") == "array":
            branch["minItems"] = 1


class ResponsesRequest(RequestBody):
    model: str | None = model_field()
    input: str | list[MessageItem | FunctionCallItem | FunctionCallOutputItem] = Field(
        description="A user message as text, or the conversation as items: messages, the model's earlier function "
        "calls and their outputs.",
        json_schema_extra=_items_not_empty,
    )
    instructions: str | None = Field(None, description="A system message put before the input.")
    max_output_tokens: Integer | None = sampling_field("max_new_tokens", note="Default: until the answer ends.")
    temperature: float = sampling_field("temperature", 1.0)
    top_p: float = sampling_field("top_p", 1.0)
    stream: bool = Field(False, description="Stream typed server-sent events (response.output_text.delta, ...).")
    text: TextConfig | None = Field(None, description="The output's format (text.format).")
    tools: list[FunctionTool] | None = Field(None, description="Functions the model may call (as chat's tools).")
    tool_choice: Literal["none", "auto", "required"] | NamedFunction | None = Field(
        None, description="auto (the default with tools), required, none, or the one function to call."
    )
    parallel_tool_calls: bool | None = Field(None, description="Allow several calls in one answer (default true).")
    store: bool | None = Field(
        None, description="Accepted and ignored: pocketlm is stateless and keeps no response to fetch later."
    )
    previous_response_id: str | None = unsupported_field("pocketlm keeps no responses: send the conversation in input.")
    metadata: dict[str, str] | None = Field(None, description="Echoed back in the response.")
    user: str | None = Field(None, description="Accepted and ignored.")

    def engine_request(self) -> tuple[list[dict], SamplingParams, Tools | None, Aliases]:
        """The chat messages, parameters and tools for the engine's chat path, and this API's names for them."""
        reject_unsupported({"previous_response_id": self.previous_response_id})
        grammar = format_grammar(self.text.format if self.text else None, "text.format")
        params = SamplingParams(
            max_new_tokens=self.max_output_tokens, temperature=self.temperature, top_p=self.top_p, grammar=grammar
        )
        choice = self.tool_choice.name if isinstance(self.tool_choice, NamedFunction) else self.tool_choice
        functions = [(t.name, t.description, t.parameters) for t in self.tools or []]
        tools = tools_of(functions, choice, self.parallel_tool_calls, field="tools[{i}]")
        return self._messages(), params, tools, {"max_new_tokens": "max_output_tokens", "prompt": "input"}

    def _messages(self) -> list[dict]:
        messages = [{"role": "system", "content": self.instructions}] if self.instructions else []
        items = [MessageItem(role="user", content=self.input)] if isinstance(self.input, str) else self.input
        for item in items:
            if isinstance(item, MessageItem):
                content = item.content if isinstance(item.content, str) else "".join(p.text for p in item.content)
                messages.append({"role": item.role, "content": content})
            elif isinstance(item, FunctionCallItem):
                call = ToolCall(item.name, item.arguments, item.call_id)
                last = messages[-1] if messages else None
                if last and last["role"] == "assistant" and last.get("tool_calls") is not None:
                    last["tool_calls"].append(call)  # a model's parallel calls are one assistant turn
                else:
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            else:
                messages.append({"role": "tool", "content": item.output, "tool_call_id": item.call_id})
        if not messages:
            raise InvalidParameter("input", "is empty: give at least one message")
        return messages


# ---------------------------------------------------------------- response


class OutputText(BaseModel):
    type: Literal["output_text"] = Field("output_text", description="Always output_text.")
    text: str = Field(description="The answer's text.")
    annotations: list = Field(default_factory=list, description="Always empty.")


class OutputMessage(BaseModel):
    id: str = Field(description="The item's id.")
    type: Literal["message"] = Field("message", description="Always message: the model's answer.")
    role: Literal["assistant"] = Field("assistant", description="Always assistant.")
    status: Literal["in_progress", "completed", "incomplete"] = Field(
        description="incomplete: cut at max_output_tokens."
    )
    content: list[OutputText] = Field(description="One output_text part.")


class OutputFunctionCall(BaseModel):
    id: str = Field(description="The item's id.")
    type: Literal["function_call"] = Field("function_call", description="Always function_call.")
    call_id: str = Field(description="The call's id: a function_call_output item with the result names it.")
    name: str = Field(description="The function called.")
    arguments: str = Field(description="Its arguments: JSON that follows the function's parameters schema.")
    status: Literal["in_progress", "completed", "incomplete"] = Field(
        description="incomplete: cut at max_output_tokens."
    )


class InputTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Input tokens whose keys/values were kept from an earlier request.")
    cache_write_tokens: int = Field(0, description="Always 0.")


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = Field(0, description="Always 0.")


class ResponseUsage(BaseModel):
    input_tokens: int = Field(description="Tokens of the prompt (instructions and input, as the template renders).")
    input_tokens_details: InputTokensDetails = Field(description="How the input was processed.")
    output_tokens: int = Field(description="Tokens generated.")
    output_tokens_details: OutputTokensDetails = Field(
        default_factory=OutputTokensDetails, description="Always no reasoning tokens."
    )
    total_tokens: int = Field(description="input_tokens + output_tokens.")

    @classmethod
    def of(cls, usage: Usage) -> ResponseUsage:
        return cls(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens),
            output_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"] = Field(description="Why the response is incomplete.")


class Response(BaseModel):
    """A response (whole, or as a stream's lifecycle events carry it)."""

    id: str = Field(description="A unique id (nothing can be fetched with it: pocketlm stores nothing).")
    object: Literal["response"] = Field("response", description="Always response.")
    created_at: int = Field(description="Unix time of creation.")
    status: Literal["in_progress", "completed", "incomplete"] = Field(
        description="completed, or incomplete when cut at max_output_tokens (in_progress: in a stream's first events)."
    )
    model: str = Field(description="The served model's id.")
    output: list[OutputMessage | OutputFunctionCall] = Field(description="The answer, or the calls the model made.")
    usage: ResponseUsage | None = Field(None, description="Token counts (null until the response is done).")
    incomplete_details: IncompleteDetails | None = Field(None, description="Why it is incomplete, if it is.")
    error: None = Field(None, description="Always null: errors are HTTP errors or a stream's error event.")
    instructions: str | None = Field(None, description="As asked.")
    max_output_tokens: int | None = Field(None, description="As asked.")
    temperature: float = Field(description="As asked.")
    top_p: float = Field(description="As asked.")
    tools: list[dict] = Field(default_factory=list, description="As asked.")
    tool_choice: Any = Field("auto", description="As asked.")
    parallel_tool_calls: bool = Field(True, description="As asked.")
    text: dict = Field(default_factory=lambda: {"format": {"type": "text"}}, description="As asked.")
    store: bool = Field(False, description="Always false: nothing is kept.")
    metadata: dict[str, str] = Field(default_factory=dict, description="As asked.")

    @classmethod
    def start(cls, body: ResponsesRequest, model: str) -> Response:
        """The response as it begins: no output yet; what the request asked for, echoed as OpenAI echoes it."""
        return cls(
            id=f"resp_{uuid.uuid4().hex}",
            created_at=int(time.time()),
            status="in_progress",
            model=model,
            output=[],
            instructions=body.instructions,
            max_output_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            tools=[t.model_dump(exclude_none=True) for t in body.tools or []],
            tool_choice=body.tool_choice.model_dump()
            if isinstance(body.tool_choice, BaseModel)
            else body.tool_choice or "auto",
            parallel_tool_calls=body.parallel_tool_calls is not False,
            text={"format": body.text.format.model_dump(by_alias=True)}
            if body.text and body.text.format
            else {"format": {"type": "text"}},
            metadata=body.metadata or {},
        )

    def finish(self, reason: str, usage: Usage) -> None:
        self.usage = ResponseUsage.of(usage)
        self.status = "incomplete" if reason == "length" else "completed"
        self.incomplete_details = IncompleteDetails(reason="max_output_tokens") if reason == "length" else None


def output_items(text: str, reason: str, tools: bool) -> list[OutputMessage | OutputFunctionCall]:
    """A finished answer as output items: its message, or the calls it made."""
    status = "incomplete" if reason == "length" else "completed"
    if tools:
        reader = CallReader()
        reader.feed(text)
        reader.finish()
        if reader.calls:
            return [function_call_item(call, status) for call in reader.calls]
        text = reader.text
    return [message_item(text, status)]


def message_item(text: str, status: str, item_id: str | None = None) -> OutputMessage:
    return OutputMessage(id=item_id or f"msg_{uuid.uuid4().hex}", status=status, content=[OutputText(text=text)])


def function_call_item(call: Call, status: str, item_id: str | None = None, call_id: str | None = None):
    return OutputFunctionCall(
        id=item_id or f"fc_{uuid.uuid4().hex}",
        call_id=call_id or f"call_{uuid.uuid4().hex[:24]}",
        name=call.name,
        arguments=call.arguments,
        status=status,
    )
