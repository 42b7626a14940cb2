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

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum, IntEnum, auto
from itertools import repeat

from oisp_sensor.errors import DecodeError

# A request/status line plus all header fields larger than this is refused; real
# clients and servers stay far below it (nginx's default limit is 8 KiB per line).
MAX_HEAD_BYTES = 64 * 1024
# chunk-size line with extensions (RFC 9112 §7.1.1); anything longer is garbage.
MAX_CHUNK_LINE = 1024
# Bytes a paused request reader (after Upgrade/CONNECT) holds while it waits.
MAX_PAUSED_BYTES = 1024 * 1024
_BLANK_LINES = re.compile(rb"[\r\n]*")  # blank lines before a start line (one C loop)
_HEAD_END = re.compile(rb"\n\r?\n")  # the blank line ending a head (either line end)
# chunk = chunk-size [ chunk-ext ] CRLF, chunk-size = 1*HEXDIG (RFC 9112 §7.1). Python's
# int(x, 16) alone would also take "0x5", "+5" and "5_0", which real endpoints reject.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\n]{0,%d})?\r?\n" % MAX_CHUNK_LINE)
# The plain form of a chunk boundary: the CRLF ending a chunk's data, then the next
# size line. A read this long may hold enough chunks to be worth `_whole_chunks`.
_SIZE_LINE = re.compile(rb"\r\n([0-9A-Fa-f]{1,16})\r\n")
_BULK_MIN = 1024


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


# Looking up an Enum member costs ~150 ns on Python 3.11 (a global costs ~20): the
# parser tests its state several times per read, so it uses these module constants.
_HEAD = _State.HEAD
_LENGTH = _State.LENGTH
_CHUNK_SIZE = _State.CHUNK_SIZE
_CHUNK_DATA = _State.CHUNK_DATA
_CHUNK_CRLF = _State.CHUNK_CRLF
_TRAILERS = _State.TRAILERS
_UNTIL_CLOSE = _State.UNTIL_CLOSE
_PAUSED = _State.PAUSED
_DONE = _State.DONE


# What bytes.strip() removes (ASCII whitespace); str.strip() would also take "\x85" and
# "\xa0", which latin-1 decoding makes of bytes 0x85 and 0xA0.
_WS = " \t\n\r\x0b\x0c"


def _parse_header_lines(lines: list[str]) -> Headers:
    """Header field lines, already decoded as latin-1 (one decode per head, not two per
    line: a byte is one character either way, so lengths and checks are unchanged)."""
    items: list[tuple[str, str]] = []
    append = items.append
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name[0] in " \t":
            if name[:1] in (" ", "\t"):
                # obs-fold (RFC 9112 §5.2): a recipient MAY replace it with SP.
                if not items:
                    raise DecodeError("header continuation line before any header")
                folded, previous = items[-1]
                items[-1] = (folded, previous + " " + line.strip(_WS))
                continue
            raise DecodeError(f"malformed header line ({len(line)} bytes, no field name)")
        # RFC 9112 §5.1: no whitespace is allowed between the field name and colon.
        if " " in name or name != name.strip(_WS):
            raise DecodeError("whitespace in a header field name")
        append((name.lower(), value.strip(_WS)))
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
    # Content-Length = 1*DIGIT, ASCII only: str.isdigit() would also accept "²".
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise DecodeError(f"invalid Content-Length {text[:20]!r}")
    return int(text)


def _excerpt(line: bytes) -> str:
    """The start of a rejected line, for the error message: short, and cut before a query
    string. Error messages reach events and logs unredacted, so they must not carry an
    API key (`?key=`), a header's value or a prompt that misframing put here."""
    return repr(line.split(b"?", 1)[0][:16])


