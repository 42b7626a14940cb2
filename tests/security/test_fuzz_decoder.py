"""Hostile traffic never crashes the decoder: only DecodeError inside it, nothing escapes it.

The whole Decoder is fed random bytes, mutated valid traffic for every API shape
(fuzz/corpus.py), and valid framing around JSON of every wrong shape; each piece
(HTTP/1.1, SSE, NDJSON, JSON-array, AWS event stream, content codings) is also fed
random bytes on its own. Every event that comes out must still be valid OISP, and a
hostile connection must not change what a well-behaved one next to it decodes.

`OISP_FUZZ_EXAMPLES` raises the number of examples per test for a longer run.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from fuzz.corpus import SEEDS, Seed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder, Limits
from oisp_sensor.decode.encoding import content_decoder
from oisp_sensor.decode.eventstream import EventStreamDecoder
from oisp_sensor.decode.http1 import Http1Connection
from oisp_sensor.decode.jsonarray import JsonArraySplitter
from oisp_sensor.decode.ndjson import NdjsonDecoder
from oisp_sensor.decode.sse import SseDecoder
from oisp_sensor.errors import DecodeError
from oisp_sensor.events import CaptureKind, Event, RawCapture
from oisp_sensor.pipeline import Pipeline
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, T0, captures, http_response, stable

EXAMPLES = int(os.environ.get("OISP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOSTS = sorted({(s.host, s.port) for s in SEEDS}) + [("example.com", 443), (None, None)]


def run(raws: list[RawCapture], limits: Limits | None = None) -> tuple[list[Event], Counters]:
    """Feed everything, close everything. Any exception at all fails the test."""
    counters = Counters()
    decoder = Decoder(hasher=HASHER, counters=counters, limits=limits, record_chunks=True)
    events: list[Event] = []
    for raw in raws:
        events += decoder.feed(raw)
    events += decoder.close_all()
    if events:
        assert_valid_events([e.to_dict() for e in events])
    return events, counters


def raw(kind: CaptureKind, data: bytes, ts: int, host: Any, port: Any, fd: int = 7) -> RawCapture:
    return RawCapture(
        kind=kind,
        timestamp_ns=T0 + ts,
        data=data,
        pid=4242,
        metadata={"fd": fd, "comm": "fuzz"},
        remote_host=host,
        remote_port=port,
    )


# --- random bytes ----------------------------------------------------------------------


@FUZZ
@given(
    st.sampled_from(HOSTS),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=600)), max_size=12),
)
def test_random_bytes_on_any_connection(
    host_port: tuple[Any, Any], pieces: list[tuple[bool, bytes]]
) -> None:
    host, port = host_port
    raws = [
        raw(CaptureKind.SSL_WRITE if client else CaptureKind.SSL_READ, data, i, host, port)
        for i, (client, data) in enumerate(pieces)
    ]
    run(raws)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), min_size=1, max_size=8),
)
def test_random_bytes_after_a_valid_request_head(
    seed: Seed, pieces: list[tuple[bool, bytes]]
) -> None:
    head = seed.request.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    raws = [raw(CaptureKind.SSL_WRITE, head, 0, seed.host, seed.port)]
    raws += [
        raw(
            CaptureKind.SSL_WRITE if client else CaptureKind.SSL_READ,
            data,
            i + 1,
            seed.host,
            seed.port,
        )
        for i, (client, data) in enumerate(pieces)
    ]
    run(raws)


# --- mutated valid traffic -------------------------------------------------------------


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Byte-level mutations a coverage-guided fuzzer would make: flip, insert, delete,
    duplicate, truncate, and overwrite with 'interesting' bytes."""
    buf = bytearray(data)
    for op, a, b in ops:
        if not buf:
            buf = bytearray(b"\r\n")
        i = a % len(buf)
        if op == 0:
            buf[i] ^= 1 << (b % 8)
        elif op == 1:
            buf[i:i] = bytes([b % 256]) * (1 + b % 5)
        elif op == 2:
            del buf[i : i + 1 + b % 16]
        elif op == 3:
            j = min(len(buf), i + 1 + b % 64)
            buf[j:j] = buf[i:j]
        elif op == 4:
            del buf[i:]
        else:
            special = [
                b"\r\n",
                b"\n\n",
                b"0\r\n\r\n",
                b"ffffffff\r\n",
                b"\x00",
                b'"',
                b"{",
                b"]",
                b"data: ",
            ]
            piece = special[b % len(special)]
            buf[i : i + len(piece)] = piece
    return bytes(buf)


OPS = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 2**16), st.integers(0, 2**10)), max_size=6
)


