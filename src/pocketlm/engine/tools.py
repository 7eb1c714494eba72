"""Tool calling: the functions a model may call, the grammar its calls follow, and reading them back.

A model calls a function by writing, in place of an answer,

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

once per call (parallel calls one after another, a newline between them). This is the layout of the
templates that have a tool format of their own written with ``<tool_call>`` tags (Qwen 2.5 and 3,
Hermes, SmolLM3): for them the chat template itself lists the functions and renders past calls and
results (engine/chat.py). Every other model (SmolLM2 and Gemma 3 as pocketlm ships them have no tool
format) gets the same layout described in a system message (``instructions``), its past calls written
back in that layout and each function's result as a user turn in ``<tool_response>`` tags.

Calls are grammar-constrained (engine/constraints.py): the name is one of the functions and the
arguments follow its JSON schema, so they always parse and validate. With ``tool_choice`` "auto" the
model may answer in text instead, which then cannot begin with "<" (where a call begins). ``CallReader``
reads the output back, whole or as it streams, into text or calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pocketlm.engine.constraints import JSON_OPTIONS, Grammar
from pocketlm.errors import InvalidParameter

OPEN, CLOSE = "<tool_call>", "</tool_call>"
TEXT = "/[^<](.|\\n)*/"  # a text answer, when a call could come instead: anything that does not begin like one
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names: no escaping anywhere


@dataclass(frozen=True)
class Function:
    name: str
    description: str
    parameters: str  # its arguments' JSON schema, as compact JSON (hashable; key order kept)
    field: str  # where the request gave it ("tools[0].function"): errors about it name its fields

    @classmethod
    def checked(cls, name, description, parameters, field: str) -> Function:
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidParameter(f"{field}.name", "must be 1-64 letters, digits, underscores or dashes")
        schema = {"type": "object", "properties": {}} if parameters is None else parameters
        grammar = Grammar.json_schema(schema, field=f"{field}.parameters", closed=True)  # within bounds
        return cls(name, description or "", grammar.source, field)

    @property
    def schema(self) -> dict:
        return json.loads(self.parameters)

    def as_dict(self) -> dict:
        """As OpenAI (and chat templates that list tools) write a function."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.schema},
        }


@dataclass(frozen=True)
class Tools:
    """The functions a chat request offers, and how the model may use them."""

    functions: tuple[Function, ...]
    choice: str = "auto"  # "auto" | "required" | "none" | the one function's name it must call
    parallel: bool = True  # several calls in one answer

    def __post_init__(self):
        names = [f.name for f in self.functions]
        if len(set(names)) != len(names):
            raise InvalidParameter("tools", "function names must be unique")
        if self.choice not in ("auto", "required", "none") and self.choice not in names:
            raise InvalidParameter("tool_choice", f"names no function of tools: {self.choice!r}")
        if self.choice != "none" and not self.functions:
            raise InvalidParameter("tool_choice", f"{self.choice!r} needs at least one function in tools")

    @property
    def offered(self) -> tuple[Function, ...]:
        """What the prompt lists: nothing with tool_choice "none" (the model is not to call)."""
        return () if self.choice == "none" else self.functions

    def grammars(self, answer: Grammar | None) -> list[Grammar]:
        """Each function's arguments schema alone (so that an error names its field), then the grammar of the
        whole output: calls, or with "auto" also a text answer (following ``answer``, a JSON schema, if given).
        With "none", only the answer: text that does not begin with "<", so that the model writes no call (nor
        the tags of a result) in text."""
        if self.choice == "none":
            return [answer or Grammar.lark(f"start: {TEXT}", field="tools")]
        called = [f for f in self.functions if self.choice in ("auto", "required", f.name)]
        schemas = [Grammar("json_schema", f.parameters, f"{f.field}.parameters") for f in called]
        return [*schemas, self._output(called, answer)]

    def _output(self, called: list[Function], answer: Grammar | None) -> Grammar:
        calls = {
            "x-guidance": JSON_OPTIONS,
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": f.name}, "arguments": f.schema},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
                for f in called
            ],
        }
        several = self.parallel and self.choice in ("auto", "required")
        rules = [
            "calls: call" + ' ("\\n" call)*' if several else "calls: call",
            f'call: "{OPEN}\\n" body "\\n{CLOSE}"',
            f"body: %json {json.dumps(calls, ensure_ascii=False)}",
        ]
        if self.choice == "auto":
            if answer is None:
                rules[:0] = [f"start: {TEXT} | calls"]
            else:  # a JSON answer ("{...}") never starts like a call
                text = json.dumps({"x-guidance": JSON_OPTIONS, **json.loads(answer.source)}, ensure_ascii=False)
                rules[:0] = ["start: answer | calls", f"answer: %json {text}"]
        else:
            rules.insert(0, "start: calls")
        return Grammar.lark("\n".join(rules), field="tools")

    def constrained(self, params_grammar: Grammar | None) -> Grammar:
        """The grammar a request's output follows once its tools are counted (the last of ``grammars``)."""
        if params_grammar is not None and params_grammar.kind not in ("json_schema", "json_object"):
            raise InvalidParameter("tools", "cannot be combined with a regex or grammar; use response_format")
        return self.grammars(params_grammar)[-1]


