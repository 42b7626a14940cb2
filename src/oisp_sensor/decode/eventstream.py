"""AWS event stream framing (`application/vnd.amazon.eventstream`), as Bedrock streams use it.

Each message is binary and self-delimiting:

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers | payload | message CRC32 (u32)

all integers big-endian; the prelude CRC covers the first 8 bytes, the message CRC
everything before it. A header is a 1-byte name length, the name, a 1-byte type and
a typed value (botocore's `eventstream.py` lists the ten types decoded here).

A message whose CRC does not match is reported as a `DecodeError` and skipped — its
length was vouched for by the prelude CRC, so the stream stays framed. A bad prelude
CRC (or an impossible length) means the length cannot be trusted: the decoder then
reports once and ignores the rest of the stream.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field

from oisp_sensor.errors import DecodeError

PRELUDE = 12  # total length, headers length, prelude CRC
MIN_MESSAGE = PRELUDE + 4  # no headers, no payload, message CRC
MAX_HEADERS = 128 * 1024
MAX_PAYLOAD = 24 * 1024 * 1024  # botocore's limits

HeaderValue = bool | int | bytes | str | uuid.UUID

# type id -> (struct format, size) for the fixed-size value types
_FIXED = {2: (">b", 1), 3: (">h", 2), 4: (">i", 4), 5: (">q", 8), 8: (">q", 8)}


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> str:
        """`event`, `exception` (a modelled error) or `error` (an unmodelled one)."""
        return self.header(":message-type") or "event"

    @property
    def event_type(self) -> str | None:
        return self.header(":event-type")


class EventStreamDecoder:
    """`feed(chunk)`, then `next_message()` until None; `close()` at the end of the body."""

    __slots__ = ("_buf", "_broken")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._broken = False

    def feed(self, chunk: bytes) -> None:
        if not self._broken:
            self._buf += chunk

    def next_message(self) -> EventStreamMessage | None:
        """The next complete message, None until more bytes arrive.

        Raises `DecodeError` for a message that fails its checks; that message is
        consumed, so the next call carries on with the one after it.
        """
        buf = self._buf
        if self._broken or len(buf) < PRELUDE:
            return None
        total, headers_len, prelude_crc = struct.unpack_from(">III", buf)
        if zlib.crc32(buf[:8]) != prelude_crc:
            self._break()
            raise DecodeError("event stream prelude CRC mismatch; the rest cannot be framed")
        if total < MIN_MESSAGE or headers_len > MAX_HEADERS or headers_len > total - MIN_MESSAGE:
            self._break()
            raise DecodeError(
                f"event stream message has impossible lengths ({total}, {headers_len})"
            )
        if total - MIN_MESSAGE - headers_len > MAX_PAYLOAD:
            self._break()
            raise DecodeError(f"event stream message of {total} bytes is over the limit")
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        del buf[:total]
        (message_crc,) = struct.unpack_from(">I", raw, total - 4)
        if zlib.crc32(raw[: total - 4]) != message_crc:
            raise DecodeError("event stream message CRC mismatch; message skipped")
        headers = _parse_headers(raw[PRELUDE : PRELUDE + headers_len])
        return EventStreamMessage(headers, raw[PRELUDE + headers_len : total - 4])

    def close(self) -> None:
        """End of body: leftover bytes are a message cut short."""
        left = len(self._buf)
        self._buf = bytearray()
        if left and not self._broken:
            self._broken = True
            raise DecodeError(f"event stream ended inside a message ({left} bytes left)")

    def _break(self) -> None:
        self._broken = True
        self._buf = bytearray()


def _parse_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    i, end = 0, len(data)
    try:
        while i < end:
            name_len = data[i]
            name = data[i + 1 : i + 1 + name_len].decode("utf-8")
            i += 1 + name_len
            vtype = data[i]
            i += 1
            value: HeaderValue
            if vtype in (0, 1):
                value = vtype == 0
            elif vtype in _FIXED:
                fmt, size = _FIXED[vtype]
                (value,) = struct.unpack_from(fmt, data, i)
                i += size
            elif vtype in (6, 7):
                (length,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2 : i + 2 + length]
                if len(raw) != length:
                    raise DecodeError("event stream header value is cut short")
                value = raw if vtype == 6 else raw.decode("utf-8")
                i += 2 + length
            elif vtype == 9:
                if i + 16 > end:
                    raise DecodeError("event stream header value is cut short")
                value = uuid.UUID(bytes=data[i : i + 16])
                i += 16
            else:
                raise DecodeError(f"event stream header has unknown type {vtype}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise DecodeError(f"malformed event stream headers: {e}") from None
    return headers


def encode_message(headers: dict[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One framed message: what a Bedrock server sends (used by tests and fakes)."""
    encoded = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        if isinstance(value, bool):
            encoded += b"\x00" if value else b"\x01"
        elif isinstance(value, int):
            encoded += b"\x04" + struct.pack(">i", value)
        elif isinstance(value, bytes):
            encoded += b"\x06" + struct.pack(">H", len(value)) + value
        elif isinstance(value, uuid.UUID):
            encoded += b"\x09" + value.bytes
        else:
            raw = value.encode("utf-8")
            encoded += b"\x07" + struct.pack(">H", len(raw)) + raw
    total = MIN_MESSAGE + len(encoded) + len(payload)
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + bytes(encoded) + payload
    return message + struct.pack(">I", zlib.crc32(message))
