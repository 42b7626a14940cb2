"""HTTP/1.1 framing as a third party sees it: bytes of both directions in, events out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.http1 import (
    MAX_HEAD_BYTES,
    Body,
    End,
    Head,
    Http1Connection,
    HttpEvent,
    Informational,
    RequestHead,
    ResponseHead,
    Side,
    Upgraded,
)
from oisp_sensor.errors import DecodeError


def normalize(events: Sequence[HttpEvent]) -> list[tuple[Any, ...]]:
    """Events as plain tuples, adjacent body pieces of one side merged (chunking is invisible)."""
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if isinstance(ev, Body):
            if out and out[-1][0] == "body" and out[-1][1] == ev.side:
                out[-1] = ("body", ev.side, out[-1][2] + ev.data)
            elif ev.data:
                out.append(("body", ev.side, ev.data))
        elif isinstance(ev, Head) and isinstance(ev.head, RequestHead):
            h = ev.head
            out.append(("request", h.method, h.target, h.version, tuple(h.headers)))
        elif isinstance(ev, Head):
            assert isinstance(ev.head, ResponseHead)
            h2 = ev.head
            out.append(("response", h2.status, h2.reason, tuple(h2.headers)))
        elif isinstance(ev, Informational):
            out.append(("informational", ev.head.status, tuple(ev.head.headers)))
        elif isinstance(ev, End):
            out.append(("end", ev.side, tuple(ev.trailers) if ev.trailers else None))
        elif isinstance(ev, Upgraded):
            out.append(("upgraded", ev.protocol))
        else:  # pragma: no cover - a new event type needs a line here
            raise AssertionError(ev)
    return out


def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


def run(
    client: bytes,
    server: bytes = b"",
    *,
    client_cuts: Sequence[int] = (),
    server_cuts: Sequence[int] = (),
    eof: bool = True,
) -> list[tuple[Any, ...]]:
    """All client bytes first (as the server receives them), then the server's."""
    conn = Http1Connection()
    events: list[HttpEvent] = []
    for piece in pieces(client, client_cuts):
        events += conn.feed_client(piece)
    for piece in pieces(server, server_cuts):
        events += conn.feed_server(piece)
    if eof:
        events += conn.eof_client()
        events += conn.eof_server()
    return normalize(events)


def every_byte(data: bytes) -> list[int]:
    return list(range(1, len(data)))


C, S = Side.CLIENT, Side.SERVER

# --- golden conversations -----------------------------------------------------------------

POST_CL = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
    b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    b'{"model":"x"}'
)
RESP_CL = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
RESP_CHUNKED_TRAILERS = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b'1;a;b="q"\r\n \r\n'
    b"5\r\nworld\r\n"
    b"0;last=1\r\nX-Checksum: abc\r\nX-Other: 2\r\n\r\n"
)
RESP_CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
GET = b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n"
HEAD_REQ = b"HEAD /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n"


