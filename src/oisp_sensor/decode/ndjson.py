"""Newline-delimited JSON splitter (Ollama's native streams, JSON Lines).

Returns whole lines as bytes; parsing is the caller's, so one bad line costs one
line, not the stream. A line arriving in many reads is joined once, and a line
longer than `MAX_LINE` is dropped (and counted) instead of buffered without end.
"""

from __future__ import annotations

from oisp_sensor.decode.lines import LineBuffer

MAX_LINE = 8 * 1024 * 1024


class NdjsonDecoder(LineBuffer):
    """`feed(chunk) -> lines`, `flush() -> lines` (the last line may lack its newline)."""

    __slots__ = ()

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skipping or self._tail:
            chunk = self._line_start(chunk, MAX_LINE)
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if len(chunk) > MAX_LINE:
            self.oversized += sum(1 for line in lines if len(line) > MAX_LINE)
            lines = [line for line in lines if len(line) <= MAX_LINE]
        if rest:
            self._hold(rest, MAX_LINE)
        return [s for line in lines if (s := line.strip())]

    def flush(self) -> list[bytes]:
        rest = self._forget().strip()
        return [rest] if rest else []
