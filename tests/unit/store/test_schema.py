"""Migrations: a store written by the v1 layout opens in this version with nothing lost."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from oisp_sensor.events import Event, provider_label
from oisp_sensor.store import EventFilter, EventStore, select_events
from oisp_sensor.store.columns import COLUMNS
from oisp_sensor.store.schema import SCHEMA_VERSION, user_version
from tests.conformance import assert_valid_events


def _write_v1(path: Path, events: list[Event]) -> None:
    """A store exactly as the v1 layout wrote it: one wide table, body inline."""
    with EventStore(path, migrate_to=1) as old:
        assert user_version(old.conn) == 1
        with old.transaction() as conn:
            for e in events:
                wire = e.to_dict()
                conn.execute(
                    "INSERT INTO events (event_id, ts_ns, event_type, provider, model, pid,"
                    " process_name, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        e.event_id,
                        e.ts_ns,
                        e.event_type,
                        provider_label(e),
                        (e.data.get("model") or {}).get("id"),
                        (e.process or {}).get("pid"),
                        (e.process or {}).get("name"),
                        orjson.dumps(wire).decode(),
                    ),
                )


def test_v1_store_migrates_to_the_current_layout(tmp_path: Path, events: list[Event]) -> None:
    old_path, fresh_path = tmp_path / "v1.db", tmp_path / "fresh.db"
    _write_v1(old_path, events)
    with EventStore(fresh_path) as fresh:
        fresh.write(events)
        expected = fresh.conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY event_id"
        ).fetchall()

    with EventStore(old_path) as migrated:
        assert user_version(migrated.conn) == SCHEMA_VERSION
        got = migrated.conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY event_id"
        ).fetchall()
        stored = [s.event for s in select_events(migrated, EventFilter())]
        tables = {
            r[0] for r in migrated.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert migrated.integrity_check() == "ok"
    # Every indexed column backfilled from the bodies, exactly as a new write derives it.
    # (ts_ns differs only below the microsecond, which v1 kept and the JSON does not.)
    strip = COLUMNS.index("ts_ns")
    assert [r[:strip] + r[strip + 1 :] for r in got] == [
        r[:strip] + r[strip + 1 :] for r in expected
    ]
    assert [e["event_id"] for e in stored] == [e.event_id for e in events]
    assert_valid_events(stored)
    assert "events_v1" not in tables and {"events", "bodies"} <= tables


def test_opening_a_current_store_again_changes_nothing(tmp_path: Path, events: list[Event]) -> None:
    path = tmp_path / "e.db"
    with EventStore(path) as store:
        store.write(events)
    with EventStore(path) as store:
        assert user_version(store.conn) == SCHEMA_VERSION
        assert store.count() == len(events)


def test_two_openers_of_a_new_store_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            EventStore(path).close()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with EventStore(path) as store:
        assert user_version(store.conn) == SCHEMA_VERSION
