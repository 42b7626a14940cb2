"""The pipeline: decode → enrich → redact → sinks, with failures contained and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.decode.providers import openai_chat
from oisp_sensor.events import CaptureKind, Event, RawCapture
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.store import EventStore
from tests.conformance import assert_valid_events, assert_valid_file
from tests.helpers import HASHER
from tests.unit.decode.wire import Captures, json_response, openai_request

HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


def ok(text: str = "Hello") -> bytes:
    return json_response(
        {
            "id": "chatcmpl-1",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
    )


class Tagger:
    """An enricher: adds the host, as the real host enricher does."""

    def enrich(self, event: Event) -> None:
        event.host = {"hostname": "test-box"}


class Broken:
    def enrich(self, event: Event) -> None:
        raise RuntimeError("enricher bug")


class UpperRedactor:
    """A redactor that visibly rewrites message content."""

    def redact(self, event: Event) -> Event:
        for msg in event.data.get("messages", []):
            msg["content"] = "[REDACTED]"
        return event


def pipeline(**kw: Any) -> Pipeline:
    counters = kw.pop("counters", None) or Counters()
    return Pipeline(decoder=Decoder(hasher=HASHER, counters=counters), counters=counters, **kw)


def dicts(events: list[Event]) -> list[dict[str, Any]]:
    out = [e.to_dict() for e in events]
    if out:
        assert_valid_events(out)
    return out


def test_process_decodes_enriches_and_redacts() -> None:
    pipe = pipeline(enrichers=[Tagger()], redactor=UpperRedactor())
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).recv(ok(), 10)
    events = dicts([e for raw in caps.raws for e in pipe.process(raw)])
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    assert all(e["host"] == {"hostname": "test-box"} for e in events)
    assert events[0]["data"]["messages"][0]["content"] == "[REDACTED]"


def test_a_failing_enricher_is_counted_and_the_event_still_flows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe = pipeline(enrichers=[Broken(), Tagger()])
    caps = Captures()
    caps.conn().send(openai_request(HI), 0)
    with caplog.at_level(logging.ERROR):
        events = dicts(pipe.process(caps.raws[0]))
    assert events[0]["host"] == {"hostname": "test-box"}
    assert pipe.counters.get("enrich.errors") == 1
    assert "enricher Broken failed" in caplog.text


def test_a_decoder_bug_costs_one_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = openai_chat.ChatAssembler.on_json

    def buggy(self: openai_chat.ChatAssembler, obj: Any) -> None:
        if obj["choices"][0]["message"]["content"] == "boom":
            raise RuntimeError("a bug in a decoder")
        real(self, obj)

    monkeypatch.setattr(openai_chat.ChatAssembler, "on_json", buggy)
    pipe = pipeline()
    caps = Captures()
    bad, good = caps.conn(fd=5), caps.conn(fd=6)
    bad.send(openai_request(HI), 0)
    good.send(openai_request(HI), 1)
    bad.recv(ok("boom"), 10)
    bad.send(openai_request(HI), 20).recv(ok("after"), 30)  # ignored: the connection is dropped
    good.recv(ok("fine"), 40)
    with caplog.at_level(logging.ERROR):
        events = dicts([e for raw in caps.raws for e in pipe.process(raw)])
    assert pipe.counters.get("decode.internal_errors") == 1
    assert "internal error decoding connection" in caplog.text
    responses = [e for e in events if e["event_type"] == "ai.response"]
    assert [r["data"]["choices"][0]["message"]["content"] for r in responses] == ["fine"]


async def test_start_submit_stop_writes_a_valid_jsonl_file(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    counters = Counters()
    pipe = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters), sinks=[JsonlSink(out)], counters=counters
    )
    seen: list[Event] = []
    pipe.add_listener(seen.append)
    await pipe.start()
    caps = Captures()
    conn = caps.conn()
    conn.send(openai_request(HI), 0).recv(ok("one"), 10)
    conn.send(openai_request(HI), 20)  # in flight at stop: emitted, flagged partial
    for raw in caps.raws:
        assert pipe.submit(raw)
    await pipe.stop()
    events = assert_valid_file(out)
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"] * 2
    assert events[3]["confidence"]["completeness"] == "partial"
    assert len(seen) == 4
    assert counters.get("events.total") == 4
    assert counters.get("sink.jsonl.written") == 4


async def test_a_full_queue_drops_counts_and_flags_the_connection() -> None:
    pipe = pipeline(queue_size=2)
    caps = Captures()
    conn = caps.conn()
    stream = openai_request({**HI, "stream": True})
    conn.send(stream, 0)
    conn.recv(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        5,
    )
    conn.recv(b'1c\r\ndata: {"choices":[]}\n\n\r\n', 6)  # lost to the full queue
    conn.recv(b"0\r\n\r\n", 7)
    conn.close(8)
    *before, last_chunk, closing = caps.raws
    accepted = [pipe.submit(raw) for raw in before]  # nothing consumes: the queue fills
    assert accepted == [True, True, False]
    assert pipe.counters.get("capture.dropped") == 1

    def drain() -> list[Event]:
        out: list[Event] = []
        while not pipe.queue.empty():
            raw = pipe.queue.get_nowait()
            assert raw is not None
            out += pipe.process(raw)
        return out

    # The captures queued before the drop decode normally: the gap is not theirs.
    events = drain()
    assert [e.event_type for e in events] == ["ai.request"]
    assert pipe.submit(last_chunk) and pipe.submit(closing)
    events += drain()
    resp = [e for e in dicts(events) if e["event_type"] == "ai.response"]
    assert len(resp) == 1 and resp[0]["confidence"]["completeness"] == "partial"
    assert "lost bytes" in resp[0]["attrs"]["decode_error"]


def test_paused_pipeline_drops_and_counts() -> None:
    pipe = pipeline()
    seen: list[Event] = []
    pipe.add_listener(seen.append)
    pipe.paused = True
    caps = Captures()
    caps.conn().send(openai_request(HI), 0)
    pipe.publish(pipe.process(caps.raws[0]))
    assert seen == [] and pipe.counters.get("events.paused_dropped") == 1


async def test_idle_connections_are_swept() -> None:
    pipe = pipeline(idle_timeout_s=0.05)
    seen: list[Event] = []
    pipe.add_listener(seen.append)
    await pipe.start()
    long_ago = time.time_ns() - 60 * 1_000_000_000
    pipe.submit(
        RawCapture(
            kind=CaptureKind.SSL_WRITE,
            timestamp_ns=long_ago,
            data=openai_request(HI),
            pid=1,
            metadata={"fd": 3},
            remote_host="api.openai.com",
            remote_port=443,
        )
    )
    try:
        for _ in range(200):
            if any(e.event_type == "ai.response" for e in seen):
                break
            await asyncio.sleep(0.02)
    finally:
        await pipe.stop()
    assert [e.event_type for e in seen] == ["ai.request", "ai.response"]
    assert seen[1].data["error"]["type"] == "no_response"
    assert pipe.decoder.open_connections == 0


# --- serialising once, slices, bounded queues ---------------------------------------------------


class Batches:
    """A sink that records the batches it is given."""

    name = "batches"

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        self.batches.append(list(batch))

    async def close(self) -> None:
        return None


def keep_alive_calls(n: int) -> list[RawCapture]:
    caps = Captures()
    conn = caps.conn()
    for i in range(n):
        conn.send(openai_request(HI), 20 * i).recv(ok(f"answer {i}"), 20 * i + 10)
    conn.close(20 * n)
    return caps.raws


async def test_every_sink_gets_the_same_bytes_encoded_once(tmp_path: Path) -> None:
    """The JSONL line and the store's body hold the JSON the pipeline sealed each event
    with after redaction (the live feed's message: tests/unit/web/test_live.py)."""
    out, db = tmp_path / "events.jsonl", tmp_path / "events.db"
    counters = Counters()
    recorder = Batches()
    pipe = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters),
        sinks=[JsonlSink(out), StoreSink(db, retention_days=100 * 365), recorder],
        counters=counters,
        redactor=UpperRedactor(),
    )
    await pipe.start()
    for raw in keep_alive_calls(3):
        assert pipe.submit(raw)
    await pipe.stop()
    events = [e for b in recorder.batches for e in b]
    assert all(e.sealed for e in events)
    lines = out.read_bytes().splitlines()
    assert lines == [e.json_bytes() for e in events]
    assert [orjson.loads(line) for line in lines] == [e.to_dict() for e in events]
    assert_valid_file(out)
    with EventStore(db) as store:
        bodies = [r[0] for r in store.conn.execute("SELECT body FROM bodies ORDER BY id")]
    assert [b.encode() for b in bodies] == lines
    requests = [e for e in events if e.event_type == "ai.request"]
    assert [m["content"] for e in requests for m in e.data["messages"]] == ["[REDACTED]"] * 3


