"""Sans-IO HTTP/1.1 parser for a third party watching both directions of a connection.

Unlike h11, which plays one side of a conversation, we observe both: the client's
bytes are parsed as requests, the server's as responses, and the request methods
seen so far decide how responses are framed (RFC 9112 §6.3: a response to HEAD
has no body whatever its headers say). `Http1Connection.feed_client/feed_server`
take bytes in any chunking and return `Head`/`Body`/`End`/`Upgraded` events; end
of stream is `eof_client()/eof_server()`. No sockets, no clocks.

Malformed input raises `DecodeError`; the connection is then unusable and the
caller drops it (other connections are unaffected). Any other exception is a bug.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, IntEnum, auto

from oisp_sensor.errors import DecodeError

# A request/status line plus all header fields larger than this is refused; real
# clients and servers stay far below it (nginx's default limit is 8 KiB per line).
MAX_HEAD_BYTES = 64 * 1024
# chunk-size line with extensions (RFC 9112 §7.1.1); anything longer is garbage.
MAX_CHUNK_LINE = 1024
# Bytes a paused request reader (after Upgrade/CONNECT) holds while it waits.
MAX_PAUSED_BYTES = 1024 * 1024


class Side(IntEnum):
    CLIENT = 0  # bytes the application sent
    SERVER = 1  # bytes the application received


class Headers:
    """Header fields in order, names lower-cased (field names are case-insensitive)."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self.items: list[tuple[str, str]] = items or []

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.items:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]

    def tokens(self, name: str) -> list[str]:
        """Comma-separated list values of every `name` field, lower-cased (RFC 9110 §5.6.1)."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(t.strip().lower() for t in value.split(",") if t.strip())
        return out

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: str
    version: str
    headers: Headers


@dataclass(slots=True)
class Head:
    """A request or a final (non-1xx) response has started."""

    head: RequestHead | ResponseHead


@dataclass(slots=True)
class Informational:
    """A 1xx interim response (e.g. 100 Continue); the final response follows."""

    head: ResponseHead


@dataclass(slots=True)
class Body:
    side: Side
    data: bytes


@dataclass(slots=True)
class End:
    side: Side
    trailers: Headers | None = None


@dataclass(slots=True)
class Upgraded:
    """The connection left HTTP/1.1 (101 Switching Protocols or a CONNECT tunnel)."""

    protocol: str


HttpEvent = Head | Informational | Body | End | Upgraded


class _State(Enum):
    HEAD = auto()
    LENGTH = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    CHUNK_CRLF = auto()
    TRAILERS = auto()
    UNTIL_CLOSE = auto()
    PAUSED = auto()  # waiting to learn whether an Upgrade/CONNECT was accepted
    DONE = auto()  # upgraded: no more HTTP on this side


def _parse_header_lines(lines: list[bytes]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # obs-fold (RFC 9112 §5.2): a recipient MAY replace it with SP.
            if not items:
                raise DecodeError("header continuation line before any header")
            name, value = items[-1]
            items[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        colon = line.find(b":")
        if colon <= 0:
            raise DecodeError(f"malformed header line {line[:40]!r}")
        raw_name = line[:colon]
        # RFC 9112 §5.1: no whitespace is allowed between the field name and colon.
        if raw_name != raw_name.strip() or b" " in raw_name:
            raise DecodeError(f"whitespace in header name {raw_name[:40]!r}")
        items.append(
            (raw_name.decode("latin-1").lower(), line[colon + 1 :].strip().decode("latin-1"))
        )
    return Headers(items)


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("content-length")
    if not values:
        return None
    # RFC 9110 §8.6: a list of identical values may be treated as one value.
    distinct = {v.strip() for value in values for v in value.split(",")}
    if len(distinct) != 1:
        raise DecodeError(f"conflicting Content-Length values {sorted(distinct)[:4]}")
    text = distinct.pop()
    if not text.isdigit() or len(text) > 18:
        raise DecodeError(f"invalid Content-Length {text[:20]!r}")
    return int(text)


class _Reader:
    """One direction's message framing: head, then a body per RFC 9112 §6."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.state = _State.HEAD
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the head
        self._remaining = 0
        self._trailer_lines: list[bytes] = []

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """Between messages with nothing pending: a clean place for the stream to end."""
        return self.state in (_State.HEAD, _State.DONE, _State.PAUSED) and not self._buf.strip()

    def feed(self, data: bytes, out: list[HttpEvent]) -> None:
        if self.state is _State.DONE:
            return
        if self.state is _State.PAUSED:
            self._buf += data
            if len(self._buf) > MAX_PAUSED_BYTES:
                raise DecodeError("too much data after an Upgrade/CONNECT request")
            return
        # Fast path: body bytes with nothing buffered go straight through uncopied.
        if not self._buf and self.state in (_State.LENGTH, _State.UNTIL_CLOSE):
            data = self._take_direct(data, out)
            if not data:
                return
        self._buf += data
        self._run(out)

    def _take_direct(self, data: bytes, out: list[HttpEvent]) -> bytes:
        if self.state is _State.UNTIL_CLOSE:
            out.append(Body(self.side, data))
            return b""
        n = min(self._remaining, len(data))
        out.append(Body(self.side, data[:n] if n < len(data) else data))
        self._remaining -= n
        if self._remaining == 0:
            self._finish(out)
        return data[n:]

    def _run(self, out: list[HttpEvent]) -> None:
        buf = self._buf
        pos = 0
        try:
            while pos < len(buf):
                state = self.state
                if state is _State.HEAD:
                    pos, end = self._find_head_end(buf, pos)
                    if end < 0:
                        if len(buf) - pos > MAX_HEAD_BYTES:
                            raise DecodeError(f"message head larger than {MAX_HEAD_BYTES} bytes")
                        break
                    if end - pos > MAX_HEAD_BYTES:
                        raise DecodeError(f"message head larger than {MAX_HEAD_BYTES} bytes")
                    head = bytes(buf[pos:end])
                    pos = end
                    self._scan = 0
                    self.on_head(head, out)
                elif state is _State.LENGTH:
                    n = min(self._remaining, len(buf) - pos)
                    out.append(Body(self.side, bytes(buf[pos : pos + n])))
                    pos += n
                    self._remaining -= n
                    if self._remaining == 0:
                        self._finish(out)
                elif state is _State.UNTIL_CLOSE:
                    out.append(Body(self.side, bytes(buf[pos:])))
                    pos = len(buf)
                elif state is _State.CHUNK_SIZE:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        if len(buf) - pos > MAX_CHUNK_LINE:
                            raise DecodeError("chunk-size line too long")
                        break
                    line = bytes(buf[pos:nl]).rstrip(b"\r")
                    pos = nl + 1
                    # chunk = chunk-size [ chunk-ext ] CRLF  (RFC 9112 §7.1)
                    size_text = line.split(b";", 1)[0].strip()
                    try:
                        size = int(size_text, 16)
                    except ValueError:
                        raise DecodeError(f"invalid chunk size {size_text[:20]!r}") from None
                    if size < 0 or len(size_text) > 16:
                        raise DecodeError(f"invalid chunk size {size_text[:20]!r}")
                    if size == 0:
                        self.state = _State.TRAILERS
                        self._trailer_lines = []
                    else:
                        self._remaining = size
                        self.state = _State.CHUNK_DATA
                elif state is _State.CHUNK_DATA:
                    n = min(self._remaining, len(buf) - pos)
                    out.append(Body(self.side, bytes(buf[pos : pos + n])))
                    pos += n
                    self._remaining -= n
                    if self._remaining == 0:
                        self.state = _State.CHUNK_CRLF
                elif state is _State.CHUNK_CRLF:
                    if buf[pos : pos + 2] == b"\r\n":
                        pos += 2
                    elif buf[pos : pos + 1] == b"\n":
                        pos += 1
                    elif len(buf) - pos < 2 and buf[pos : pos + 1] == b"\r":
                        break
                    else:
                        raise DecodeError("missing CRLF after chunk data")
                    self.state = _State.CHUNK_SIZE
                elif state is _State.TRAILERS:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        if len(buf) - pos > MAX_HEAD_BYTES:
                            raise DecodeError("trailer section too large")
                        break
                    line = bytes(buf[pos:nl]).rstrip(b"\r")
                    pos = nl + 1
                    if line:
                        self._trailer_lines.append(line)
                        if len(self._trailer_lines) > 256:
                            raise DecodeError("too many trailer fields")
                    else:
                        trailers = (
                            _parse_header_lines(self._trailer_lines)
                            if self._trailer_lines
                            else None
                        )
                        self._finish(out, trailers)
                else:  # PAUSED or DONE: keep the rest for whoever resumes us
                    break
        finally:
            del buf[:pos]

    def _find_head_end(self, buf: bytearray, pos: int) -> tuple[int, int]:
        """(start, end) of the next head: `end` is just past its blank line, or -1.

        RFC 9112 §2.2: blank lines before a start line are ignored, and a recipient
        MAY take a single LF as a line terminator, so "\n\n" and "\n\r\n" both end
        a head. `_scan` remembers how far we looked, so a head arriving one byte at
        a time is not rescanned from its start each time.
        """
        while True:
            if buf.startswith(b"\r\n", pos):
                pos += 2
            elif buf.startswith(b"\n", pos):
                pos += 1
            else:
                break
        start = pos + max(0, self._scan - 3)
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                self._scan = len(buf) - pos
                return pos, -1
            if buf[nl + 1 : nl + 2] == b"\n":
                return pos, nl + 2
            if buf[nl + 1 : nl + 3] == b"\r\n":
                return pos, nl + 3
            if nl + 2 >= len(buf):
                self._scan = nl - pos
                return pos, -1
            start = nl + 1

    def _finish(self, out: list[HttpEvent], trailers: Headers | None = None) -> None:
        out.append(End(self.side, trailers))
        self.state = _State.HEAD

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        raise NotImplementedError

    def eof(self, out: list[HttpEvent]) -> None:
        if self.state is _State.UNTIL_CLOSE:
            self._run(out)
            self._finish(out)
        elif not self.idle:
            raise DecodeError(f"stream ended inside a message ({self.state.name.lower()})")

    def _split_head(self, head: bytes) -> tuple[bytes, Headers]:
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise DecodeError("empty message head")
        return lines[0], _parse_header_lines(lines[1:])

    def _start_body(self, headers: Headers, *, until_close_allowed: bool) -> None:
        """RFC 9112 §6.3 steps 4-8: Transfer-Encoding, then Content-Length, then close."""
        codings = headers.tokens("transfer-encoding")
        if codings:
            if codings[-1] == "chunked":
                self.state = _State.CHUNK_SIZE
            elif until_close_allowed:
                self.state = _State.UNTIL_CLOSE
            else:
                # §6.3 step 4: a request whose final coding is not chunked is unframeable.
                raise DecodeError(f"request with Transfer-Encoding {codings[-1]!r} but not chunked")
            return
        length = _content_length(headers)
        if length is None:
            self.state = _State.UNTIL_CLOSE if until_close_allowed else _State.HEAD
        else:
            self._remaining = length
            self.state = _State.LENGTH if length else _State.HEAD


