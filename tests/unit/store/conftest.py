"""Fixtures: the sample traffic decoded, and written by the real sinks to a store and a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from oisp_sensor.events import Event
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from tests.conformance import assert_valid_file
from tests.unit.store.traffic import run_through, sample_captures, sample_events

KEEP_DAYS = 100 * 365


@pytest.fixture
def events() -> list[Event]:
    return sample_events()


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Any]:
    """The sample traffic through a real pipeline into a StoreSink and a JsonlSink."""
    db = tmp_path / "events.db"
    jsonl = tmp_path / "events.jsonl"
    # The sample traffic is dated 2026-01-01: a retention window reaching back to it.
    store = StoreSink(db, retention_days=KEEP_DAYS)
    asyncio.run(run_through(sample_captures(), [store, JsonlSink(jsonl)]))
    wire = assert_valid_file(jsonl)
    return {"db": db, "jsonl": jsonl, "events": wire}