async def test_a_backlog_reaches_the_sinks_in_batches_in_order() -> None:
    recorder = Batches()
    counters = Counters()
    pipe = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters), sinks=[recorder], counters=counters
    )
    raws = keep_alive_calls(50)
    for raw in raws:  # queued before the consumer runs: one slice decodes many
        assert pipe.submit(raw)
    await pipe.start()
    await pipe.stop()
    events = [e for b in recorder.batches for e in b]
    assert len(events) == 100 and counters.get("sink.batches.written") == 100
    assert len(recorder.batches) < 10  # not one write per event
    texts = [
        e.data["choices"][0]["message"]["content"] for e in events if e.event_type == "ai.response"
    ]
    assert texts == [f"answer {i}" for i in range(50)]
    assert_valid_events([e.to_dict() for e in events])


async def test_the_capture_queue_is_bounded_in_bytes_and_the_loss_is_counted() -> None:
    """Past `queue_bytes` of queued plaintext a capture is refused like on a full queue: the
    connection is flagged, and the call it cut is counted as recorded incomplete."""
    stream = openai_request({**HI, "stream": True})
    pipe = pipeline(queue_bytes=len(stream))
    caps = Captures()
    conn = caps.conn()
    conn.send(stream, 0)
    conn.recv(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        5,
    )
    conn.close(8)
    request, head, closing = caps.raws
    assert pipe.has_room()
    assert pipe.submit(request)
    assert not pipe.has_room()
    assert not pipe.submit(head)  # over the byte bound
    assert pipe.counters.get("capture.dropped") == 1
    assert pipe.counters.get("capture.gap_connections") == 1
    events: list[Event] = []
    while not pipe.queue.empty():
        raw = pipe.queue.get_nowait()
        assert raw is not None
        events += pipe.process(raw)
    pipe.queued_bytes = 0  # what the consumer task does as it takes captures
    assert pipe.submit(closing)
    raw = pipe.queue.get_nowait()
    assert raw is not None and raw.gap_before
    events += pipe.process(raw)
    resp = [e for e in dicts(events) if e["event_type"] == "ai.response"]
    assert len(resp) == 1 and resp[0]["confidence"]["completeness"] == "partial"
    assert pipe.counters.get("capture.incomplete_exchanges") == 1


