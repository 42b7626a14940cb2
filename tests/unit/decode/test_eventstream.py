"""AWS event stream framing: prelude, typed headers, payload, both CRCs."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.eventstream import EventStreamDecoder, EventStreamMessage, encode_message
from oisp_sensor.errors import DecodeError
from tests.helpers import split

FIRST = encode_message({":event-type": "chunk", ":message-type": "event"}, b'{"bytes":"e30="}')
SECOND = encode_message(
    {":event-type": "metadata", "flag": True, "n": -7, "raw": b"\x00\x01"}, b"{}"
)
STREAM = FIRST + SECOND


def messages(
    data: bytes, offsets: list[int] | None = None
) -> tuple[list[EventStreamMessage], list[str]]:
    decoder = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    errors: list[str] = []
    for piece in split(data, offsets):
        decoder.feed(piece)
        while True:
            try:
                msg = decoder.next_message()
            except DecodeError as e:
                errors.append(str(e))
                continue
            if msg is None:
                break
            out.append(msg)
    try:
        decoder.close()
    except DecodeError as e:
        errors.append(str(e))
    return out, errors


def test_round_trip_headers_and_payload() -> None:
    got, errors = messages(STREAM)
    assert errors == []
    assert got[0].event_type == "chunk" and got[0].message_type == "event"
    assert got[0].payload == b'{"bytes":"e30="}'
    assert got[1].headers == {":event-type": "metadata", "flag": True, "n": -7, "raw": b"\x00\x01"}
    assert got[1].message_type == "event"  # the default when the header is absent


def test_every_header_type() -> None:
    """Types 2, 3, 5, 8 and 9 are not produced by `encode_message`; built here by hand."""
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = (
        b"\x01b\x02\xff"
        + b"\x01s\x03"
        + struct.pack(">h", -300)
        + b"\x01l\x05"
        + struct.pack(">q", 2**40)
        + b"\x01t\x08"
        + struct.pack(">q", 1_700_000_000_000)
        + b"\x01u\x09"
        + uid.bytes
        + b"\x01f\x01"
    )
    total = 16 + len(headers)
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers
    frame = body + struct.pack(">I", zlib.crc32(body))
    (msg,), errors = messages(frame)
    assert errors == []
    assert msg.headers == {
        "b": -1,
        "s": -300,
        "l": 2**40,
        "t": 1_700_000_000_000,
        "u": uid,
        "f": False,
    }
    assert msg.payload == b""


def test_bad_message_crc_skips_only_that_message() -> None:
    corrupt = bytearray(FIRST)
    corrupt[-5] ^= 0x01
    got, errors = messages(bytes(corrupt) + SECOND)
    assert [m.event_type for m in got] == ["metadata"]
    assert errors == ["event stream message CRC mismatch; message skipped"]


def test_bad_prelude_crc_stops_framing() -> None:
    corrupt = bytearray(FIRST)
    corrupt[9] ^= 0x01  # inside the prelude CRC
    got, errors = messages(bytes(corrupt) + SECOND)
    assert got == []
    assert errors == ["event stream prelude CRC mismatch; the rest cannot be framed"]


def test_impossible_lengths_and_truncation() -> None:
    prelude = struct.pack(">II", 8, 0)  # shorter than the smallest message
    got, errors = messages(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8)
    assert got == [] and "impossible lengths" in errors[0]
    got, errors = messages(STREAM[:-3])
    assert [m.event_type for m in got] == ["chunk"]
    assert errors == [f"event stream ended inside a message ({len(SECOND) - 3} bytes left)"]


def test_malformed_headers_inside_a_valid_frame() -> None:
    headers = b"\x05ab"  # name length says 5, only 2 bytes follow
    total = 16 + len(headers)
    prelude = struct.pack(">II", total, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers
    got, errors = messages(body + struct.pack(">I", zlib.crc32(body)) + SECOND)
    assert [m.event_type for m in got] == ["metadata"]
    assert len(errors) == 1 and "headers" in errors[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=20))
def test_any_split_gives_the_same_messages(offsets: list[int]) -> None:
    assert messages(STREAM, offsets) == messages(STREAM)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    got, errors = messages(data)
    assert len(got) + len(errors) <= len(data) // 16 + 1


def test_garbage_is_reported() -> None:
    with pytest.raises(DecodeError):
        decoder = EventStreamDecoder()
        decoder.feed(b"\x00" * 12 + b"garbage!")
        decoder.next_message()