class _Reader:
    """One direction's message framing: head, then a body per RFC 9112 §6."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.state = _HEAD
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the head
        self._remaining = 0
        self._trailer_lines: list[bytes] = []
        self._bulk = False  # `_whole_chunks` may still run on this read (once: linear)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """Between messages with nothing pending: a clean place for the stream to end."""
        return self.state in (_HEAD, _DONE, _PAUSED) and not self._buf.strip()

    def feed(self, data: bytes, out: list[HttpEvent]) -> None:
        state = self.state
        if state is _DONE:
            return
        self._bulk = True
        if state is _PAUSED:
            self._buf += data
            if len(self._buf) > MAX_PAUSED_BYTES:
                raise DecodeError("too much data after an Upgrade/CONNECT request")
            return
        if self._buf:
            self._buf += data
            self._run(out)
            return
        # Nothing held over: parse the read itself, and keep only what is left of it.
        pos = 0
        try:
            pos = self._parse(data, out)
        finally:
            if pos < len(data) and self.state is not _DONE:
                self._buf += data[pos:] if pos else data

    def _run(self, out: list[HttpEvent]) -> None:
        """Parse what is buffered (after a partial read, or when a paused reader resumes)."""
        buf = self._buf
        pos = 0
        try:
            pos = self._parse(buf, out)
        finally:
            if self.state is not _DONE:
                del buf[:pos]

    def _parse(self, buf: bytes | bytearray, out: list[HttpEvent]) -> int:
        """Consume as many whole pieces of `buf` as possible; returns how far it got."""
        pos = 0
        end = len(buf)
        while pos < end:
            state = self.state
            if state is _CHUNK_SIZE or state is _CHUNK_DATA:
                pos = self._chunks(buf, pos, out)
                if self.state is not _TRAILERS:
                    break  # the read ended inside a chunk
            elif state is _HEAD:
                pos, head_end = self._find_head_end(buf, pos)
                if head_end < 0:
                    if end - pos > MAX_HEAD_BYTES:
                        raise DecodeError(f"message head larger than {MAX_HEAD_BYTES} bytes")
                    break
                if head_end - pos > MAX_HEAD_BYTES:
                    raise DecodeError(f"message head larger than {MAX_HEAD_BYTES} bytes")
                head = bytes(buf[pos:head_end])
                pos = head_end
                self._scan = 0
                self.on_head(head, out)
            elif state is _LENGTH:
                n = min(self._remaining, end - pos)
                out.append(Body(self.side, bytes(buf[pos : pos + n])))
                pos += n
                self._remaining -= n
                if self._remaining == 0:
                    self._finish(out)
            elif state is _UNTIL_CLOSE:
                out.append(Body(self.side, bytes(buf[pos:])))
                pos = end
            elif state is _CHUNK_CRLF:
                pos = self._chunks(buf, pos, out)
                if self.state is not _TRAILERS:
                    break
            elif state is _TRAILERS:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if end - pos > MAX_HEAD_BYTES:
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
                        _parse_header_lines([t.decode("latin-1") for t in self._trailer_lines])
                        if self._trailer_lines
                        else None
                    )
                    self._finish(out, trailers)
            else:  # PAUSED or DONE: keep the rest for whoever resumes us
                break
        return pos

    def _chunks(self, buf: bytes | bytearray, pos: int, out: list[HttpEvent]) -> int:
        """chunked transfer coding (RFC 9112 §7.1) until the last chunk or the end of `buf`.

        Streaming servers send one small chunk per event, so the data of every chunk
        in this read leaves as one `Body`: a read of 60 events is one body piece,
        not 60, for everything downstream.
        """
        parts: list[bytes | bytearray] = []
        append = parts.append
        match = _CHUNK_LINE.match
        end = len(buf)
        state = self.state
        try:
            while pos < end:
                if state is _CHUNK_DATA:
                    n = self._remaining
                    if n > end - pos:
                        n = end - pos
                    append(buf[pos : pos + n])
                    pos += n
                    self._remaining -= n
                    if self._remaining:
                        break
                    state = _CHUNK_CRLF
                elif state is _CHUNK_CRLF:
                    byte = buf[pos]
                    if byte == 13:  # CR: its LF may be in the next read
                        if pos + 1 == end:
                            break
                        if buf[pos + 1] != 10:
                            raise DecodeError("missing CRLF after chunk data")
                        pos += 2
                    elif byte == 10:  # a lone LF is accepted as a line end (§2.2)
                        pos += 1
                    else:
                        raise DecodeError("missing CRLF after chunk data")
                    state = _CHUNK_SIZE
                else:  # CHUNK_SIZE: chunk-size [ chunk-ext ] CRLF
                    if self._bulk and end - pos >= _BULK_MIN:  # once a read: linear
                        self._bulk = False
                        pos = self._whole_chunks(buf, pos, end, parts)
                    # Fast path: whole chunks, line and data and CRLF, back to back.
                    m = match(buf, pos)
                    while m is not None:
                        start = m.end()
                        data_end = start + int(m[1], 16)
                        if start == data_end or buf[data_end : data_end + 2] != b"\r\n":
                            break
                        append(buf[start:data_end])
                        pos = data_end + 2
                        m = match(buf, pos)
                    if m is None:
                        nl = buf.find(b"\n", pos)
                        if nl < 0:
                            if end - pos > MAX_CHUNK_LINE:
                                raise DecodeError("chunk-size line too long")
                            break  # the rest of the line is in the next read
                        if nl - pos > MAX_CHUNK_LINE:
                            raise DecodeError("chunk-size line too long")
                        raise DecodeError(f"invalid chunk size line ({nl - pos} bytes)")
                    pos = m.end()
                    size = int(m[1], 16)
                    if size == 0:
                        state = _TRAILERS
                        self._trailer_lines = []
                        break
                    data_end = pos + size
                    if buf[data_end : data_end + 2] == b"\r\n":
                        append(buf[pos:data_end])
                        pos = data_end + 2
                        continue
                    self._remaining = size
                    state = _CHUNK_DATA
        finally:
            self.state = state
            if parts:
                out.append(Body(self.side, bytes(parts[0]) if len(parts) == 1 else b"".join(parts)))
        return pos

    @staticmethod
    def _whole_chunks(
        buf: bytes | bytearray, pos: int, end: int, parts: list[bytes | bytearray]
    ) -> int:
        """Many small chunks in one read (a streaming server sends one per event), cut in C.

        Splitting at every CRLF, hex digits, CRLF may also cut inside data; a cut is
        kept only if every piece is exactly as long as the size line before it says,
        which a cut inside data can never satisfy (its piece is shorter). The last
        chunk, the last-chunk (size 0) and any size line with extensions or bare LFs
        are left to the chunk-by-chunk loop. Returns where that loop goes on.
        """
        pieces = _SIZE_LINE.split(b"\r\n" + buf[pos:end])
        # [b"", size 1, data 1, size 2, data 2, ..., size n, the rest]
        n = (len(pieces) - 1) // 2 - 1  # the chunks known whole: all but the last
        if n < 1 or pieces[0]:
            return pos
        sizes = pieces[1 : 2 * n : 2]
        data = pieces[2 : 2 * n + 1 : 2]
        lengths = list(map(int, sizes, repeat(16)))
        if lengths != list(map(len, data)) or 0 in lengths:
            return pos
        parts += data
        return pos + sum(map(len, sizes)) + sum(lengths) + 4 * n

    def _find_head_end(self, buf: bytes | bytearray, pos: int) -> tuple[int, int]:
        """(start, end) of the next head: `end` is just past its blank line, or -1.

        RFC 9112 §2.2: blank lines before a start line are ignored, and a recipient
        MAY take a single LF as a line terminator, so "\n\n" and "\n\r\n" both end
        a head. `_scan` remembers how far we looked, so a head arriving one byte at
        a time is not rescanned from its start each time.
        """
        # One regex step, not a Python loop per line: a peer sending nothing but
        # newlines must cost what any other ignored byte costs.
        pos = _BLANK_LINES.match(buf, pos).end()  # type: ignore[union-attr]  # always matches
        # The first "\n\n" or "\n\r\n", found in C. A match that the next read could
        # complete starts in the last 2 bytes, so the next search resumes 3 bytes back.
        end = _HEAD_END.search(buf, pos + max(0, self._scan - 3))
        if end is None:
            self._scan = len(buf) - pos
            return pos, -1
        return pos, end.end()

    def _finish(self, out: list[HttpEvent], trailers: Headers | None = None) -> None:
        out.append(End(self.side, trailers))
        self.state = _HEAD

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        raise NotImplementedError

    def eof(self, out: list[HttpEvent]) -> None:
        if self.state is _UNTIL_CLOSE:
            self._run(out)
            self._finish(out)
        elif not self.idle:
            raise DecodeError(f"stream ended inside a message ({self.state.name.lower()})")

    def _split_head(self, head: bytes) -> tuple[bytes, Headers]:
        lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise DecodeError("empty message head")
        return lines[0].encode("latin-1"), _parse_header_lines(lines[1:])

    def _start_body(self, headers: Headers, *, until_close_allowed: bool) -> None:
        """RFC 9112 §6.3 steps 4-8: Transfer-Encoding, then Content-Length, then close."""
        codings = headers.tokens("transfer-encoding")
        if codings:
            if codings[-1] == "chunked":
                self.state = _CHUNK_SIZE
            elif until_close_allowed:
                self.state = _UNTIL_CLOSE
            else:
                # §6.3 step 4: a request whose final coding is not chunked is unframeable.
                raise DecodeError(f"request with Transfer-Encoding {codings[-1]!r} but not chunked")
            return
        length = _content_length(headers)
        if length is None:
            self.state = _UNTIL_CLOSE if until_close_allowed else _HEAD
        else:
            self._remaining = length
            self.state = _LENGTH if length else _HEAD


class _RequestReader(_Reader):
    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(Side.CLIENT)
        self.conn = conn

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        if head.startswith(b"PRI * HTTP/2.0"):
            # The HTTP/2 connection preface (RFC 9113 §3.4): prior knowledge or ALPN h2.
            raise DecodeError("HTTP/2 connection: only HTTP/1.1 is decoded")
        line, headers = self._split_head(head)
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise DecodeError(f"not an HTTP/1.x request line: {_excerpt(line)}")
        method = parts[0].decode("latin-1")
        if not method.isalpha() or not method.isupper():
            raise DecodeError(f"invalid method {method[:20]!r}")
        req = RequestHead(method, parts[1].decode("latin-1"), parts[2].decode("latin-1"), headers)
        out.append(Head(req))
        self.conn._methods.append(method)
        self._start_body(headers, until_close_allowed=False)
        if self.state is _HEAD:
            out.append(End(Side.CLIENT))
        # After a CONNECT or an Upgrade request, what the client sends next may not
        # be HTTP at all; hold it until the response says which it is.
        if method == "CONNECT" or (
            "upgrade" in headers and "upgrade" in headers.tokens("connection")
        ):
            if self.state is _HEAD:
                self.state = _PAUSED
            else:
                self._pause_after_body = True

    _pause_after_body = False

    def _finish(self, out: list[HttpEvent], trailers: Headers | None = None) -> None:
        super()._finish(out, trailers)
        if self._pause_after_body:
            self._pause_after_body = False
            self.state = _PAUSED


class _ResponseReader(_Reader):
    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(Side.SERVER)
        self.conn = conn

    def on_head(self, head: bytes, out: list[HttpEvent]) -> None:
        line, headers = self._split_head(head)
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise DecodeError(f"not an HTTP/1.x status line: {_excerpt(line)}")
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
        if self.state is _HEAD:
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

    @property
    def client_buffered(self) -> int:
        """Client bytes held for a message not yet complete (e.g. half a request head)."""
        return self._requests.buffered

    def _upgrade(self, protocol: str, out: list[HttpEvent]) -> None:
        self.upgraded = protocol.lower()
        self._requests.state = self._responses.state = _DONE
        self._requests._buf.clear()
        self._responses._buf.clear()
        out.append(Upgraded(self.upgraded))

    def _resume_requests(self, out: list[HttpEvent]) -> None:
        """An Upgrade/CONNECT was refused: the held client bytes are HTTP after all."""
        reader = self._requests
        if not self._methods:
            # The request still being sent is the one just answered: its upgrade was
            # refused before its body ended, so what follows the body is HTTP again.
            reader._pause_after_body = False
        if reader.state is _PAUSED:
            reader.state = _HEAD
            if reader._buf:
                reader._run(out)