@dataclass(frozen=True)
class ToolCall:
    """A call as a transcript holds it: OpenAI's ``arguments`` are JSON text."""

    name: str
    arguments: str
    id: str = ""

    def text(self) -> str:
        """The call as the model writes it (the layout its grammar gives)."""
        try:
            arguments = json.loads(self.arguments)
        except ValueError:  # a past call's arguments as a client sent them back: kept as they are
            arguments = self.arguments
        body = json.dumps({"name": self.name, "arguments": arguments}, ensure_ascii=False)
        return f"{OPEN}\n{body}\n{CLOSE}"


def instructions(functions: tuple[Function, ...]) -> str:
    """The system message that tells a model without a tool format of its own how to call ``functions``."""
    listed = "\n".join(json.dumps(f.as_dict()["function"], ensure_ascii=False) for f in functions)
    return (
        "You may call functions to answer. To call one, reply with only this, for each call:\n"
        f'{OPEN}\n{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}\n{CLOSE}\n'
        "Each result comes back inside <tool_response></tool_response>. The functions:\n" + listed
    )


def response(content: str) -> str:
    """A function's result, as a model without a tool format of its own reads it."""
    return f"<tool_response>\n{content}\n</tool_response>"


# ---------------------------------------------------------------- reading calls back


@dataclass
class CallDelta:
    """What one piece of output adds to a call: its name when it starts, then pieces of its arguments."""

    index: int
    name: str | None = None  # set on the call's first delta
    arguments: str = ""


@dataclass
class Call:
    name: str
    arguments: str = ""
    complete: bool = False


_HEAD = re.compile(r'\s*<tool_call>\s*\{"name":\s*"([^"]*)",\s*"arguments":\s*')
_TAIL = re.compile(r"\s*\}\s*</tool_call>")


class CallReader:
    """Reads a sample's output as it arrives: plain text, or tool calls piece by piece.

    The output is whatever the grammar allowed, so a call's layout is exact; its arguments end where the
    JSON object that began them closes (strings and escapes tracked, so a "}" inside a string is text).
    """

    def __init__(self):
        self.text = ""  # the output when it is an answer, not calls
        self.calls: list[Call] = []
        self._mode = "undecided"  # "text" or "calls" once the first characters tell
        self._pending = ""  # output not yet read
        self._depth, self._in_string, self._escaped = 0, False, False

    def feed(self, piece: str) -> tuple[str, list[CallDelta]]:
        """Take a piece of output; return the text it adds and what it adds to calls."""
        self._pending += piece
        if self._mode == "undecided":
            start = self._pending.lstrip()
            if OPEN.startswith(start):  # maybe a call: wait for more
                return "", []
            self._mode = "calls" if start.startswith(OPEN) else "text"
        if self._mode == "text":
            text, self._pending = self._pending, ""
            self.text += text
            return text, []
        return "", self._read_calls()

    def _read_calls(self) -> list[CallDelta]:
        deltas: list[CallDelta] = []
        while self._pending:
            call = self.calls[-1] if self.calls else None
            if call is None or call.complete:
                head = _HEAD.match(self._pending)
                if head is None:
                    break  # the head is not whole yet (or the output was cut off)
                self.calls.append(Call(head.group(1)))
                deltas.append(CallDelta(len(self.calls) - 1, name=head.group(1)))
                self._pending = self._pending[head.end() :]
                continue
            if self._depth == 0 and call.arguments:  # the arguments are whole: the call's tail
                tail = _TAIL.match(self._pending)
                if tail is None:
                    break
                call.complete = True
                self._pending = self._pending[tail.end() :]
                continue
            if not call.arguments:  # the object starts at its "{": whitespace before it belongs to the layout
                self._pending = self._pending.lstrip()
                if not self._pending:
                    break
            taken = self._arguments(self._pending)
            call.arguments += taken
            self._pending = self._pending[len(taken) :]
            if deltas and deltas[-1].index == len(self.calls) - 1:
                deltas[-1].arguments += taken
            else:
                deltas.append(CallDelta(len(self.calls) - 1, arguments=taken))
        return deltas

    def _arguments(self, text: str) -> str:
        """The part of ``text`` that belongs to the current arguments object (up to its closing brace)."""
        for i, ch in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return text[: i + 1]
        return text

    def finish(self) -> str:
        """At the end of the output: text held back while it might have begun a call (it did not)."""
        if self._mode == "undecided":
            self._mode, self.text, held = "text", self._pending, self._pending
            self._pending = ""
            return held
        return ""
