"""Chat messages to a prompt, with the model's own chat template.

GGUF files and Hugging Face tokenizers carry a Jinja2 chat template. It is
rendered in Jinja2's sandbox (a template is data from a file, never trusted
code). Models without one (base models: GPT-2, Gemma 3 270M as packaged) get a
plain "Role: text" transcript; such a model does not know where its turn ends,
so generation also stops where it starts writing the user's next line.

Tool calling (engine/tools.py): a template with a ``<tool_call>`` tool format of its own
gets the functions as ``tools`` and past calls and results as its messages hold them (Hugging
Face's convention); any other template gets them as text: the functions described in the
system message, past calls in the ``<tool_call>`` layout, results as user turns.
"""

from __future__ import annotations

import json
from datetime import datetime

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pocketlm.backends.base import ModelInfo
from pocketlm.engine.tools import OPEN, Function, ToolCall, instructions, response
from pocketlm.errors import InvalidParameter

ROLES = ("system", "developer", "user", "assistant", "tool")  # developer: OpenAI's newer name for system

FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m.role | capitalize }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
FALLBACK_STOP = ("\nUser:",)  # the transcript's next turn: the model's answer is over


def _raise(message):
    raise TemplateError(message)


class ChatTemplate:
    def __init__(self, info: ModelInfo):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.source = info.chat_template or FALLBACK_TEMPLATE
        self.stop = FALLBACK_STOP if info.chat_template is None else ()  # the model's own template ends turns
        # A template that writes tool calls in <tool_call> tags lists the functions and renders calls itself.
        self.native_tools = info.chat_template is not None and OPEN in info.chat_template and "tools" in self.source
        self._template = env.from_string(self.source)
        self._specials = {"bos_token": info.bos_token, "eos_token": info.eos_token}

    def render(self, messages: list[dict], add_generation_prompt: bool = True, tools: tuple[Function, ...] = ()) -> str:
        """The prompt for ``messages``, with ``tools`` offered to the model (engine/tools.py)."""
        messages = [_check_message(i, m) for i, m in enumerate(_check_list(messages))]
        if self.native_tools:
            messages, extra = [_native(m) for m in messages], {"tools": [f.as_dict() for f in tools]} if tools else {}
        else:
            messages, extra = _as_text(messages, tools), {}
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self._specials, **extra
            )
        except TemplateError as e:
            raise InvalidParameter("messages", f"the model's chat template rejected these messages: {e}") from None


def _check_list(messages) -> list:
    if not isinstance(messages, list) or not messages:
        raise InvalidParameter("messages", "must be a non-empty list of {role, content} objects")
    return messages


def _check_message(i: int, m) -> dict:
    if not isinstance(m, dict):
        raise InvalidParameter(f"messages[{i}]", "must be an object with 'role' and 'content'")
    role, content, calls = m.get("role"), m.get("content"), m.get("tool_calls") or []
    if role == "function":
        raise InvalidParameter(f"messages[{i}].role", "'function' is OpenAI's old name: send the result as 'tool'")
    if role not in ROLES:
        raise InvalidParameter(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise InvalidParameter(f"messages[{i}].content", "only text content parts are supported")
        content = "".join(p["text"] for p in content)
    if calls and (role != "assistant" or not all(isinstance(c, ToolCall) for c in calls)):
        raise InvalidParameter(f"messages[{i}].tool_calls", "only assistant messages hold tool calls")
    if content is None and calls:
        content = ""
    if not isinstance(content, str):
        raise InvalidParameter(f"messages[{i}].content", "is required: a string or a list of text parts")
    return {**m, "role": "system" if role == "developer" else role, "content": content, "tool_calls": calls}


def _native(m: dict) -> dict:
    """A message as templates with a tool format read it (Hugging Face's convention: arguments as objects)."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _object(c)}}
        for c in m.pop("tool_calls")
    ]
    return {**m, "tool_calls": calls} if calls else m


def _object(call: ToolCall):
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _as_text(messages: list[dict], tools: tuple[Function, ...]) -> list[dict]:
    """Tools as plain turns, for a template without a tool format: the functions described in the system
    message, past calls in the layout the model is to write, each result a user turn (consecutive ones one)."""
    out: list[dict] = []
    previous = None
    for m in messages:
        calls = m.pop("tool_calls")
        if calls:
            m["content"] = "\n".join(filter(None, [m["content"], *(c.text() for c in calls)]))
        if m["role"] == "tool" and previous == "tool":
            out[-1]["content"] += "\n" + response(m["content"])
        elif m["role"] == "tool":
            out.append({"role": "user", "content": response(m["content"])})
        else:
            out.append(m)
        previous = m["role"]
    if tools and out[0]["role"] == "system":
        out[0] = {**out[0], "content": out[0]["content"] + "\n\n" + instructions(tools)}
    elif tools:
        out.insert(0, {"role": "system", "content": instructions(tools)})
    return out
