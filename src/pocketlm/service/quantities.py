"""Durations and sizes as people write them: ``--keep-alive 5m``, ``"keep_alive": -1``, ``--memory-budget 4GB``.

A keep-alive follows Ollama's rules, so a client written for Ollama means the same thing here: a number is
seconds, a text is a Go duration (``"5m"``, ``"1h30m"``, ``"90s"``, ``"500ms"``) or a number of seconds, and
anything negative (or longer than a century) means forever. Zero unloads the model as soon as its requests are
done.
"""

from __future__ import annotations

import math
import re

from pocketlm.errors import InvalidParameter

FOREVER = math.inf
# Past this a keep-alive is forever: its end would lie beyond the dates a clock can show (time_t, datetime).
LONGEST = 100 * 365 * 24 * 3600.0

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:ns|us|µs|ms|s|m|h)"
# A keep-alive as text: seconds ("300", "-1") or a Go duration ("5m", "1h30m"). The OpenAPI document states it too.
DURATION_PATTERN = rf"^[+-]?(?:{_NUMBER}|(?:{_NUMBER}{_UNIT})+)$"
_PART = re.compile(rf"({_NUMBER})({_UNIT})")
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)b?", re.IGNORECASE)


def keep_alive_seconds(value: str | float | int, param: str = "keep_alive") -> float:
    """Seconds a model stays loaded after its last request; ``FOREVER`` for a negative value."""
    if isinstance(value, bool):  # True is an int to Python, never a duration
        raise InvalidParameter(param, f"must be a duration such as '5m' or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        seconds = _parse_duration(value, param)
    if math.isnan(seconds):
        raise InvalidParameter(param, "must be a duration such as '5m' or a number of seconds, got NaN")
    return FOREVER if seconds < 0 or seconds > LONGEST else seconds


def _parse_duration(text: str, param: str) -> float:
    if re.match(DURATION_PATTERN, text) is None:
        raise InvalidParameter(
            param,
            f"must be a duration such as '5m', '1h30m', '90s' or a number of seconds (negative: forever), got {text!r}",
        )
    sign = -1.0 if text.startswith("-") else 1.0
    if _PART.search(text) is None:  # "300", "-1": seconds, as Ollama's OLLAMA_KEEP_ALIVE takes them
        return sign * float(text.lstrip("+-"))
    return sign * sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))


def describe_seconds(seconds: float) -> str:
    """A keep-alive in words, for logs and listings."""
    if seconds == FOREVER:
        return "forever"
    return f"{seconds:g} s"


def size_bytes(text: str, param: str) -> int:
    """Bytes in a size such as ``4GB``, ``512MB``, ``1.5GiB`` or ``1000000`` (KB, MB, GB, TB are powers of 1000;
    KiB, MiB, GiB, TiB of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidParameter(param, f"must be a size such as 4GB, 512MB or 1.5GiB, got {text!r}")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** " kmgt".index(prefix.lower() or " "))