@FUZZ
@given(st.sampled_from(SEEDS), OPS, OPS, st.lists(st.integers(1, 4000), max_size=6))
def test_mutated_traffic_of_every_api_shape(
    seed: Seed, request_ops: list[Any], response_ops: list[Any], splits: list[int]
) -> None:
    request, response = mutate(seed.request, request_ops), mutate(seed.response, response_ops)
    run(captures([(request, response)], host=seed.host, port=seed.port, splits=splits))


@FUZZ
@given(st.sampled_from(SEEDS), st.integers(1, 5), st.lists(st.integers(1, 4000), max_size=4))
def test_pipelined_and_repeated_exchanges(seed: Seed, n: int, splits: list[int]) -> None:
    """n requests back to back, then n responses (HTTP/1.1 pipelining), in any split."""
    requests = seed.request * n
    responses = seed.response * n
    run(captures([(requests, responses)], host=seed.host, port=seed.port, splits=splits))


# --- valid framing, JSON of every wrong shape ------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value = json.loads(json.dumps(value))
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


def _mutate_json_line(line: bytes, pick: int, new: Any) -> bytes:
    prefix = b"data: " if line.startswith(b"data: ") else b""
    try:
        obj = json.loads(line[len(prefix) :])
    except ValueError:
        return line
    paths = _paths(obj)
    return prefix + json.dumps(_replace(obj, paths[pick % len(paths)], new)).encode()


def _with_body(message: bytes, body: bytes) -> bytes:
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    kept = [h for h in head if not h.lower().startswith((b"content-length", b"transfer-encoding"))]
    return b"\r\n".join(kept) + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _body(message: bytes) -> bytes:
    head, _, body = message.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        return out
    return body


@FUZZ
@given(
    st.sampled_from([s for s in SEEDS if "gzip" not in s.name and "bedrock" not in s.name]),
    st.integers(0, 10**6),
    JSON_VALUES,
    st.integers(0, 10**6),
    JSON_VALUES,
)
def test_every_field_of_every_shape_replaced_by_any_json(
    seed: Seed, request_pick: int, request_value: Any, response_pick: int, response_value: Any
) -> None:
    """Provider decoders read JSON of a shape the docs promise; servers and clients may not."""
    request_body = _mutate_json_line(_body(seed.request), request_pick, request_value)
    lines = _body(seed.response).split(b"\n")
    target = response_pick % len(lines)
    lines[target] = _mutate_json_line(lines[target], response_pick // len(lines), response_value)
    request = _with_body(seed.request, request_body)
    response = _with_body(seed.response, b"\n".join(lines))
    run(captures([(request, response)], host=seed.host, port=seed.port))


def test_json_of_the_wrong_shape_still_yields_events() -> None:
    """Not every mutation is harmless: a request body that is a JSON array still decodes."""
    for seed in SEEDS:
        if "gzip" in seed.name or "bedrock" in seed.name:
            continue
        request = _with_body(seed.request, b"[1, 2, 3]")
        response = _with_body(seed.response, b'{"choices": "nope", "usage": [1]}')
        events, _ = run(captures([(request, response)], host=seed.host, port=seed.port))
        types = [e.event_type for e in events]
        assert "ai.request" in types and "ai.response" in types, (seed.name, types)


# --- a hostile connection next to a good one -------------------------------------------


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.binary(min_size=1, max_size=400), min_size=1, max_size=10),
    st.randoms(use_true_random=False),
)
def test_a_hostile_connection_does_not_disturb_another(
    seed: Seed, garbage: list[bytes], rnd: random.Random
) -> None:
    good = captures([(seed.request, seed.response)], host=seed.host, port=seed.port, fd=7)
    alone, _ = run(good)
    bad = [
        raw(
            rnd.choice([CaptureKind.SSL_WRITE, CaptureKind.SSL_READ]),
            g,
            i,
            seed.host,
            seed.port,
            fd=9,
        )
        for i, g in enumerate(garbage)
    ]
    mixed = list(good)
    for b in bad:
        mixed.insert(rnd.randrange(len(mixed) + 1), b)
    together, _ = run(mixed)
    ours = stable([e.to_dict() for e in alone])
    theirs = stable([e.to_dict() for e in together])
    assert ours
    for event in ours:
        assert event in theirs


# --- no exception other than DecodeError leaves decode/ --------------------------------


def test_the_pipeline_counts_no_internal_error_on_hostile_input() -> None:
    """The pipeline's last line of defence (it counts `decode.internal_errors` and drops the
    connection) must never be needed: run the whole corpus, mutated, through it."""
    rnd = random.Random(7)
    counters = Counters()
    pipeline = Pipeline(decoder=Decoder(hasher=HASHER, counters=counters), counters=counters)
    events = []
    for i in range(300):
        seed = SEEDS[i % len(SEEDS)]
        ops = [(rnd.randrange(6), rnd.randrange(2**16), rnd.randrange(2**10)) for _ in range(3)]
        raws = captures(
            [(mutate(seed.request, ops), mutate(seed.response, ops[::-1]))],
            host=seed.host,
            port=seed.port,
            fd=i,
            splits=[rnd.randrange(1, 2000) for _ in range(3)],
        )
        for r in raws:
            events += pipeline.process(r)
    events += pipeline.finish(pipeline.decoder.close_all())
    assert counters.get("decode.internal_errors") == 0
    assert counters.get("events.ai_request") > 0
    assert_valid_events([e.to_dict() for e in events])