class _RequestReader(_Reader):
    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(Side.CLIENT)
        self.conn = conn

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        line, headers = self._split_head(head)
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise DecodeError(f"not an HTTP/1.x request line: {line[:60]!r}")
        method = parts[0].decode("latin-1")
        if not method.isalpha() or not method.isupper():
            raise DecodeError(f"invalid method {method[:20]!r}")
        req = RequestHead(method, parts[1].decode("latin-1"), parts[2].decode("latin-1"), headers)
        out.append(Head(req))
        self.conn._methods.append(method)
        self._start_body(headers, until_close_allowed=False)
        if self.state is _State.HEAD:
            out.append(End(Side.CLIENT))
        # After a CONNECT or an Upgrade request, what the client sends next may not
        # be HTTP at all; hold it until the response says which it is.
        if method == "CONNECT" or (
            "upgrade" in headers and "upgrade" in headers.tokens("connection")
        ):
            if self.state is _State.HEAD:
                self.state = _State.PAUSED
            else:
                self._pause_after_body = True

    _pause_after_body = False

    def _finish(self, out: list[HttpEvent], trailers: Headers | None = None) -> None:
        super()._finish(out, trailers)
        if self._pause_after_body:
            self._pause_after_body = False
            self.state = _State.PAUSED


class _ResponseReader(_Reader):
    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(Side.SERVER)
        self.conn = conn

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        line, headers = self._split_head(head)
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise DecodeError(f"not an HTTP/1.x status line: {line[:60]!r}")
        status = int(parts[1])
        if not 100 <= status <= 999:
            raise DecodeError(f"invalid status code {status}")
        resp = ResponseHead(
            status,
            parts[2].decode("latin-1") if len(parts) > 2 else "",
            parts[0].decode("latin-1"),
            headers,
        )
        methods = self.conn._methods
        if status == 101:
            out.append(Head(resp))
            if methods:
                methods.popleft()
            self.conn._upgrade(headers.get("upgrade") or "unknown", out)
            return
        if status < 200:
            # Interim responses (RFC 9110 §15.2) precede the final one, same request.
            out.append(Informational(resp))
            return
        # Responses we cannot pair (capture began mid-connection) are framed as GET's.
        method = methods.popleft() if methods else "GET"
        out.append(Head(resp))
        if method == "CONNECT" and 200 <= status < 300:
            self.conn._upgrade("connect", out)
            return
        self.conn._resume_requests(out)
        if method == "HEAD" or status in (204, 304):
            out.append(End(Side.SERVER))
            return
        self._start_body(headers, until_close_allowed=True)
        if self.state is _State.HEAD:
            out.append(End(Side.SERVER))


