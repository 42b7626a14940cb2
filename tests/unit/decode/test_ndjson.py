"""NDJSON splitting: whole lines out, in any chunking, bounded memory."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode import ndjson
from oisp_sensor.decode.ndjson import NdjsonDecoder


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def lines(*chunks: bytes) -> list[bytes]:
    dec = NdjsonDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush()


def reference(data: bytes, max_line: int | None = None) -> list[bytes]:
    raw = data.split(b"\n")
    return [
        line.strip() for line in raw if line.strip() and (max_line is None or len(line) <= max_line)
    ]


def test_lines_are_stripped_and_blank_lines_skipped() -> None:
    assert lines(b'{"a":1}\r\n\n  \n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']


def test_the_last_line_without_newline_comes_out_at_flush() -> None:
    dec = NdjsonDecoder()
    assert dec.feed(b'{"a":1}\n{"done":') == [b'{"a":1}']
    assert dec.feed(b"true}") == []
    assert dec.flush() == [b'{"done":true}']
    assert dec.flush() == []


def test_ollama_stream() -> None:
    stream = (
        b'{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
        b'"content":"Hi"},"done":false}\n'
        b'{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant",'
        b'"content":""},"done":true,"done_reason":"stop","eval_count":2}\n'
    )
    assert len(lines(*split_at(stream, range(1, len(stream), 3)))) == 2


def test_a_long_line_in_many_reads_is_joined_once() -> None:
    line = b'{"x":"' + b"a" * 300_000 + b'"}'
    got = lines(*[line[i : i + 5] for i in range(0, len(line), 5)], b"\n")
    assert got == [line]


def test_oversized_lines_are_dropped_and_counted() -> None:
    saved = ndjson.MAX_LINE
    ndjson.MAX_LINE = 10
    try:
        dec = NdjsonDecoder()
        got = dec.feed(b"ok1\n" + b"x" * 8)
        got += dec.feed(b"x" * 8)  # now 16 > 10: dropped, the rest of the line skipped
        got += dec.feed(b"xxxx\nok2\n" + b"y" * 20 + b"\nok3")
        got += dec.flush()
        assert got == [b"ok1", b"ok2", b"ok3"]
        assert dec.oversized == 2
    finally:
        ndjson.MAX_LINE = saved


TOKENS = [b"{", b"}", b'"a"', b":", b"1", b"\n", b"\r\n", b" ", b"\t", b"[]", b"x" * 7]
streams = st.lists(st.sampled_from(TOKENS), max_size=50).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(1, 200), max_size=10))
def test_any_chunking_gives_the_same_lines(stream: bytes, cuts: list[int]) -> None:
    assert lines(*split_at(stream, cuts)) == reference(stream)


@settings(max_examples=60, deadline=None)
@given(stream=streams)
def test_split_at_every_byte(stream: bytes) -> None:
    assert lines(*[stream[i : i + 1] for i in range(len(stream))]) == reference(stream)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(1, 200), max_size=10))
def test_line_limit_is_chunking_independent(stream: bytes, cuts: list[int]) -> None:
    saved = ndjson.MAX_LINE
    ndjson.MAX_LINE = 9
    try:
        assert lines(*split_at(stream, cuts)) == reference(stream, max_line=9)
    finally:
        ndjson.MAX_LINE = saved
