"""Newline-delimited JSON splitter (Ollama's native streams, JSON Lines).

Returns whole lines as bytes; parsing is the caller's, so one bad line costs one
line, not the stream.
"""

from __future__ import annotations

MAX_LINE = 8 * 1024 * 1024


class NdjsonDecoder:
    __slots__ = ("_buf", "_skipping", "oversized")

    def __init__(self) -> None:
        self._buf = b""
        self._skipping = False
        self.oversized = 0  # lines dropped for being longer than MAX_LINE

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        if self._skipping and lines:
            lines.pop(0)  # the tail of an oversized line
            self._skipping = False
        if len(self._buf) > MAX_LINE:
            self._buf = b""
            self._skipping = True
            self.oversized += 1
        return [s for line in lines if (s := line.strip())]

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf.strip(), b""
        return [rest] if rest and not self._skipping else []