async def test_a_sink_that_falls_behind_catches_up_after_a_burst(tmp_path: Path) -> None:
    """More events than the old fixed 10,000-event queue held, arriving faster than the
    store writes them: the store's queue (bounded in bytes) absorbs the burst."""
    db = tmp_path / "events.db"
    counters = Counters()
    pipe = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters),
        sinks=[StoreSink(db, retention_days=100 * 365)],
        counters=counters,
    )
    await pipe.start()
    caps = Captures()
    for fd in range(60):
        conn = caps.conn(fd=fd)
        for i in range(100):
            conn.send(openai_request(HI), 20 * i).recv(ok(), 20 * i + 10)
        conn.close(5_000)
    for raw in caps.raws:
        assert pipe.submit(raw)
    await pipe.stop()
    assert counters.get("events.total") == 12_000
    assert counters.get("sink.store.dropped") == 0
    with EventStore(db) as store:
        assert store.count() == 12_000


class SlowThreadSink:
    """Stands in for the store: a writer that falls behind and says it shares the GIL."""

    name = "slow"
    paces_pipeline = True

    def __init__(self, delay_s: float = 0.002, stuck: bool = False) -> None:
        self.delay_s, self.stuck = delay_s, stuck
        self.written = 0

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def write(self, batch: Sequence[Event]) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # a database locked for good
        await asyncio.sleep(self.delay_s)
        self.written += len(batch)


