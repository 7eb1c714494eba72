"""The daily insight: ask the running service for a short text and write it into a marked README section.

The service is asked through its own public API, as any client would (``/v1/models``,
``/metrics``, ``/v1/chat/completions``; ``Authorization: Bearer`` when a key is set). Only the
text between the two markers changes; the file is replaced atomically, and only once every
request has succeeded, so a failure anywhere leaves the README exactly as it was.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import InvalidParameter, PocketLMError
from pocketlm.files import write_text

START = "<!-- pocketlm-insight:start -->"
END = "<!-- pocketlm-insight:end -->"
PROMPT = "Give one short, practical tip for hosting a small language model on a CPU server, in one or two sentences."
MAX_CHARS = 400  # a README line, not an essay


class InsightFailed(PocketLMError):
    """The service could not be asked (down, refused, wrong key, unexpected answer)."""


@dataclass(frozen=True)
class Usage:
    """What /metrics says the service has done so far."""

    requests: int
    completion_tokens: int
    mean_ttft_ms: float | None


class Client:
    """The few calls the insight needs, over plain urllib: a client of the public API, nothing more."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def request(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise InsightFailed(f"{method} {self.url}{path} answered {e.code}: {_error_message(e)}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise InsightFailed(
                f"cannot reach {self.url}{path}: {reason}; is `pocketlm serve` running there?"
            ) from None

    def json(self, method: str, path: str, body: dict | None = None) -> dict:
        raw = self.request(method, path, body)
        try:
            return json.loads(raw)
        except ValueError:
            raise InsightFailed(f"{method} {self.url}{path} did not answer JSON: {raw[:200]!r}") from None


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        return json.loads(e.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return e.reason


def parse_metrics(text: str) -> Usage:
    """Totals from Prometheus text: requests over every route and status, tokens generated, mean TTFT."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        metric = name.split("{", 1)[0]
        values[metric] = values.get(metric, 0.0) + float(value)
    count = values.get("pocketlm_time_to_first_token_seconds_count", 0.0)
    ttft = 1000 * values["pocketlm_time_to_first_token_seconds_sum"] / count if count else None
    return Usage(
        requests=int(values.get("pocketlm_requests_total", 0)),
        completion_tokens=int(values.get("pocketlm_completion_tokens_total", 0)),
        mean_ttft_ms=ttft,
    )


def ask(client: Client, max_new_tokens: int, seed: int = 0) -> tuple[str, str, Usage]:
    """(model name, the model's tip as one clean line, usage so far), from the live service."""
    model = client.json("GET", "/v1/models")["data"][0]["id"]
    usage = parse_metrics(client.request("GET", "/metrics").decode())
    reply = client.json(
        "POST",
        "/v1/chat/completions",
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "seed": seed,
        },
    )
    tip = _one_line(reply["choices"][0]["message"]["content"])
    if not tip:
        raise InsightFailed("the model answered an empty text; README left as it was")
    return model, tip, usage


def _one_line(text: str) -> str:
    """Whitespace collapsed, no HTML comment that could fake a marker, at most MAX_CHARS."""
    text = " ".join(text.replace("<!--", "").replace("-->", "").split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1].rstrip() + "…"


def render(model: str, tip: str, usage: Usage, day: str) -> str:
    ttft = f", mean time to first token {usage.mean_ttft_ms:.0f} ms" if usage.mean_ttft_ms is not None else ""
    return (
        f"{START}\n"
        f"> **Hosting tip of the day** ({day}, written by `{model}` running on pocketlm itself): {tip}\n"
        f">\n"
        f"> That server had answered {usage.requests} requests and generated {usage.completion_tokens} tokens{ttft}.\n"
        f"{END}"
    )


def replace_section(text: str, section: str, readme: Path) -> str:
    """``text`` with the marked section replaced by ``section``; exactly one pair of markers must be there."""
    starts, ends = text.count(START), text.count(END)
    if starts != 1 or ends != 1 or text.index(START) > text.index(END):
        raise InvalidParameter(
            "readme",
            f"{readme} must hold the markers {START} and {END} once each, in that order "
            f"(found {starts} and {ends}); add them where the insight should go",
        )
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    return head + section + tail


def update_readme(readme: Path, client: Client, max_new_tokens: int = 80) -> bool:
    """Ask the service, then rewrite the section; True if the file changed. Raises before touching it on failure."""
    if not readme.is_file():
        raise InvalidParameter("readme", f"{readme} is not a file")
    text = readme.read_bytes().decode("utf-8")
    replace_section(text, "", readme)  # the markers are checked before the service is asked
    model, tip, usage = ask(client, max_new_tokens)
    new = replace_section(text, render(model, tip, usage, time.strftime("%Y-%m-%d", time.gmtime())), readme)
    if new == text:
        return False
    write_text(readme, new)
    return True
