"""What `record`, `run` and `demo` say at exit about what reached the event store and file."""

from __future__ import annotations

from pathlib import Path

from oisp_sensor.cli.record import recording_report
from oisp_sensor.cli.status import check_drops
from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.store import EventStore
from tests.conformance import assert_valid_file
from tests.helpers import HASHER
from tests.unit.decode.wire import Captures, json_response, openai_request

HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
OK = json_response(
    {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "finish_reason": "stop",
            }
        ],
    }
)


async def record_calls(tmp_path: Path, calls: int, **options: float) -> Counters:
    """`calls` chat calls through a real pipeline into a real store and JSONL file."""
    counters = Counters()
    pipe = Pipeline(
        decoder=Decoder(hasher=HASHER, counters=counters),
        sinks=[
            StoreSink(tmp_path / "events.db", retention_days=100 * 365),
            JsonlSink(tmp_path / "events.jsonl"),
        ],
        counters=counters,
        **options,  # type: ignore[arg-type]
    )
    caps = Captures()
    conn = caps.conn()
    for i in range(calls):
        conn.send(openai_request(HI), 20 * i).recv(OK, 20 * i + 10)
    conn.close(20 * calls)
    for raw in caps.raws:  # all queued at once: decoded in one slice, published together
        assert pipe.submit(raw)
    await pipe.start()
    await pipe.stop()
    return counters


SINKS = [("store", "the store (events.db)"), ("jsonl", "events.jsonl")]


async def test_everything_recorded_is_said_from_what_the_sinks_wrote(tmp_path: Path) -> None:
    counters = await record_calls(tmp_path, 20)
    counts = counters.snapshot()
    assert counts["events.total"] == 40
    counts["sink.live.written"] = 40  # what a running dashboard's feed adds: not a loss
    assert recording_report(counts, SINKS) == [
        "  recorded: all 40 events in the store (events.db) and events.jsonl"
    ]
    assert len(assert_valid_file(tmp_path / "events.jsonl")) == 40


async def test_events_a_sink_never_got_are_said_plainly(tmp_path: Path) -> None:
    """Sinks that fell behind (here: queues of 5 events): the exit summary says what each
    missed and what it did record, and `status` fails on it."""
    # One slice decodes all of it (slice_s: a minute), so the sinks get all 100 at once.
    counters = await record_calls(tmp_path, 50, sink_queue_size=5, slice_s=60.0)
    counts = counters.snapshot()
    assert counts["events.total"] == 100
    with EventStore(tmp_path / "events.db") as store:
        stored = store.count()
    assert stored == counts["sink.store.written"] == 5
    assert len(assert_valid_file(tmp_path / "events.jsonl")) == 5
    lines = recording_report(counts, SINKS)
    assert lines[0].startswith("  WARNING: not everything was recorded")
    assert lines[1].startswith("    - the JSONL file missed 95 of 100 events: its queue was full")
    assert lines[2].startswith("    - the store missed 95 of 100 events: its queue was full")
    assert lines[-1] == (
        "  recorded: 5 of 100 events in the store (events.db), 5 of 100 events in events.jsonl"
    )
    problems = [c for c in check_drops(counts) if c.ok is False]
    assert len(problems) == 2 and all("could not keep up" in c.fix for c in problems)


def test_dropped_captures_say_what_they_cost() -> None:
    counts = {
        "events.total": 1_000,
        "capture.dropped": 40,
        "capture.relay_dropped": 2,
        "capture.incomplete_exchanges": 7,
        "capture.gap_connections": 3,
        "sink.store.written": 1_000,
    }
    lines = recording_report(counts, [("store", "the store")])
    assert lines[1] == (
        "    - 42 captured chunks were dropped because the sensor fell behind (40 at the "
        "decoder's queue (capture.dropped), 2 in the relay's hand-off (capture.relay_dropped)): "
        "7 calls were recorded incomplete (flagged partial); later calls on 3 connections "
        "were not recorded"
    )
    assert lines[-1] == "  recorded: all 1,000 events in the store"


def test_a_slow_dashboard_tab_is_a_note_not_a_loss() -> None:
    counts = {
        "events.total": 10,
        "web.live_dropped": 4,
        "sink.live.dropped": 1,
        "sink.live.written": 9,
        "sink.store.written": 10,
    }
    lines = recording_report(counts, [("store", "the store")])
    assert not any("WARNING" in line for line in lines)
    assert lines == [
        "  recorded: all 10 events in the store",
        "  note: the dashboard's live view skipped 5 updates (a slow tab or browser); "
        "nothing recorded is missing",
    ]