def _calls(connections: int, per_connection: int) -> list[RawCapture]:
    caps = Captures()
    for fd in range(connections):
        conn = caps.conn(fd=fd)
        for i in range(per_connection):
            conn.send(openai_request(HI), 20 * i).recv(ok(), 20 * i + 10)
        conn.close(5_000)
    return caps.raws


@pytest.mark.parametrize("paces", [True, False])
async def test_the_consumer_waits_for_a_store_like_sink_instead_of_it_dropping(
    paces: bool,
) -> None:
    """A burst larger than the sink's queue: a sink that paces the pipeline gets every
    event (the burst waits in the capture queue); one that does not drops the excess."""
    sink = SlowThreadSink(delay_s=0.02)
    sink.paces_pipeline = paces
    pipe = pipeline(sinks=[sink], sink_queue_size=40, slice_s=0.0002)  # slices of a few events
    await pipe.start()
    for raw in _calls(20, 10):
        assert pipe.submit(raw)
    await pipe.stop()
    assert pipe.counters.get("events.total") == 400
    dropped = pipe.counters.get("sink.slow.dropped")
    if paces:
        assert dropped == 0 and sink.written == 400
    else:
        assert dropped > 0 and sink.written == 400 - dropped


async def test_a_stalled_store_is_not_waited_for() -> None:
    """A sink stuck in one write must not stop decoding for every other sink."""
    stuck, jsonl = SlowThreadSink(stuck=True), Batches()
    pipe = pipeline(sinks=[stuck, jsonl], sink_queue_size=40, slice_s=0.0002)
    pipe.runners[0].stall_s = 0.05
    await pipe.start()
    for raw in _calls(20, 10):
        assert pipe.submit(raw)
    for _ in range(200):
        if sum(len(b) for b in jsonl.batches) == 400:
            break
        await asyncio.sleep(0.01)
    assert sum(len(b) for b in jsonl.batches) == 400
    assert pipe.counters.get("sink.slow.dropped") > 0
    assert pipe.runners[0]._task is not None
    pipe.runners[0]._task.cancel()  # the stuck write never returns; stop() would wait for it
    pipe.runners.pop(0)
    await pipe.stop()


def test_backlogged_past_half_of_either_bound() -> None:
    """What the relay's thread asks before reading more: half the captures or half the bytes."""
    raws = _calls(1, 6)
    pipe = pipeline(queue_size=8, queue_bytes=10**9)
    for raw in raws[:4]:
        assert pipe.submit(raw)
    assert not pipe.backlogged()
    assert pipe.submit(raws[4])
    assert pipe.backlogged()
    by_bytes = pipeline(queue_bytes=2 * len(raws[0].data) + 1)
    assert by_bytes.submit(raws[0]) and not by_bytes.backlogged()
    assert by_bytes.submit(raws[1]) and by_bytes.backlogged()


def test_paused_events_are_neither_sealed_nor_offered() -> None:
    pipe = pipeline()
    pipe.paused = True
    caps = Captures()
    caps.conn().send(openai_request(HI), 0)
    events = pipe.process(caps.raws[0])
    pipe.publish(events)
    assert not any(e.sealed for e in events)
    assert pipe.counters.get("events.paused_dropped") == 1


def test_a_source_that_asks_first_is_never_refused() -> None:
    """`has_room` and `submit` agree exactly: a capture larger than what is left under the
    byte bound is still taken (the bound is crossed by at most one capture)."""
    pipe = pipeline(queue_bytes=1000)
    caps = Captures()
    for fd in range(3):
        caps.conn(fd=fd).send(openai_request({**HI, "pad": "x" * 700}), fd)
    accepted = 0
    for raw in caps.raws:
        if pipe.has_room():
            assert pipe.submit(raw)
            accepted += 1
    assert accepted == 1 and pipe.queued_bytes > 1000
    assert pipe.counters.get("capture.dropped") == 0
