"""Request boundaries for the relay's plain-HTTP and 502 paths (capture/framing.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oisp_sensor.capture.framing import (
    BodyBytes,
    FramingError,
    RequestEnd,
    RequestFramer,
    RequestHead,
)

GET = b"GET http://localhost:11434/api/tags HTTP/1.1\r\nHost: localhost:11434\r\n\r\n"
POST = (
    b"POST http://localhost:11434/api/chat HTTP/1.1\r\nHost: localhost:11434\r\n"
    b"Content-Length: 11\r\n\r\nhello world"
)
CHUNKED = (
    b"POST http://other:8000/v1/chat/completions HTTP/1.1\r\nHost: other:8000\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
)
STREAM = GET + POST + CHUNKED


def feed_all(framer: RequestFramer, pieces: list[bytes]) -> list[object]:
    out: list[object] = []
    for piece in pieces:
        out += framer.feed(piece)
    return out


def summary(segments: list[object]) -> tuple[list[str], bytes]:
    """(the sequence of heads' targets and ends, all bytes concatenated)."""
    marks, data = [], b""
    for seg in segments:
        if isinstance(seg, RequestHead):
            marks.append(seg.target)
            data += seg.raw
        elif isinstance(seg, BodyBytes):
            data += seg.raw
        elif isinstance(seg, RequestEnd):
            marks.append("end")
    return marks, data


def test_three_requests_whole() -> None:
    marks, data = summary(RequestFramer().feed(STREAM))
    assert marks == [
        "http://localhost:11434/api/tags",
        "end",
        "http://localhost:11434/api/chat",
        "end",
        "http://other:8000/v1/chat/completions",
        "end",
    ]
    assert data == STREAM


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_boundaries_and_bytes(cuts: list[int]) -> None:
    edges = sorted({0, len(STREAM), *cuts})
    pieces = [STREAM[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    framer = RequestFramer()
    assert summary(feed_all(framer, pieces)) == summary(RequestFramer().feed(STREAM))
    assert framer.between_requests


def test_head_fields_are_parsed() -> None:
    (head, *_rest) = RequestFramer().feed(POST)
    assert isinstance(head, RequestHead)
    assert head.method == "POST" and head.headers["content-length"] == "11"


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_raise_framing_error(data: bytes) -> None:
    with pytest.raises(FramingError):
        RequestFramer().feed(data)


def test_head_size_is_bounded() -> None:
    framer = RequestFramer(max_head=1024)
    with pytest.raises(FramingError, match="larger than 1024"):
        framer.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