def resp(body: bytes, status: int = 200, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


GOLDEN: dict[str, tuple[bytes, bytes]] = {
    "content-length": (POST_CL, RESP_CL),
    "chunked-trailers": (GET, RESP_CHUNKED_TRAILERS),
    "close-delimited": (GET, RESP_CLOSE_DELIMITED),
    "keep-alive": (GET * 3, resp(b"one") + resp(b"two") + resp(b"three")),
    "pipelined-head": (
        GET + HEAD_REQ + GET,
        resp(b"aaaaa") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + resp(b"ccccc"),
    ),
    "100-continue": (
        b"POST /v1/x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        b"HTTP/1.1 100 Continue\r\n\r\n" + resp(b"done"),
    ),
    "lf-only": (
        b"POST /v1/x HTTP/1.1\nHost: h\nContent-Length: 2\n\nhi",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nyo",
    ),
    "websocket": (
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x85\x00\x00\x00\x00hello",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"\x81\x05hello",
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_conversation_survives_split_at_every_byte(name: str) -> None:
    client, server = GOLDEN[name]
    whole = run(client, server)
    assert whole, name
    assert run(client, server, client_cuts=every_byte(client), server_cuts=every_byte(server)) == (
        whole
    )


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(GOLDEN)),
    client_cuts=st.lists(st.integers(1, 400), max_size=12),
    server_cuts=st.lists(st.integers(1, 400), max_size=12),
)
def test_any_split_gives_the_same_events(
    name: str, client_cuts: list[int], server_cuts: list[int]
) -> None:
    client, server = GOLDEN[name]
    assert run(client, server, client_cuts=client_cuts, server_cuts=server_cuts) == run(
        client, server
    )


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(1, 300), max_size=8))
def test_garbage_raises_only_decode_error(data: bytes, cuts: list[int]) -> None:
    for feed in ("client", "server"):
        conn = Http1Connection()
        if feed == "server":
            conn.feed_client(GET)
        try:
            for piece in pieces(data, cuts):
                if feed == "client":
                    conn.feed_client(piece)
                else:
                    conn.feed_server(piece)
            conn.eof_client()
            conn.eof_server()
        except DecodeError:
            pass


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from([GET, POST_CL, HEAD_REQ]),
    noise=st.binary(min_size=1, max_size=40),
    at=st.integers(0, 200),
)
def test_mutated_responses_raise_only_decode_error(prefix: bytes, noise: bytes, at: int) -> None:
    """Real responses with bytes spliced in: framing breaks loudly or not at all."""
    for server in (RESP_CL, RESP_CHUNKED_TRAILERS, RESP_CLOSE_DELIMITED):
        mutated = server[:at] + noise + server[at:]
        conn = Http1Connection()
        conn.feed_client(prefix)
        try:
            conn.feed_server(mutated)
            conn.eof_server()
        except DecodeError:
            pass


# --- framing ---------------------------------------------------------------------------------


def test_content_length_request_and_response() -> None:
    events = run(POST_CL, RESP_CL)
    assert events[0][:3] == ("request", "POST", "/v1/chat/completions")
    assert ("content-length", "13") in events[0][4]
    assert events[1:3] == [("body", C, b'{"model":"x"}'), ("end", C, None)]
    assert events[3][:2] == ("response", 200)
    assert events[4:] == [("body", S, b'{"ok":true}'), ("end", S, None)]


