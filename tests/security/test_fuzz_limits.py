"""Memory stays bounded whatever a connection sends, and the next connection still decodes.

Each test feeds a never-ending input (200 MB unless the decoder is slow on it) into
one connection and measures the decoder's peak memory with tracemalloc. The bound
is documented in fuzz/README.md: at most PEAK_LIMIT per connection, whatever the
input — the 32 MB body cap (decode.Limits.max_body_bytes) plus working copies (a
compressed body that inflates 1000:1 holds one 16 MB decoded read twice, briefly).
Cut-offs are counted and flagged on the event, never fatal.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator

import pytest
from fuzz.corpus import SEEDS

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder, Limits
from oisp_sensor.decode.providers.base import MAX_TOOL_CALLS
from oisp_sensor.events import CaptureKind, Event, RawCapture
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, T0, captures, http_request

MB = 1024 * 1024
TOTAL = 200 * MB
PEAK_LIMIT = 64 * MB

REQUEST = http_request(
    "/v1/chat/completions",
    {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class Feeder:
    """One decoder, one hostile connection (fd 3), then a well-behaved one (fd 4)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.counters = Counters()
        self.decoder = Decoder(hasher=HASHER, counters=self.counters, limits=limits)
        self.ts = T0
        self.events: list[Event] = []

    def send(self, kind: CaptureKind, data: bytes, fd: int = 3) -> None:
        self.ts += 1000
        raw = RawCapture(
            kind=kind,
            timestamp_ns=self.ts,
            data=data,
            pid=1,
            metadata={"fd": fd},
            remote_host="api.openai.com",
            remote_port=443,
        )
        self.events += self.decoder.feed(raw)

    def endless(self, kind: CaptureKind, chunks: Iterator[bytes], total: int = TOTAL) -> int:
        """Feed `total` bytes from `chunks`; the peak memory the decoder needed meanwhile."""
        fed = 0
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            while fed < total:
                chunk = next(chunks)
                fed += len(chunk)
                self.send(kind, chunk)
                del chunk
            self.send(CaptureKind.CONN_CLOSE, b"")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak

    def then_a_good_connection_decodes(self) -> None:
        seed = SEEDS[0]
        before = len(self.events)
        for raw in captures([(seed.request, seed.response)], fd=4, pid=1):
            self.events += self.decoder.feed(raw)
        fresh = [e.event_type for e in self.events[before:]]
        assert "ai.request" in fresh and "ai.response" in fresh
        assert_valid_events([e.to_dict() for e in self.events])


