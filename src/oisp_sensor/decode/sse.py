"""Incremental text/event-stream parser (WHATWG HTML §9.2.6, "Parsing an event stream").

Bytes in any chunking go in; whole messages come out. The rules implemented:
lines end in CRLF, LF or CR; a line starting with ":" is a comment; "field: value"
drops one leading space of the value; "data" lines accumulate joined by LF; an
empty line dispatches the message unless its data is empty; "id" containing NUL
is ignored; "retry" takes ASCII digits only. At end of stream an unfinished
message is discarded, as the standard says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class SseMessage:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SseDecoder:
    """`feed(chunk) -> messages`, `flush() -> messages` (always empty, per the standard)."""

    __slots__ = ("_buf", "_data", "_event", "_last_id", "_retry", "_pending_cr", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False  # the previous chunk ended in CR: a leading LF is its pair
        self._started = False

    def feed(self, chunk: bytes) -> list[SseMessage]:
        if not chunk:
            return []
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):  # one leading BOM is skipped
                buf = buf[3:]
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[SseMessage] = []
        for line in lines:
            if not line:
                self._dispatch(out)
            elif line[0] == 58:  # b":" comment
                continue
            else:
                self._field(line)
        return out

    def flush(self) -> list[SseMessage]:
        self._buf = b""
        self._data = []
        self._event = ""
        return []

    def _field(self, line: bytes) -> None:
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        # Unknown fields are ignored.

    def _dispatch(self, out: list[SseMessage]) -> None:
        if not self._data:
            self._event = ""
            return
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        out.append(
            SseMessage(
                event=self._event or "message", data=data, id=self._last_id, retry=self._retry
            )
        )
        self._data = []
        self._event = ""