def test_header_names_are_lowercased_values_trimmed_and_order_kept() -> None:
    events = run(b"GET / HTTP/1.1\r\nHOST:  h  \r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert events[0][4] == (("host", "h"), ("x-a", "1"), ("x-a", "2"))


def test_chunked_with_extensions_and_trailers() -> None:
    events = run(GET, RESP_CHUNKED_TRAILERS)
    assert events[-2] == ("body", S, b"hello world")
    assert events[-1] == ("end", S, (("x-checksum", "abc"), ("x-other", "2")))


def test_chunked_request_body() -> None:
    client = (
        b"POST /v1/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert run(client)[1:] == [("body", C, b"abc"), ("end", C, None)]


def test_chunk_size_in_uppercase_hex_and_lf_only_chunk_lines() -> None:
    server = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nA\n0123456789\n0\n\n"
    assert run(GET, server)[-2:] == [("body", S, b"0123456789"), ("end", S, None)]


def test_transfer_encoding_wins_over_content_length() -> None:
    # RFC 9112 §6.3 step 3: with both, Transfer-Encoding decides the framing.
    server = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    assert run(GET, server)[-2:] == [("body", S, b"ok"), ("end", S, None)]


def test_response_transfer_coding_not_ending_in_chunked_reads_until_close() -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"
    assert run(GET, server, eof=False)[-1] == ("body", S, b"abc")
    assert run(GET, server)[-1] == ("end", S, None)


def test_request_transfer_coding_not_ending_in_chunked_is_an_error() -> None:
    with pytest.raises(DecodeError, match="not chunked"):
        run(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")


def test_request_without_length_has_no_body() -> None:
    events = run(GET)
    assert [e[0] for e in events] == ["request", "end"]
    assert events[1] == ("end", C, None)


def test_close_delimited_body_ends_only_at_eof() -> None:
    without_eof = run(GET, RESP_CLOSE_DELIMITED, eof=False)
    assert without_eof[-1] == ("body", S, b"until the end")
    assert run(GET, RESP_CLOSE_DELIMITED)[-1] == ("end", S, None)


def test_keep_alive_with_many_exchanges() -> None:
    n = 60
    client = b"".join(
        b"POST /v1/%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
        % (i, len(b"%d" % i), b"%d" % i)
        for i in range(n)
    )
    server = b"".join(resp(b"r%d" % i) for i in range(n))
    events = run(client, server, client_cuts=range(7, len(client), 13))
    requests = [e for e in events if e[0] == "request"]
    bodies = [e[2] for e in events if e[0] == "body"]
    assert [r[2] for r in requests] == [f"/v1/{i}" for i in range(n)]
    assert bodies == [b"%d" % i for i in range(n)] + [b"r%d" % i for i in range(n)]
    assert sum(1 for e in events if e[0] == "end") == 2 * n


def test_pipelined_responses_are_framed_by_their_own_request_method() -> None:
    # The HEAD response announces 5 bytes but carries none (RFC 9112 §6.3 step 1);
    # a parser that ignored the method would swallow the next response as its body.
    server = resp(b"aaaaa") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + resp(b"ccccc")
    events = run(GET + HEAD_REQ + GET, server)
    responses = [e for e in events if e[0] in ("response", "body", "end") and e[1] != C]
    assert [e[0] for e in responses] == [
        "response",
        "body",
        "end",
        "response",
        "end",
        "response",
        "body",
        "end",
    ]
    assert [e[2] for e in responses if e[0] == "body"] == [b"aaaaa", b"ccccc"]


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body_whatever_their_headers_say(status: int) -> None:
    server = b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status + resp(b"next")
    events = run(GET + GET, server)
    assert events[-5:] == [
        ("response", status, "X", (("content-length", "10"),)),
        ("end", S, None),
        ("response", 200, "X", (("content-length", "4"),)),
        ("body", S, b"next"),
        ("end", S, None),
    ]


def test_head_response_with_chunked_header_has_no_body() -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert run(HEAD_REQ, server)[-1] == ("end", S, None)


def test_100_continue_then_body_then_final_response() -> None:
    client, server = GOLDEN["100-continue"]
    events = run(client, server)
    assert [e[0] for e in events] == [
        "request",
        "body",
        "end",
        "informational",
        "response",
        "body",
        "end",
    ]
    assert events[3][1] == 100


def test_interim_responses_with_headers_precede_the_final_one() -> None:
    server = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + resp(b"ok")
    events = run(GET, server)
    assert events[2] == ("informational", 103, (("link", "</a.css>; rel=preload"),))
    assert events[3][:2] == ("response", 200)


def test_response_with_no_known_request_is_framed_as_a_get() -> None:
    # A capture that began mid-connection: the response is still decoded.
    assert run(b"", resp(b"orphan"))[-2:] == [("body", S, b"orphan"), ("end", S, None)]


def test_blank_lines_before_a_request_line_are_ignored() -> None:
    events = run(b"\r\n\r\n" + GET + b"\r\n" + GET)
    assert [e[0] for e in events] == ["request", "end", "request", "end"]


def test_headers_arriving_one_byte_at_a_time() -> None:
    server = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Request-Id: req_1\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    conn = Http1Connection()
    conn.feed_client(GET)
    got: list[HttpEvent] = []
    for i in range(len(server)):
        got += conn.feed_server(server[i : i + 1])
        if i < len(server) - 1:
            assert got == [], f"head reported before its blank line (byte {i})"
    assert normalize(got)[0][:2] == ("response", 200)
    assert conn.buffered == 0


def test_crlf_lines_split_between_cr_and_lf_are_not_taken_for_lf_only_lines() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for cut in range(1, len(head)):
        assert run(GET, head, server_cuts=[cut]) == run(GET, head), cut


def test_lf_only_lines() -> None:
    client, server = GOLDEN["lf-only"]
    events = run(client, server)
    assert ("body", C, b"hi") in events and ("body", S, b"yo") in events


def test_obs_fold_continuation_lines_are_joined_with_a_space() -> None:
    events = run(b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: first\r\n  second\r\n\tthird\r\n\r\n")
    assert ("x-long", "first second third") in events[0][4]


def test_continuation_line_before_any_header_is_an_error() -> None:
    with pytest.raises(DecodeError, match="continuation"):
        run(b"GET / HTTP/1.1\r\n folded\r\n\r\n")


def test_identical_repeated_content_lengths_are_one_value() -> None:
    server = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    assert run(GET, server)[-2:] == [("body", S, b"ok"), ("end", S, None)]


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2, 3\r\n",
    ],
)
def test_conflicting_content_length_is_an_error(headers: bytes) -> None:
    with pytest.raises(DecodeError, match="conflicting Content-Length"):
        run(GET, b"HTTP/1.1 200 OK\r\n" + headers + b"\r\nok")


@pytest.mark.parametrize(
    "value", [b"-1", b"1e3", b"0x10", b"", b"\xb2", b"\xb9\xb2", b"12345678901234567890", b"+5"]
)
def test_invalid_content_length_is_an_error(value: bytes) -> None:
    with pytest.raises(DecodeError, match="Content-Length"):
        run(GET, b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")


@pytest.mark.parametrize("size", [b"0x5", b"+5", b"5_0", b"-5", b"zz", b"", b" ", b"1" * 17])
def test_invalid_chunk_size_is_an_error(size: bytes) -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n"
    with pytest.raises(DecodeError, match="chunk size"):
        run(GET, server)


def test_chunk_without_crlf_after_its_data_is_an_error() -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n"
    with pytest.raises(DecodeError, match="CRLF after chunk"):
        run(GET, server)


def test_overlong_chunk_size_line_is_an_error() -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;" + b"x" * 5000
    with pytest.raises(DecodeError, match="chunk-size line too long"):
        run(GET, server, eof=False)


def test_absurd_head_without_end_is_an_error_before_it_is_buffered_whole() -> None:
    conn = Http1Connection()
    conn.feed_client(GET)
    conn.feed_server(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(DecodeError, match="larger than"):
        for _ in range(MAX_HEAD_BYTES // 1000 + 2):
            conn.feed_server(b"X-Filler: " + b"a" * 988 + b"\r\n")


def test_absurd_head_arriving_whole_is_an_error() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n"
    with pytest.raises(DecodeError, match="larger than"):
        run(head)


def test_too_many_trailer_fields_is_an_error() -> None:
    server = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X: 1\r\n" * 300
    with pytest.raises(DecodeError, match="trailer"):
        run(GET, server, eof=False)


@pytest.mark.parametrize(
    ("client", "match"),
    [
        (b"GARBAGE\r\n\r\n", "request line"),
        (b"GET /\r\n\r\n", "request line"),
        (b"GET / HTTP/2\r\n\r\n", "request line"),
        (b"GET  / HTTP/1.1\r\n\r\n", "request line"),
        (b"get / HTTP/1.1\r\n\r\n", "method"),
        (b"G@T / HTTP/1.1\r\n\r\n", "method"),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "malformed header"),
        (b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", "malformed header"),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", "whitespace in a header field name"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "request line"),
    ],
)
def test_malformed_requests_are_errors(client: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        run(client)


@pytest.mark.parametrize(
    ("server", "match"),
    [
        (b"HTTP/1.1 OK\r\n\r\n", "status line"),
        (b"HTTP/2 200 OK\r\n\r\n", "status line"),
        (b"ICY 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "status code"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "whitespace in a header field name"),
    ],
)
def test_malformed_responses_are_errors(server: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        run(GET, server)


def test_http2_preface_is_named_in_the_error() -> None:
    with pytest.raises(DecodeError, match="HTTP/2 connection: only HTTP/1.1 is decoded"):
        run(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00")


def test_status_line_without_reason_phrase() -> None:
    assert run(GET, b"HTTP/1.1 200\r\n\r\n", eof=False)[2] == ("response", 200, "", ())


# --- truncation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "server", "state"),
    [
        (b"GET / HTTP/1.1\r\nHost:", b"", "head"),
        (POST_CL[:-3], b"", "length"),
        (GET, RESP_CL[:-2], "length"),
        (GET, RESP_CHUNKED_TRAILERS[:90], "chunk"),
        (GET, RESP_CHUNKED_TRAILERS[:-2], "trailers"),
        (GET, b"HTTP/1.1 200 OK\r\nContent-", "head"),
    ],
)
def test_stream_ending_inside_a_message_is_an_error(
    client: bytes, server: bytes, state: str
) -> None:
    with pytest.raises(DecodeError, match=f"stream ended inside a message \\({state}"):
        run(client, server)


def test_stream_ending_between_messages_is_clean() -> None:
    assert run(POST_CL + b"\r\n", RESP_CL + b"\r\n")[-1] == ("end", S, None)


# --- leaving HTTP ----------------------------------------------------------------------------


def test_websocket_upgrade_stops_http_parsing_and_marks_the_connection() -> None:
    client, server = GOLDEN["websocket"]
    conn = Http1Connection()
    events = conn.feed_client(client) + conn.feed_server(server)
    # Frames after the handshake are not HTTP and must not be parsed as such.
    events += conn.feed_client(b"\x88\x80\x00\x00\x00\x00") + conn.feed_server(b"\x88\x00garbage")
    events += conn.eof_client() + conn.eof_server()
    assert conn.upgraded == "websocket"
    assert [e[0] for e in normalize(events)] == ["request", "end", "response", "upgraded"]
    assert normalize(events)[-1] == ("upgraded", "websocket")
    assert conn.buffered == 0


def test_refused_upgrade_resumes_http_with_the_held_bytes() -> None:
    client = (
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + GET
    )
    server = resp(b"no ws") + resp(b"models")
    events = run(client, server)
    assert [e[0] for e in events] == [
        "request",
        "end",  # the second request waits: it might have been WebSocket bytes
        "response",
        "request",
        "end",
        "body",
        "end",
        "response",
        "body",
        "end",
    ]
    assert [e[2] for e in events if e[0] == "body"] == [b"no ws", b"models"]


def test_upgrade_token_in_connection_is_needed_to_pause() -> None:
    client = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n" + GET
    assert [e[0] for e in run(client)] == ["request", "end", "request", "end"]


def test_upgrade_request_with_a_body_pauses_after_the_body() -> None:
    client = (
        b"POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: foo\r\nConnection: upgrade\r\n"
        b"Content-Length: 3\r\n\r\nabc\x00\x01binary"
    )
    server = b"HTTP/1.1 101 Switching\r\nUpgrade: foo\r\n\r\n\x00\x00"
    events = run(client, server)
    assert events[-1] == ("upgraded", "foo")
    assert ("body", C, b"abc") in events


def test_refused_upgrade_whose_response_arrives_during_the_request_body() -> None:
    conn = Http1Connection()
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: foo\r\nConnection: upgrade\r\n"
    events = conn.feed_client(head + b"Content-Length: 6\r\n\r\nabc")
    events += conn.feed_server(resp(b"refused", 400))
    # The refusal came early, so what follows the body is plain HTTP: a HEAD whose
    # response must be framed as a HEAD's (no body despite its Content-Length).
    events += conn.feed_client(b"def" + HEAD_REQ)
    events += conn.feed_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + resp(b"third"))
    got = normalize(events)
    assert [e[1] for e in got if e[0] == "request"] == ["POST", "HEAD"]
    assert [e[2] for e in got if e[0] == "body" and e[1] == S] == [b"refused", b"third"]


def test_connect_tunnel_stops_http_parsing() -> None:
    client = b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n\x16\x03\x01"
    server = b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03\x00\x02"
    conn = Http1Connection()
    events = normalize(conn.feed_client(client) + conn.feed_server(server) + conn.eof_client())
    assert events[0][:3] == ("request", "CONNECT", "api.openai.com:443")
    assert events[-1] == ("upgraded", "connect")
    assert conn.upgraded == "connect"


def test_refused_connect_keeps_parsing_http() -> None:
    client = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + GET
    server = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n" + resp(
        b"ok"
    )
    events = run(client, server)
    assert [e[2] for e in events if e[0] == "request"] == ["a:443", "/v1/models"]
    assert events[-2:] == [("body", S, b"ok"), ("end", S, None)]


def test_too_much_data_while_waiting_for_an_upgrade_answer_is_an_error() -> None:
    conn = Http1Connection()
    conn.feed_client(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
    with pytest.raises(DecodeError, match="after an Upgrade"):
        for _ in range(40):
            conn.feed_client(b"\x00" * 64 * 1024)