class Http1Connection:
    """Both directions of one observed HTTP/1.1 connection."""

    def __init__(self) -> None:
        self._methods: deque[str] = deque()
        self._requests = _RequestReader(self)
        self._responses = _ResponseReader(self)
        self.upgraded: str | None = None

    def feed_client(self, data: bytes) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        self._requests.feed(data, out)
        return out

    def feed_server(self, data: bytes) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        self._responses.feed(data, out)
        return out

    def eof_client(self) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        if self.upgraded is None:
            self._requests.eof(out)
        return out

    def eof_server(self) -> list[HttpEvent]:
        out: list[HttpEvent] = []
        if self.upgraded is None:
            self._responses.eof(out)
        return out

    @property
    def buffered(self) -> int:
        return self._requests.buffered + self._responses.buffered

    def _upgrade(self, protocol: str, out: list[HttpEvent]) -> None:
        self.upgraded = protocol.lower()
        self._requests.state = self._responses.state = _State.DONE
        self._requests._buf.clear()
        self._responses._buf.clear()
        out.append(Upgraded(self.upgraded))

    def _resume_requests(self, out: list[HttpEvent]) -> None:
        """An Upgrade/CONNECT was refused: the held client bytes are HTTP after all."""
        reader = self._requests
        if reader.state is _State.PAUSED:
            reader.state = _State.HEAD
            if reader._buf:
                reader._run(out)
