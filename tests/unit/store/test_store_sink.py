"""The store sink: off-loop writes, clear start-up errors, and surviving kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from oisp_sensor.errors import StoreError
from oisp_sensor.events import Event
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.store import EventStore
from tests.conformance import assert_valid_events

ROOT = Path(__file__).resolve().parents[3]


async def test_writes_happen_off_the_event_loop(tmp_path: Path, events: list[Event]) -> None:
    sink = StoreSink(tmp_path / "e.db")
    await sink.start()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = sink._write

    def spy(batch: list[Event]) -> int:
        seen.append(threading.get_ident())
        return original(batch)

    sink._write = spy  # type: ignore[method-assign]
    try:
        await sink.write(events)
        assert await sink.size_bytes() > 0
    finally:
        await sink.close()
    assert seen and loop_thread not in seen


async def test_the_loop_keeps_running_while_the_store_is_busy(
    tmp_path: Path, events: list[Event]
) -> None:
    """A writer held up by a lock elsewhere must not freeze capture: the loop stays live."""
    import sqlite3

    path = tmp_path / "e.db"
    EventStore(path).close()
    sink = StoreSink(path, busy_timeout_ms=5_000, retention_days=100 * 365)
    await sink.start()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.create_task(sink.write(events))
        ticks = 0
        for _ in range(10):  # the loop still runs other work while the write waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not write.done()
        holder.execute("ROLLBACK")
        await asyncio.wait_for(write, 10)
    finally:
        holder.close()
        await sink.close()
    with EventStore(path) as store:
        assert store.count() == len(events)


async def test_a_corrupt_store_fails_start_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"garbage" * 1000)
    sink = StoreSink(path)
    with pytest.raises(StoreError, match="is not a SQLite database.*--db"):
        await sink.start()


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from oisp_sensor.events import Event
    from oisp_sensor.store import EventStore
    from tests.unit.store.traffic import sample_events

    store = EventStore({db!r})
    batch = 0
    while True:
        events = sample_events(1_767_225_600_000_000_000 + batch * 1_000_000_000)
        store.write(events * 1 + [
            Event(event_type=e.event_type, ts_ns=e.ts_ns + i, data=e.data, process=e.process)
            for i in range(1, 40) for e in events[:2]
        ])
        batch += 1
        if batch == 3:
            print("writing", flush=True)
    """
)


def test_store_survives_kill_9_mid_write(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=str(ROOT), db=str(db))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.3)  # well into continuous writing
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with EventStore(db, create=False) as store:
        assert store.integrity_check() == "ok"
        count = store.count()
        (bodies,) = store.conn.execute("SELECT count(*) FROM bodies").fetchone()
        sample = [
            orjson.loads(b)
            for (b,) in store.conn.execute("SELECT body FROM bodies ORDER BY id DESC LIMIT 50")
        ]
    # Whole batches only (each is one transaction of 90 events): never half a batch.
    assert count >= 3 * 90 and count % 90 == 0 and bodies == count
    assert_valid_events(sample)
