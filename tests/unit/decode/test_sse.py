"""text/event-stream parsing per WHATWG HTML §9.2.6, in any chunking."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode import sse
from oisp_sensor.decode.sse import SseDecoder, SseMessage


def parse(*chunks: bytes) -> list[SseMessage]:
    dec = SseDecoder()
    out: list[SseMessage] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.flush()


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def reference(stream: bytes, max_line: int | None = None) -> list[SseMessage]:
    """The standard's algorithm, written out literally and slowly, as the oracle.

    With `max_line`, a longer line is dropped and so is the event it belongs to.
    """
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)
    lines.pop()  # the part after the last line terminator is not a line (yet)
    out: list[SseMessage] = []
    data, event, last_id, retry, lost = "", "", None, None, False
    for raw in lines:
        if max_line is not None and len(raw) > max_line:
            lost = True
            continue
        line = raw.decode("utf-8", "replace")
        if line == "":
            if data and not lost:
                out.append(
                    SseMessage(event=event or "message", data=data[:-1], id=last_id, retry=retry)
                )
            data, event, lost = "", "", False
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "data":
            data += value + "\n"
        elif field == "event":
            event = value
        elif field == "id":
            if "\0" not in value:
                last_id = value
        elif field == "retry":
            if value and all("0" <= ch <= "9" for ch in value):
                retry = int(value)
    return out


# --- the rules, one by one --------------------------------------------------------------------


def test_data_lines_accumulate_joined_by_lf() -> None:
    assert parse(b"data: a\ndata: b\ndata\ndata:c\n\n") == [SseMessage(data="a\nb\n\nc")]


def test_one_leading_space_is_dropped_and_only_one() -> None:
    assert parse(b"data:  two spaces\n\n") == [SseMessage(data=" two spaces")]


def test_event_names_the_message_and_resets_after_dispatch() -> None:
    got = parse(b"event: message_start\ndata: {}\n\ndata: x\n\n")
    assert [m.event for m in got] == ["message_start", "message"]


def test_empty_data_dispatches_nothing_and_forgets_the_event_name() -> None:
    assert parse(b"event: ping\n\ndata: x\n\n") == [SseMessage(data="x")]


def test_a_bare_data_field_dispatches_an_empty_message() -> None:
    # "data" alone appends "" + LF, so the buffer is not empty: an event with data "".
    assert parse(b"data\n\n") == [SseMessage(data="")]


def test_id_persists_across_messages_and_id_with_nul_is_ignored() -> None:
    got = parse(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n")
    assert [m.id for m in got] == ["1", "1", "1", ""]


def test_retry_takes_ascii_digits_only() -> None:
    got = parse(b"retry: 3000\ndata: a\n\nretry: 12a\ndata: b\n\nretry: \xd9\xa3\ndata: c\n\n")
    assert [m.retry for m in got] == [3000, 3000, 3000]


def test_comments_and_unknown_fields_are_ignored() -> None:
    got = parse(b": keep-alive\n:\nfoo: bar\nDATA: no\ndata: yes\n\n")
    assert got == [SseMessage(data="yes")]


@pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"])
def test_every_line_terminator(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert parse(stream) == [SseMessage(event="e", data="a\nb")]


def test_mixed_line_terminators() -> None:
    assert parse(b"data: a\rdata: b\r\ndata: c\n\r\n") == [SseMessage(data="a\nb\nc")]


def test_cr_at_the_end_of_a_chunk_then_lf_is_one_line_end() -> None:
    # A CRLF split across reads must not count as two line ends (= a dispatch).
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [SseMessage(data="a\nb")]


def test_cr_then_cr_across_chunks_is_two_line_ends() -> None:
    assert parse(b"data: a\r", b"\r") == [SseMessage(data="a")]


def test_cr_at_chunk_end_then_empty_chunk_then_lf() -> None:
    assert parse(b"data: a\r", b"", b"\n", b"data: b\n\n") == [SseMessage(data="a\nb")]


def test_one_leading_bom_is_skipped_even_when_split() -> None:
    bom = b"\xef\xbb\xbf"
    assert parse(bom + b"data: a\n\n") == [SseMessage(data="a")]
    assert parse(bom[:1], bom[1:2], bom[2:] + b"data: a\n\n") == [SseMessage(data="a")]
    # Only the first: a second BOM is part of the field name, so the line is unknown.
    assert parse(bom + bom + b"data: a\n\ndata: b\n\n") == [SseMessage(data="b")]


def test_unterminated_final_event_is_discarded() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [SseMessage(data="a")]
    assert parse(b"data: a\n\ndata: b") == [SseMessage(data="a")]


def test_flush_resets_for_reuse() -> None:
    dec = SseDecoder()
    dec.feed(b"data: lost\n")
    assert dec.flush() == []
    assert dec.feed(b"data: kept\n\n") == [SseMessage(data="kept")]


def test_utf8_split_inside_a_character() -> None:
    stream = "data: héllo → 世界\n\n".encode()
    for cut in range(1, len(stream)):
        assert parse(stream[:cut], stream[cut:]) == [SseMessage(data="héllo → 世界")], cut


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse(b"data: a\xffb\n\n") == [SseMessage(data="a\ufffdb")]


def test_openai_stream_shape() -> None:
    stream = b'data: {"id":"c1","choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
    assert [m.data for m in parse(stream)] == [
        '{"id":"c1","choices":[{"delta":{"content":"Hi"}}]}',
        "[DONE]",
    ]


def test_anthropic_stream_shape() -> None:
    stream = (
        b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
        b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n'
    )
    assert [(m.event, m.data) for m in parse(stream)] == [
        ("message_start", '{"type":"message_start"}'),
        ("ping", '{"type": "ping"}'),
    ]


# --- long lines --------------------------------------------------------------------------------


def test_a_long_line_in_many_small_reads_is_assembled() -> None:
    payload = b"x" * 200_000
    stream = b"data: " + payload + b"\n\n"
    dec = SseDecoder()
    got: list[SseMessage] = []
    for i in range(0, len(stream), 7):
        got += dec.feed(stream[i : i + 7])
    assert got == [SseMessage(data=payload.decode())]


def test_an_oversized_line_costs_its_event_not_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "MAX_LINE", 100)
    dec = SseDecoder()
    got = dec.feed(b"data: before\n\nevent: big\ndata: ")
    for _ in range(10):
        got += dec.feed(b"y" * 50)
    got += dec.feed(b"\ndata: more of the same event\n\n")
    got += dec.feed(b"data: " + b"z" * 200 + b"\n\ndata: after\n\n")
    assert got == [SseMessage(data="before"), SseMessage(data="after")]
    assert dec.oversized == 2


def test_an_oversized_unterminated_line_does_not_cost_the_events_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "MAX_LINE", 100)
    dec = SseDecoder()
    got = dec.feed(b"data: a\n\ndata: " + b"y" * 200)
    got += dec.feed(b"y\n\ndata: b\n\n")
    assert got == [SseMessage(data="a"), SseMessage(data="b")]
    assert dec.oversized == 1


# --- properties --------------------------------------------------------------------------------

TOKENS = [
    b"data",
    b"data:",
    b"data: ",
    b"event:",
    b"event: x",
    b"id:",
    b"id: 7",
    b"\x00",
    b"retry:",
    b"retry: 10",
    b"1",
    b":",
    b": comment",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"a",
    b"\xc3\xa9",
    b"\xe4\xb8",
    b"\x96",
    b"\xef\xbb\xbf",
    b"{}",
    b"[DONE]",
    b"ping",
    b"x",
]
streams = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(1, 200), max_size=10))
def test_matches_the_reference_algorithm_in_any_chunking(stream: bytes, cuts: list[int]) -> None:
    assert parse(*split_at(stream, cuts)) == reference(stream)


@settings(max_examples=60, deadline=None)
@given(stream=streams)
def test_split_at_every_byte(stream: bytes) -> None:
    assert parse(*[stream[i : i + 1] for i in range(len(stream))]) == reference(stream)


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=300), cuts=st.lists(st.integers(1, 300), max_size=6))
def test_arbitrary_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    assert parse(*split_at(stream, cuts)) == reference(stream)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(1, 200), max_size=10))
def test_line_limit_drops_whole_events_in_any_chunking(stream: bytes, cuts: list[int]) -> None:
    saved = sse.MAX_LINE
    sse.MAX_LINE = 12
    try:
        assert parse(*split_at(stream, cuts)) == reference(stream, max_line=12)
    finally:
        sse.MAX_LINE = saved


# Whole events as the AI APIs send them, among the odd pieces: the parser takes these
# shapes whole (`feed_raw`), and must still agree with the standard wherever a read
# boundary, a CR, a comment or a second data line falls.
EVENTS = [
    b"event: content_block_delta\ndata: {}\n\n",
    b"event: ping\ndata: {}\n\n",
    b"data: {}\n\n",
    b"data: [DONE]\n\n",
    b"event: e\ndata: a\ndata: b\n\n",
    b"event: \ndata: \n\n",
    b"data: x\nevent: y\n\n",
    b"\n",
    b"\n\n\n",
]
event_streams = st.lists(st.sampled_from(EVENTS + TOKENS), max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(stream=event_streams, cuts=st.lists(st.integers(1, 400), max_size=10))
def test_whole_event_shapes_match_the_reference(stream: bytes, cuts: list[int]) -> None:
    assert parse(*split_at(stream, cuts)) == reference(stream)


def test_feed_raw_gives_undecoded_fields() -> None:
    dec = SseDecoder()
    raw = dec.feed_raw(b'id: 9\nevent: content_block_delta\ndata: {"a":"\xc3\xa9"}\n\ndata: x\n\n')
    assert raw == [
        (b"content_block_delta", b'{"a":"\xc3\xa9"}', "9", None),
        (b"", b"x", "9", None),
    ]


def test_an_oversized_line_does_not_cost_an_earlier_event_of_the_same_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The line is dropped where it stands: the event before it, complete in the same
    read, is still dispatched; the one it belongs to is not (hypothesis found this)."""
    monkeypatch.setattr(sse, "MAX_LINE", 12)
    dec = SseDecoder()
    got = dec.feed(b"event: ping\ndata: {}\n\ndata: " + b"y" * 20 + b"\ndata: {}\n\ndata: z\n\n")
    assert got == [SseMessage(event="ping", data="{}"), SseMessage(data="z")]
    assert dec.oversized == 1


def test_three_newlines_after_an_event_in_one_read() -> None:
    """The third newline is one more empty line, not the start of another event."""
    assert parse(b"data: a\n\n\n", b"data: b\n\n") == [SseMessage(data="a"), SseMessage(data="b")]
    assert parse(b"event: e\ndata: a\n\n\n\ndata: b\n\n") == [
        SseMessage(event="e", data="a"),
        SseMessage(data="b"),
    ]


@settings(max_examples=300, deadline=None)
@given(stream=event_streams, cuts=st.lists(st.integers(1, 400), max_size=6))
def test_whole_reads_cut_at_once_match_the_reference(stream: bytes, cuts: list[int]) -> None:
    """Long reads of nothing but the common shapes are cut in one pass; made to happen for
    reads of any length here, the result must still be the standard's."""
    saved = sse._SPLIT_MIN
    sse._SPLIT_MIN = 0
    try:
        assert parse(*split_at(stream, cuts)) == reference(stream)
    finally:
        sse._SPLIT_MIN = saved
