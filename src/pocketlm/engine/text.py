"""Turning token bytes into text that is safe to stream.

Tokens are byte sequences and may end in the middle of a UTF-8 character
("ação" and emoji often do), and a stop string may be spread over several
tokens. ``TextAssembler`` only releases text that is final: complete
characters that cannot be the start of a stop string.
"""

from __future__ import annotations

import codecs


class TextAssembler:
    def __init__(self, stop: tuple[str, ...] = ()):
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = stop
        self._held = ""  # text that might be the beginning of a stop string

    def feed(self, data: bytes) -> tuple[str, str | None]:
        """Add a token's bytes; return (text now final, the stop string matched or None)."""
        text = self._held + self._utf8.decode(data)
        match = self._earliest_stop(text)
        if match is not None:
            at, stop = match
            self._held = ""
            return text[:at], stop
        hold = self._partial_stop_suffix(text)
        self._held = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold], None

    def flush(self) -> str:
        """The text still held back, when generation ends without a stop string."""
        text, self._held = self._held + self._utf8.decode(b"", final=True), ""
        return text

    def _earliest_stop(self, text: str) -> tuple[int, str] | None:
        found = [(text.find(s), s) for s in self._stop]
        found = [(i, s) for i, s in found if i >= 0]
        return min(found) if found else None

    def _partial_stop_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop string."""
        for k in range(min(len(text), max((len(s) for s in self._stop), default=1) - 1), 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self._stop):
                return k
        return 0
