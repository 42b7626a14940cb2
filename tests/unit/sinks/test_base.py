"""SinkRunner: batches of what has arrived, bounded in events and bytes, drops counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event, EventType
from oisp_sensor.sinks.base import SinkRunner
from tests.conformance import assert_valid_events

T0 = 1_767_225_600_000_000_000


def make_events(n: int, text: str = "hi") -> list[Event]:
    events = [
        Event(
            event_type=EventType.NETWORK_CONNECT,
            ts_ns=T0 + i,
            data={"dest": {"domain": "api.openai.com", "port": 443}},
            attrs={"note": text},
        )
        for i in range(n)
    ]
    for e in events:
        e.seal()
    return events


class Recorder:
    """A sink that keeps the batches it was given; optionally slow, optionally failing."""

    name = "rec"

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[Event]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.closed = False

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(list(batch))

    async def close(self) -> None:
        self.closed = True

    @property
    def written(self) -> list[Event]:
        return [e for b in self.batches for e in b]


async def test_a_busy_sink_gets_what_arrived_meanwhile_in_one_batch() -> None:
    sink = Recorder(delay_s=0.05)
    counters = Counters()
    runner = SinkRunner(sink, counters)
    await runner.start()
    events = make_events(300)
    runner.offer_many(events[:1])
    await asyncio.sleep(0.01)  # the first write is under way
    for e in events[1:]:
        assert runner.offer(e)
    await runner.close()
    assert [len(b) for b in sink.batches] == [1, 299]
    assert sink.written == events and sink.closed
    assert counters.get("sink.rec.written") == 300
    assert_valid_events([e.wire() for e in sink.written[:3]])


async def test_the_queue_is_bounded_in_bytes_too() -> None:
    counters = Counters()
    events = make_events(10, text="x" * 1000)
    size = len(events[0].json_bytes())
    runner = SinkRunner(Recorder(), counters, queue_bytes=size * 4 + 10)
    assert runner.offer_many(events) == 4
    assert counters.get("sink.rec.dropped") == 6
    assert runner.backlog == 4 and runner.backlog_bytes == 4 * size


def test_one_event_larger_than_the_byte_bound_still_fits_an_empty_queue() -> None:
    runner = SinkRunner(Recorder(), Counters(), queue_bytes=10)
    (big,) = make_events(1, text="y" * 5000)
    assert runner.offer(big)
    assert not runner.offer(big)


def test_the_queue_is_bounded_in_events() -> None:
    counters = Counters()
    runner = SinkRunner(Recorder(), counters, queue_size=3)
    assert runner.offer_many(make_events(5)) == 3
    assert counters.get("sink.rec.dropped") == 2


async def test_batches_are_cut_at_the_byte_limit() -> None:
    sink = Recorder()
    events = make_events(10, text="z" * 1000)
    size = len(events[0].json_bytes())
    runner = SinkRunner(sink, Counters(), max_batch_bytes=size * 3)
    runner.offer_many(events)  # queued before the runner's task exists
    await runner.start()
    await runner.close()
    assert [len(b) for b in sink.batches] == [3, 3, 3, 1]


async def test_a_burst_is_caught_up_with_not_dropped() -> None:
    """Far more than one batch arrives at once while the sink is slow: all of it is written."""
    sink = Recorder(delay_s=0.002)
    counters = Counters()
    runner = SinkRunner(sink, counters, max_batch=100)
    await runner.start()
    events = make_events(20_000)
    assert runner.offer_many(events) == 20_000
    await runner.close()
    assert sink.written == events
    assert counters.get("sink.rec.dropped") == 0


async def test_a_failing_sink_counts_the_events_it_lost(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    runner = SinkRunner(Recorder(fail=True), counters)
    await runner.start()
    runner.offer_many(make_events(7))
    await runner.close()
    assert counters.get("sink.rec.errors") == 7
    assert counters.get("sink.rec.written") == 0
    assert "sink rec failed to write 7 events" in caplog.text
