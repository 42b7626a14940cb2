"""Incremental text/event-stream parser (WHATWG HTML §9.2.6, "Parsing an event stream").

Bytes in any chunking go in; whole messages come out. The rules implemented:
lines end in CRLF, LF or CR; a line starting with ":" is a comment; "field: value"
drops one leading space of the value; "data" lines accumulate joined by LF; an
empty line dispatches the message unless its data is empty; "id" containing NUL
is ignored; "retry" takes ASCII digits only. At end of stream an unfinished
message is discarded, as the standard says.

This is the hot path of every streamed AI response (one event per token), so the
shapes AI APIs send — `data: ...` alone, or `event: ...` then `data: ...` — are
cut out of a whole read by regular expressions, in C, and only other events go
through the rules line by line in Python. `feed_raw` gives events undecoded, for
consumers that compare the name and hand the data to orjson as bytes. A line
arriving in many small reads is joined once (decode/lines.py).
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import NamedTuple

from oisp_sensor.decode.lines import LineBuffer

# A line longer than this is dropped with the event it belongs to (and counted):
# a stream that never sends a newline must not eat memory. Generous, because image
# generation streams carry whole base64 images in one `data:` line.
MAX_LINE = 32 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
# One event in the common shapes (after CR/CRLF became LF): an optional `event: ` line, one
# `data: ` line, the blank line.
_EVENT = re.compile(rb"(?:event: (.*)\n)?data: (.*)\n\n")  # "." is any byte but LF
_NO_NAME: dict[bytes | None, bytes] = {None: b""}
# From about ten events on, one `split` of the read beats matching event by event.
_SPLIT_MIN = 2048


class SseMessage(NamedTuple):
    """One dispatched event. A NamedTuple rather than a frozen dataclass: it is just as
    immutable and three times cheaper to build, and one is built per streamed token."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


# Builds a message without the Python-level `__new__` a NamedTuple adds (hot path).
_new_message = tuple.__new__

RawEvent = tuple[bytes, bytes, str | None, int | None]
"""An event as dispatched, not yet decoded: (event name, data, last event id, retry).
The name is b"" where the standard says "message"."""


class SseDecoder(LineBuffer):
    """`feed(chunk) -> messages`, `flush() -> messages` (always empty, per the standard)."""

    __slots__ = ("_data", "_event", "_last_id", "_retry", "_pending_cr", "_started", "_discard")

    def __init__(self) -> None:
        super().__init__()
        self._data: list[bytes] = []
        self._event = b""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False  # the previous chunk ended in CR: a leading LF is its pair
        self._started = False  # past the optional leading BOM
        self._discard = False  # the event being built lost a line: do not dispatch it

    def feed(self, chunk: bytes) -> list[SseMessage]:
        return [
            _new_message(
                SseMessage,
                (
                    event.decode("utf-8", "replace") if event else "message",
                    data.decode("utf-8", "replace"),
                    last_id,
                    retry,
                ),
            )
            for event, data, last_id, retry in self.feed_raw(chunk)
        ]

    def feed_raw(self, chunk: bytes) -> list[RawEvent]:
        """`feed` without the decoding: for a consumer that dispatches on the event name
        and hands the data to a JSON parser as bytes, as the response assemblers do."""
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
        if self._skipping or self._tail:
            chunk = self._line_start(chunk, MAX_LINE)
        out: list[RawEvent] = []
        if len(chunk) > MAX_LINE:  # a line may be over the limit: line by line, with its rule
            lines = chunk.split(b"\n")
            rest = lines.pop()
            self._lines_within_limit(lines, out)
        else:
            # A blank line ends each event, so the text between two blank lines is one
            # event's lines. Events in the shapes every AI API sends — `data: ...` alone,
            # or `event: ...` then `data: ...` — are cut out by a regular expression, in
            # C: all at once when a long read holds nothing else, else one by one. Any
            # other event goes line by line (`_lines`), as does one whose first lines
            # came in an earlier read.
            end = chunk.rfind(b"\n\n") + 2  # past the last blank line
            if end == 1:  # there is none
                end = 0
            pos = 0
            if end and (self._data or self._event or self._discard):
                pos = self._event_lines(chunk, 0, out)
            if end - pos >= _SPLIT_MIN:
                # [before, name, data, before, name, data, ..., after]: all "before"s and
                # the "after" empty means the events follow each other with nothing else.
                parts = _EVENT.split(chunk[pos:end])
                if not parts[-1] and not any(parts[0::3]):
                    names = parts[1::3]  # None where there was no `event:` line: b""
                    out += zip(
                        map(_NO_NAME.get, names, names),
                        parts[2::3],
                        repeat(self._last_id),
                        repeat(self._retry),
                    )
                    pos = end
            match = _EVENT.match
            while pos < end:
                one = match(chunk, pos, end)
                if one is None:
                    pos = self._event_lines(chunk, pos, out)
                else:
                    out.append((one[1] or b"", one[2], self._last_id, self._retry))
                    pos = one.end()
            rest = chunk[end:]  # the start of an event to come
            if b"\n" in rest:
                lines = rest.split(b"\n")
                rest = lines.pop()
                self._lines(lines, out)
        if rest:  # after the events: an oversized rest belongs to the next event, not these
            self._hold(rest, MAX_LINE)
        return out

    def _event_lines(self, chunk: bytes, pos: int, out: list[RawEvent]) -> int:
        """The lines of the event at `pos`, which a blank line ends, one by one; returns
        where the next event starts."""
        blank = chunk.find(b"\n\n", pos)
        if blank < 0:
            # `pos` is the third of three newlines: one more empty line (found by fuzzing:
            # returning -1 + 2 here restarted the caller's loop at 1, forever).
            self._lines([b""], out)
            return pos + 1
        self._lines((chunk[pos:blank] + b"\n").split(b"\n"), out)  # + the blank line
        return blank + 2

    def _lines(self, lines: list[bytes], out: list[RawEvent]) -> None:
        """Each line by the standard's rules; a blank line dispatches the event."""
        data = self._data
        for line in lines:
            if not line:
                if data and not self._discard:
                    joined = data[0] if len(data) == 1 else b"\n".join(data)
                    out.append((self._event, joined, self._last_id, self._retry))
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

    def flush(self) -> list[SseMessage]:
        """End of stream: an event without its blank line is discarded (WHATWG)."""
        self._forget()
        self._data = []
        self._event = b""
        self._discard = False
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

    def _lines_within_limit(self, lines: list[bytes], out: list[RawEvent]) -> None:
        """`_lines`, dropping each line over MAX_LINE and the event it belongs to — that
        event only: the events before it in the same read are dispatched first."""
        start = 0
        for i, line in enumerate(lines):
            if len(line) > MAX_LINE:
                self._lines(lines[start:i], out)
                self._lost_line()
                start = i + 1
        self._lines(lines[start:], out)

    def _lost_line(self) -> None:
        super()._lost_line()
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
