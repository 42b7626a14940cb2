"""Retention: expired events leave the store, at start and periodically, by an injected clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.store import EventStore, Retention
from tests.conformance import assert_valid_events
from tests.helpers import T0
from tests.unit.store.traffic import sample_events

DAY_NS = 86_400 * 1_000_000_000
NOW = T0 / 1e9 + 30 * 86_400  # the clock the tests pretend it is


def _aged(days_ago: float) -> list[Event]:
    """The sample traffic as if it happened `days_ago` before NOW."""
    return sample_events(int(NOW * 1e9 - days_ago * DAY_NS))


def _bodies(store: EventStore) -> int:
    return int(store.conn.execute("SELECT count(*) FROM bodies").fetchone()[0])


def test_prune_removes_only_expired_events_and_their_bodies() -> None:
    store = EventStore.memory()
    old, older, recent = _aged(8), _aged(10), _aged(1)
    store.write(old + older + recent)
    seen: list[tuple[int, int]] = []
    removed = Retention(7, clock=lambda: NOW).prune(
        store, progress=lambda d, t: seen.append((d, t))
    )
    assert removed == len(old) + len(older)
    assert store.count() == _bodies(store) == len(recent)
    remaining = {r[0] for r in store.conn.execute("SELECT event_id FROM events")}
    assert remaining == {e.event_id for e in recent}
    assert seen[0] == (0, removed) and seen[-1] == (removed, removed)
    assert_valid_events([e.to_dict() for e in recent])


def test_the_window_moves_with_the_clock() -> None:
    store = EventStore.memory()
    store.write(_aged(3))
    now = [NOW]
    retention = Retention(7, clock=lambda: now[0])
    assert retention.prune(store) == 0
    now[0] += 5 * 86_400  # five days later, those events are eight days old
    assert retention.prune(store) > 0
    assert store.count() == 0


def test_retention_needs_a_positive_window() -> None:
    with pytest.raises(ValueError):
        Retention(0)


async def test_store_sink_prunes_at_start(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        store.write(_aged(9) + _aged(2))
    counters = Counters()
    sink = StoreSink(path, retention_days=7, clock=lambda: NOW, counters=counters)
    await sink.start()
    try:
        await asyncio.wait_for(sink.wait_pruned(), 10)
    finally:
        await sink.close()
    with EventStore(path) as store:
        assert store.count() == len(_aged(2))
    assert counters.get("store.pruned") == len(_aged(9))


async def test_store_sink_prunes_periodically(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    now = [NOW]
    sink = StoreSink(path, retention_days=7, prune_every_s=0.02, clock=lambda: now[0])
    await sink.start()
    try:
        await sink.write(_aged(6))
        await asyncio.sleep(0.1)
        with EventStore(path) as store:
            assert store.count() == len(_aged(6))  # still inside the window
        now[0] += 2 * 86_400  # two days pass: now they are eight days old
        for _ in range(200):
            with EventStore(path) as store:
                if store.count() == 0:
                    break
            await asyncio.sleep(0.02)
        with EventStore(path) as store:
            assert store.count() == 0
    finally:
        await sink.close()


async def test_prune_releases_space(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        for days in range(20):
            store.write(_aged(10 + days / 100))
        store.checkpoint()
        before = store.size_bytes()
        Retention(7, clock=lambda: NOW).prune(store)
        store.checkpoint()
        assert store.size_bytes() < before