def repeat(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


def chunked(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def sse_stream(make: object, per_chunk: int = MB) -> Iterator[bytes]:
    i = 0
    while True:
        events = []
        size = 0
        while size < per_chunk:
            event = b"data: " + json.dumps(make(i)).encode() + b"\n\n"  # type: ignore[operator]
            events.append(event)
            size += len(event)
            i += 1
        yield chunked(b"".join(events))


@pytest.mark.parametrize(
    ("name", "head", "chunk"),
    [
        ("header line", b"POST /v1/chat/completions HTTP/1.1\r\nX-Long: ", b"A" * MB),
        ("request line", b"POST /v1/", b"A" * MB),
        ("header count", b"POST /v1/x HTTP/1.1\r\n", b"X-A: b\r\n" * (MB // 8)),
        ("blank lines", b"", b"\r\n" * (MB // 2)),
    ],
)
def test_an_endless_request_head(name: str, head: bytes, chunk: bytes) -> None:
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, head)
    peak = f.endless(CaptureKind.SSL_WRITE, repeat(chunk))
    assert peak < PEAK_LIMIT, f"{name}: {peak / MB:.1f} MB"
    f.then_a_good_connection_decodes()


def test_an_endless_response_head() -> None:
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    f.send(CaptureKind.SSL_READ, b"HTTP/1.1 200 OK\r\nX-Long: ")
    peak = f.endless(CaptureKind.SSL_READ, repeat(b"B" * MB))
    assert peak < PEAK_LIMIT
    response = [e for e in f.events if e.event_type == "ai.response"]
    assert response and response[0].confidence["completeness"] == "partial"
    f.then_a_good_connection_decodes()


@pytest.mark.parametrize(
    ("name", "head", "chunk"),
    [
        ("chunked", b"Transfer-Encoding: chunked\r\n\r\n", chunked(b"{" * MB)),
        ("content-length", b"Content-Length: 999999999999999\r\n\r\n", b"[" * MB),
    ],
)
def test_an_endless_request_body_is_cut_at_the_body_limit(
    name: str, head: bytes, chunk: bytes
) -> None:
    f = Feeder()
    f.send(
        CaptureKind.SSL_WRITE,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
        b"Content-Type: application/json\r\n" + head,
    )
    peak = f.endless(CaptureKind.SSL_WRITE, repeat(chunk))
    assert peak < PEAK_LIMIT, f"{name}: {peak / MB:.1f} MB"
    assert f.counters.get("decode.body_over_limit") == 1
    request = next(e for e in f.events if e.event_type == "ai.request")
    assert "request_body_truncated" in request.confidence["limitations"]
    f.then_a_good_connection_decodes()


@pytest.mark.parametrize(
    ("name", "content_type", "chunk"),
    [
        ("json", "application/json", chunked(b'{"a": "' + b"x" * MB)),
        ("sse line", "text/event-stream", chunked(b"data: " + b"x" * MB)),
        ("ndjson line", "application/x-ndjson", chunked(b'{"message": "' + b"y" * MB)),
        ("json array", "application/json", chunked(b'[{"candidates": "' + b"z" * MB)),
    ],
)
def test_an_endless_response_body_is_cut(name: str, content_type: str, chunk: bytes) -> None:
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    f.send(
        CaptureKind.SSL_READ,
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        % content_type.encode(),
    )
    peak = f.endless(CaptureKind.SSL_READ, repeat(chunk))
    assert peak < PEAK_LIMIT, f"{name}: {peak / MB:.1f} MB"
    response = next(e for e in f.events if e.event_type == "ai.response")
    assert response.confidence["completeness"] == "partial"
    f.then_a_good_connection_decodes()


def test_an_endless_stream_of_text_keeps_only_the_text_budget() -> None:
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    f.send(CaptureKind.SSL_READ, SSE_HEAD)
    delta = {"choices": [{"index": 0, "delta": {"content": "x" * 4096}}]}
    peak = f.endless(CaptureKind.SSL_READ, sse_stream(lambda i: delta))
    assert peak < PEAK_LIMIT
    response = next(e for e in f.events if e.event_type == "ai.response")
    text = response.data["choices"][0]["message"]["content"]
    assert len(text) <= Limits().max_text_chars
    assert (
        "response text over the limit; the rest is not kept" in response.confidence["limitations"]
    )
    f.then_a_good_connection_decodes()


def test_tiny_deltas_cost_memory_in_proportion_to_the_text() -> None:
    """One object per streamed token would make a 2-character delta cost ~60 bytes."""
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    f.send(CaptureKind.SSL_READ, SSE_HEAD)
    delta = {"choices": [{"index": 0, "delta": {"content": "xy"}}]}
    peak = f.endless(CaptureKind.SSL_READ, sse_stream(lambda i: delta), total=8 * MB)
    response = next(e for e in f.events if e.event_type == "ai.response")
    chars = len(response.data["choices"][0]["message"]["content"])
    assert chars > 200_000  # ~135,000 deltas: one object each would be ~8 MB on their own
    assert peak < 10 * MB


def test_a_flood_of_tool_calls_is_capped() -> None:
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    f.send(CaptureKind.SSL_READ, SSE_HEAD)

    def call(i: int) -> object:
        tool = {"index": i, "id": f"call_{i}", "function": {"name": "f", "arguments": "{}"}}
        return {"choices": [{"index": 0, "delta": {"tool_calls": [tool]}}]}

    peak = f.endless(CaptureKind.SSL_READ, sse_stream(call), total=2 * MB)
    assert peak < PEAK_LIMIT
    calls = [e for e in f.events if e.event_type == "agent.tool_call"]
    assert len(calls) == MAX_TOOL_CALLS
    response = next(e for e in f.events if e.event_type == "ai.response")
    assert "too many tool calls; the rest are not kept" in response.confidence["limitations"]
    f.then_a_good_connection_decodes()


def test_a_compression_bomb_is_cut_at_the_body_limit() -> None:
    bomb = gzip.compress(b"\0" * (256 * MB), compresslevel=9)
    assert len(bomb) < MB
    f = Feeder()
    f.send(CaptureKind.SSL_WRITE, REQUEST)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(bomb)
    )
    tracemalloc.start()
    try:
        f.send(CaptureKind.SSL_READ, head)
        for i in range(0, len(bomb), 16384):
            f.send(CaptureKind.SSL_READ, bomb[i : i + 16384])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT
    assert f.counters.get("decode.body_over_limit") == 1
    f.then_a_good_connection_decodes()


def test_many_connections_are_evicted_oldest_first() -> None:
    """A source that opens connections and never closes them cannot grow the table forever."""
    f = Feeder(Limits(max_connections=500))
    for fd in range(5_000):
        f.send(
            CaptureKind.SSL_WRITE, b"POST /v1/chat/completions HTTP/1.1\r\nHost: api", fd=fd + 10
        )
    assert f.decoder.open_connections <= 500
    assert f.counters.get("decode.connections_evicted") == 4_500
    f.then_a_good_connection_decodes()
