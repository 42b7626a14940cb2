"""Where each HTTP/1.1 request starts and ends in a client's byte stream.

The relay copies bytes without parsing them, with two exceptions that need request
boundaries: a plain-HTTP proxy connection (absolute-form requests) may name a
different origin in each request, and a failed upstream must answer the client's
request only once the request has been read. This is the minimum of RFC 9112 §6
for that: heads, Content-Length and chunked bodies. Bytes pass through unchanged:
the concatenation of every segment's `raw` is exactly the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from oisp_sensor.errors import CaptureError


class FramingError(CaptureError):
    """The client's bytes are not HTTP/1.1 requests."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    raw: bytes
    method: str
    target: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated name


@dataclass(frozen=True, slots=True)
class BodyBytes:
    raw: bytes


@dataclass(frozen=True, slots=True)
class RequestEnd:
    pass


Segment = RequestHead | BodyBytes | RequestEnd

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(6)
_END = RequestEnd()


def parse_head(raw: bytes) -> RequestHead:
    """A request head (request line + fields, ending in an empty line)."""
    text = raw.decode("latin-1").lstrip("\r\n")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise FramingError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise FramingError(f"malformed header line: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return RequestHead(raw=raw, method=parts[0], target=parts[1], headers=headers)


class RequestFramer:
    """Incremental splitter of a client's stream into heads, body bytes and request ends."""

    def __init__(self, max_head: int = 64 * 1024) -> None:
        self.max_head = max_head
        self._state = _HEAD
        self._buf = bytearray()  # an incomplete head, chunk-size line or trailer
        self._remaining = 0

    @property
    def between_requests(self) -> bool:
        return self._state == _HEAD and not self._buf

    def feed(self, data: bytes) -> list[Segment]:
        out: list[Segment] = []
        pos, n = 0, len(data)
        while pos < n:
            state = self._state
            if state == _HEAD:
                pos = self._head(data, pos, out)
            elif state == _LENGTH or state == _CHUNK_DATA:
                take = min(self._remaining, n - pos)
                out.append(BodyBytes(data[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if state == _LENGTH:
                        self._state = _HEAD
                        out.append(_END)
                    else:
                        self._state = _CHUNK_CRLF
                        self._remaining = 2
            elif state == _CHUNK_CRLF:
                take = min(self._remaining, n - pos)
                out.append(BodyBytes(data[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _CHUNK_SIZE
            else:  # a chunk-size line or a trailer line
                pos = self._line(data, pos, out)
        return out

    def _head(self, data: bytes, pos: int, out: list[Segment]) -> int:
        start = max(0, len(self._buf) - 3)
        self._buf += data[pos:]
        end = self._buf.find(b"\r\n\r\n", start)
        if end < 0:
            if len(self._buf) > self.max_head:
                raise FramingError(f"request head larger than {self.max_head} bytes")
            return len(data)
        used = end + 4 - (len(self._buf) - (len(data) - pos))
        raw = bytes(self._buf[: end + 4])
        self._buf.clear()
        head = parse_head(raw)
        out.append(head)
        self._begin_body(head, out)
        return pos + used

    def _begin_body(self, head: RequestHead, out: list[Segment]) -> None:
        te = head.headers.get("transfer-encoding", "").lower()
        if te:
            if te.rsplit(",", 1)[-1].strip() != "chunked":
                raise FramingError(f"request with unsupported transfer-encoding {te!r}")
            self._state = _CHUNK_SIZE
            return
        length = head.headers.get("content-length")
        if length:
            if not length.isdigit():
                raise FramingError(f"bad content-length {length!r}")
            self._remaining = int(length)
        if self._remaining:
            self._state = _LENGTH
        else:
            out.append(_END)

    def _line(self, data: bytes, pos: int, out: list[Segment]) -> int:
        nl = data.find(b"\n", pos)
        if nl < 0:
            self._buf += data[pos:]
            if len(self._buf) > self.max_head:
                raise FramingError("chunk-size or trailer line too long")
            out.append(BodyBytes(data[pos:]))
            return len(data)
        line = bytes(self._buf) + data[pos : nl + 1]
        self._buf.clear()
        out.append(BodyBytes(data[pos : nl + 1]))
        if self._state == _CHUNK_SIZE:
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise FramingError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                self._state = _TRAILER
            else:
                self._state = _CHUNK_DATA
                self._remaining = size
        elif line.strip() == b"":  # the empty line that ends the trailer section
            self._state = _HEAD
            out.append(_END)
        return nl + 1
