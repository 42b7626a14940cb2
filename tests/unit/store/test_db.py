"""The SQLite store: round trip, settings, and clear errors for bad or busy files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from oisp_sensor.errors import StoreError
from oisp_sensor.events import Event
from oisp_sensor.store import EventFilter, EventStore, select_events
from oisp_sensor.store.columns import COLUMNS, row_from_dict
from oisp_sensor.store.schema import SCHEMA_VERSION
from tests.conformance import assert_valid_events


def test_pipeline_to_store_round_trip(recorded: dict[str, Any]) -> None:
    """What the StoreSink wrote is exactly what the JSONL sink wrote, event for event."""
    with EventStore(recorded["db"], create=False) as store:
        stored = [s.event for s in select_events(store, EventFilter())]
    assert_valid_events(stored)
    assert stored == recorded["events"]


def test_columns_are_derived_from_the_event(recorded: dict[str, Any]) -> None:
    with EventStore(recorded["db"], create=False) as store:
        rows = store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [row_from_dict(e) for e in recorded["events"]]
    response = dict(zip(COLUMNS, rows[1], strict=True))
    assert response["event_type"] == "ai.response"
    assert response["provider"] == "openai"
    assert response["process_name"] == "python3" and response["pid"] == 1001
    assert response["prompt_tokens"] == 50 and response["completion_tokens"] == 10
    assert response["cost_usd"] == pytest.approx(
        recorded["events"][1]["data"]["usage"]["total_cost_usd"]
    )


def test_writing_the_same_events_twice_stores_them_once(events: list[Event]) -> None:
    store = EventStore.memory()
    assert store.write(events) == len(events)
    assert store.write(events) == 0
    assert store.count() == len(events)
    (bodies,) = store.conn.execute("SELECT count(*) FROM bodies").fetchone()
    assert bodies == len(events)


def _bodies_by_event_id(store: EventStore) -> dict[str, dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT e.event_id, b.body FROM events e JOIN bodies b ON b.id = e.id"
    ).fetchall()
    return {event_id: orjson.loads(body) for event_id, body in rows}


def test_a_batch_mixing_stored_and_new_events_gives_each_its_own_body(
    events: list[Event],
) -> None:
    """New rows get their bodies; an event already stored keeps the body it had."""
    store = EventStore.memory()
    half = len(events) // 2
    assert store.write(events[:half]) == half
    assert store.write(events[half - 1 :]) == len(events) - half  # one overlaps
    bodies = _bodies_by_event_id(store)
    assert bodies == {e.event_id: e.to_dict() for e in events}
    assert store.conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == len(events)
    assert_valid_events(list(bodies.values()))


def test_rows_are_numbered_after_the_last_one_and_stray_bodies_are_replaced(
    events: list[Event],
) -> None:
    """Ids continue from the largest, as SQLite's own numbering would; a body left behind
    without its row (an interrupted delete of an older release) does not block a write."""
    store = EventStore.memory()
    store.write(events[:2])
    with store.transaction() as conn:
        conn.execute("DELETE FROM events WHERE id = 2")  # its body stays behind
    assert store.write(events[2:4]) == 2
    ids = [r[0] for r in store.conn.execute("SELECT id FROM events ORDER BY id")]
    assert ids == [1, 2, 3]
    assert _bodies_by_event_id(store) == {
        e.event_id: e.to_dict() for e in (events[0], *events[2:4])
    }


def test_the_body_is_the_sealed_json(events: list[Event]) -> None:
    store = EventStore.memory()
    for e in events:
        e.seal()
    store.write(events)
    bodies = [r[0] for r in store.conn.execute("SELECT body FROM bodies ORDER BY id")]
    assert [b.encode() for b in bodies] == [e.json_bytes() for e in events]


def test_settings_of_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.db"
    with EventStore(path) as store:
        conn = store.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.size_bytes() > 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # events hold prompts


def test_default_store_lives_in_a_private_data_dir(data_dir: Path) -> None:
    from oisp_sensor.config import Config

    path = Config().db_path
    assert path == data_dir / "events.db"
    EventStore(path).close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_size_grows_with_events(tmp_path: Path, events: list[Event]) -> None:
    with EventStore(tmp_path / "e.db") as store:
        empty = store.size_bytes()
        store.write(events)
        assert store.size_bytes() > empty


def test_missing_store_is_not_created_by_readers(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(StoreError, match="no event store at .*none.db.*oisp-sensor record"):
        EventStore(path, create=False)
    assert not path.exists()


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    with pytest.raises(StoreError) as info:
        EventStore(path)
    message = str(info.value)
    assert "events.db is not a SQLite database" in message
    assert "move it away" in message and "--db" in message


def test_a_damaged_store_is_a_clear_error(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        for i in range(40):  # enough pages that damage lands inside tables
            store.write(
                [Event(event_type=e.event_type, ts_ns=e.ts_ns + i, data=e.data) for e in events]
            )
        store.checkpoint()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # keep the header, wreck every page
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        with EventStore(path, create=False) as store:
            select_events(store, EventFilter())
    assert "damaged" in str(info.value) or "not a SQLite database" in str(info.value)
    assert "--db" in str(info.value)


def test_a_store_locked_by_a_writer_is_a_clear_error(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process mid-transaction
    try:
        with EventStore(path, busy_timeout_ms=100) as store:
            with pytest.raises(StoreError, match="events.db is locked by another process"):
                store.write(events)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_store_locked_exclusively_cannot_even_be_read(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            with EventStore(path, create=False, busy_timeout_ms=100) as store:
                store.count()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer oisp-sensor"):
        EventStore(path)


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        EventStore(tmp_path)


def test_an_impossible_location_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StoreError, match="cannot create .*file/events.db"):
        EventStore(not_a_dir / "events.db")
