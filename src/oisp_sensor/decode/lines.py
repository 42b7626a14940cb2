"""The part of a line-based stream format (SSE, NDJSON) that is about lines, not the format.

A line can arrive in many reads: its pieces are kept and joined once, when its end
comes (joining on every read would copy it again each time: quadratic). A line
longer than the format's limit is not kept at all: its bytes are skipped up to its
end, and it is counted.
"""

from __future__ import annotations


class LineBuffer:
    """Holds the unterminated line between reads; subclasses split what comes out whole.

    The limit is passed in by the caller, from its own module's constant, so each
    format keeps its own limit (and tests can lower it).
    """

    __slots__ = ("_tail", "_tail_len", "_skipping", "oversized")

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # pieces of the line not yet terminated
        self._tail_len = 0
        self._skipping = False  # inside an oversized line: drop bytes up to its end
        self.oversized = 0  # lines dropped for being longer than the limit

    def _line_start(self, chunk: bytes, limit: int) -> bytes:
        """`chunk` made to start at a line start: the held piece goes before it, or the
        rest of a skipped line is cut off. b"" when no line has ended yet."""
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return b""
            self._skipping = False
            return chunk[nl + 1 :]
        if b"\n" not in chunk:
            self._hold(chunk, limit)
            return b""
        self._tail.append(chunk)
        chunk = b"".join(self._tail)
        self._tail = []
        self._tail_len = 0
        return chunk

    def _hold(self, piece: bytes, limit: int) -> None:
        """Keep the start of a line until its end comes, unless it is over the limit."""
        self._tail_len += len(piece)
        if self._tail_len > limit:
            self._tail = []
            self._tail_len = 0
            self._skipping = True
            self._lost_line()
        else:
            self._tail.append(piece)

    def _lost_line(self) -> None:
        self.oversized += 1

    def _forget(self) -> bytes:
        """End of stream: what was held (a line without its newline), and a clean state."""
        rest = b"".join(self._tail)
        self._tail = []
        self._tail_len = 0
        self._skipping = False
        return rest
