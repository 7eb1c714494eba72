"""Chat messages to a prompt, with the model's own chat template.

GGUF files and Hugging Face tokenizers carry a Jinja2 chat template. It is
rendered in Jinja2's sandbox (a template is data from a file, never trusted
code). Models without one (base models: GPT-2, Gemma 3 270M as packaged) get a
plain "Role: text" transcript; such a model does not know where its turn ends,
so generation also stops where it starts writing the user's next line.
"""

from __future__ import annotations

import json
from datetime import datetime

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pocketlm.backends.base import ModelInfo
from pocketlm.errors import InvalidParameter

ROLES = ("system", "developer", "user", "assistant")  # developer: OpenAI's newer name for system
_TOOL_ROLES = ("tool", "function")  # tool calling is not implemented: refused, never silently dropped

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
        self._template = env.from_string(self.source)
        self._specials = {"bos_token": info.bos_token, "eos_token": info.eos_token}

    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        messages = [_check_message(i, m) for i, m in enumerate(_check_list(messages))]
        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self._specials
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
    role, content = m.get("role"), m.get("content")
    if role in _TOOL_ROLES:
        raise InvalidParameter(
            f"messages[{i}].role",
            f"'{role}' is not supported: pocketlm does not do tool calling; use {', '.join(ROLES)}",
        )
    if role not in ROLES:
        raise InvalidParameter(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
            raise InvalidParameter(f"messages[{i}].content", "only text content parts are supported")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise InvalidParameter(f"messages[{i}].content", "is required: a string or a list of text parts")
    return {**m, "role": "system" if role == "developer" else role, "content": content}