# --- each framing layer alone ----------------------------------------------------------


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=10), st.booleans())
def test_http1_raises_only_decode_error(pieces: list[tuple[bool, bytes]], eof: bool) -> None:
    conn = Http1Connection()
    try:
        for client, data in pieces:
            conn.feed_client(data) if client else conn.feed_server(data)
        if eof:
            conn.eof_client()
            conn.eof_server()
    except DecodeError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_sse_ndjson_and_json_array_take_any_bytes(chunks: list[bytes]) -> None:
    sse, ndjson, array = SseDecoder(), NdjsonDecoder(), JsonArraySplitter()
    for chunk in chunks:
        sse.feed(chunk)
        ndjson.feed(chunk)
        array.feed(chunk)
        try:
            while array.next_item() is not None:
                pass
        except DecodeError:
            pass
    sse.flush()
    ndjson.flush()
    try:
        array.close()
    except DecodeError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_event_stream_raises_only_decode_error(chunks: list[bytes]) -> None:
    decoder = EventStreamDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
        for _ in range(100):
            try:
                if decoder.next_message() is None:
                    break
            except DecodeError:
                pass
    try:
        decoder.close()
    except DecodeError:
        pass


@FUZZ
@given(
    st.sampled_from(["gzip", "deflate", "br", "zstd", "gzip, br", "identity", "x-gzip", "bogus"]),
    st.lists(st.binary(max_size=300), max_size=6),
)
def test_content_codings_raise_only_decode_error(coding: str, chunks: list[bytes]) -> None:
    try:
        decoder = content_decoder(coding, 1 << 20)
        for chunk in chunks:
            decoder.decode(chunk)
        decoder.flush()
    except DecodeError:
        pass


@pytest.mark.parametrize(
    "host",
    [
        "api.openai.com:943\u00b33",
        "[::1]:\u00b9",
        "api.openai.com:99999999999",
    ],
)
def test_a_host_header_with_unicode_digits_in_its_port(host: str) -> None:
    """Found by atheris: header bytes are latin-1, str.isdigit() accepts "³", int() not."""
    new_host = b"Host: " + host.encode("latin-1")
    request = SEEDS[0].request.replace(b"Host: api.openai.com", new_host)
    run(captures([(request, SEEDS[0].response)]))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_each_seed_decodes_cleanly(seed: Seed) -> None:
    """The corpus itself is valid traffic: the fuzzers start from something meaningful."""
    events, counters = run(
        captures([(seed.request, seed.response)], host=seed.host, port=seed.port)
    )
    types = [e.event_type for e in events]
    assert "ai.request" in types and "ai.response" in types
    assert counters.get("decode.errors") == 0
    response = next(e for e in events if e.event_type == "ai.response")
    assert response.confidence["completeness"] == "full", response.confidence


def test_body_helpers_round_trip() -> None:
    seed = SEEDS[0]
    assert _with_body(seed.request, _body(seed.request)) == seed.request
    chunked = http_response(chunks=[b"ab", b"cd"])
    assert _body(chunked) == b"abcd"


# --- the large-body JSON parser --------------------------------------------------------

JSON_TEXT = st.one_of(
    st.binary(max_size=120),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"NaN",
            b"[Infinity]",
            b"1e400",
            b"-1e400",
            b"18446744073709551616",
            b"-9223372036854775809",
            b"9223372036854775807",
            b"[" * 5000 + b"]" * 5000,
            b'"\\ud800"',
            b"\xef\xbb\xbf{}",
            b"1" * 5000,
        ]
    ),
)


@FUZZ
@given(JSON_TEXT)
def test_the_large_body_parser_agrees_with_orjson(data: bytes) -> None:
    """Bodies over 1 MB are parsed by the standard library (orjson needs ~12x the input in
    memory); whatever orjson accepts must come out the same, and errors are orjson's."""
    import orjson

    from oisp_sensor.decode.providers import base

    try:
        expected: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        expected = orjson.JSONDecodeError
    saved, base.ORJSON_MAX = base.ORJSON_MAX, -1
    try:
        got: Any = base.loads(data)
    except orjson.JSONDecodeError:
        got = orjson.JSONDecodeError
    finally:
        base.ORJSON_MAX = saved
    if expected is not orjson.JSONDecodeError:
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
