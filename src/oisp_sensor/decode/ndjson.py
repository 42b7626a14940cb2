"""Newline-delimited JSON splitter (Ollama's native streams, JSON Lines).

Returns whole lines as bytes; parsing is the caller's, so one bad line costs one
line, not the stream. A line arriving in many reads is joined once, and a line
longer than `MAX_LINE` is dropped (and counted) instead of buffered without end.
"""

from __future__ import annotations

MAX_LINE = 8 * 1024 * 1024


class NdjsonDecoder:
    """`feed(chunk) -> lines`, `flush() -> lines` (the last line may lack its newline)."""

    __slots__ = ("_tail", "_tail_len", "_skipping", "oversized")

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # pieces of the line not yet terminated
        self._tail_len = 0
        self._skipping = False  # inside an oversized line: drop bytes up to its end
        self.oversized = 0  # lines dropped for being longer than MAX_LINE

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return []
            chunk = chunk[nl + 1 :]
            self._skipping = False
        elif self._tail:
            if b"\n" not in chunk:
                self._hold(chunk)
                return []
            self._tail.append(chunk)
            chunk = b"".join(self._tail)
            self._tail = []
            self._tail_len = 0
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if len(chunk) > MAX_LINE:
            self.oversized += sum(1 for line in lines if len(line) > MAX_LINE)
            lines = [line for line in lines if len(line) <= MAX_LINE]
        if rest:
            self._hold(rest)
        return [s for line in lines if (s := line.strip())]

    def flush(self) -> list[bytes]:
        rest = b"".join(self._tail).strip()
        self._tail = []
        self._tail_len = 0
        self._skipping = False
        return [rest] if rest else []

    def _hold(self, piece: bytes) -> None:
        self._tail_len += len(piece)
        if self._tail_len > MAX_LINE:
            self._tail = []
            self._tail_len = 0
            self._skipping = True
            self.oversized += 1
        else:
            self._tail.append(piece)
