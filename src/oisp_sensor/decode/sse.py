"""Incremental text/event-stream parser (WHATWG HTML §9.2.6, "Parsing an event stream").

Bytes in any chunking go in; whole messages come out. The rules implemented:
lines end in CRLF, LF or CR; a line starting with ":" is a comment; "field: value"
drops one leading space of the value; "data" lines accumulate joined by LF; an
empty line dispatches the message unless its data is empty; "id" containing NUL
is ignored; "retry" takes ASCII digits only. At end of stream an unfinished
message is discarded, as the standard says.

This is the hot path of every streamed AI response, so lines are split with
`bytes.split` over whole reads, `data:` lines take a fast path, and a line that
arrives in many small reads is joined once, not re-copied on every read.
"""

from __future__ import annotations

from typing import NamedTuple

# A line longer than this is dropped with the event it belongs to (and counted):
# a stream that never sends a newline must not eat memory. Generous, because image
# generation streams carry whole base64 images in one `data:` line.
MAX_LINE = 32 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"


class SseMessage(NamedTuple):
    """One dispatched event. A NamedTuple rather than a frozen dataclass: it is just as
    immutable and three times cheaper to build, and one is built per streamed token."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


# Builds a message without the Python-level `__new__` a NamedTuple adds (hot path).
_new_message = tuple.__new__


class SseDecoder:
    """`feed(chunk) -> messages`, `flush() -> messages` (always empty, per the standard)."""

    __slots__ = (
        "_tail",
        "_tail_len",
        "_data",
        "_event",
        "_last_id",
        "_retry",
        "_pending_cr",
        "_started",
        "_skipping",
        "_discard",
        "oversized",
    )

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # pieces of the line not yet terminated
        self._tail_len = 0
        self._data: list[bytes] = []
        self._event = b""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False  # the previous chunk ended in CR: a leading LF is its pair
        self._started = False  # past the optional leading BOM
        self._skipping = False  # inside an oversized line: drop bytes up to its end
        self._discard = False  # the event being built lost a line: do not dispatch it
        self.oversized = 0  # lines dropped for being longer than MAX_LINE

    def feed(self, chunk: bytes) -> list[SseMessage]:
        if not chunk:
            return []
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if b"\r" in chunk:
            # CRLF, CR and LF all end a line; a CR that ends this read may be the
            # first half of a CRLF whose LF starts the next one.
            self._pending_cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not self._started:
            chunk = self._skip_bom(chunk)
            if not chunk:
                return []
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
            lines = self._drop_long(lines)
        out: list[SseMessage] = []
        data = self._data
        for line in lines:
            if not line:  # a blank line dispatches the event (inlined: once per token)
                if data and not self._discard:
                    event = self._event
                    fields = (
                        event.decode("utf-8", "replace") if event else "message",
                        (data[0] if len(data) == 1 else b"\n".join(data)).decode(
                            "utf-8", "replace"
                        ),
                        self._last_id,
                        self._retry,
                    )
                    out.append(_new_message(SseMessage, fields))
                if data:
                    data = self._data = []
                self._event = b""
                self._discard = False
            elif line[:6] == b"data: ":
                data.append(line[6:])
            elif line[:7] == b"event: ":
                self._event = line[7:]
            elif line[0] == 58:  # ":" starts a comment
                continue
            else:
                self._field(line)
        if rest:  # after the loop: an oversized rest belongs to the next event, not these
            self._hold(rest)
        return out

    def flush(self) -> list[SseMessage]:
        """End of stream: an event without its blank line is discarded (WHATWG)."""
        self._tail = []
        self._tail_len = 0
        self._data = []
        self._event = b""
        self._skipping = self._discard = False
        return []

    def _skip_bom(self, chunk: bytes) -> bytes:
        """One leading U+FEFF is not part of the stream; it may arrive a byte at a time."""
        head = b"".join(self._tail) + chunk
        if len(head) < 3 and _BOM.startswith(head):
            self._tail = [head]
            return b""
        self._started = True
        self._tail = []
        return head[3:] if head.startswith(_BOM) else head

    def _hold(self, piece: bytes) -> None:
        self._tail_len += len(piece)
        if self._tail_len > MAX_LINE:
            self._tail = []
            self._tail_len = 0
            self._skipping = True
            self._lost_line()
        else:
            self._tail.append(piece)

    def _drop_long(self, lines: list[bytes]) -> list[bytes]:
        kept = []
        for line in lines:
            if len(line) > MAX_LINE:
                self._lost_line()
                # Keep the place of the line so a following blank line still ends its event.
                kept.append(b":")
            else:
                kept.append(line)
        return kept

    def _lost_line(self) -> None:
        self.oversized += 1
        self._discard = True

    def _field(self, line: bytes) -> None:
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit is ASCII-only, as the standard wants
                self._retry = int(value)
        # Unknown fields are ignored.
