"""JSONL files as a store: loading (bad lines skipped and counted) and following."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from oisp_sensor.sinks.jsonl import encode
from oisp_sensor.store import EventFilter, EventStore, select_events
from oisp_sensor.store.jsonl import JsonlFollower, LoadResult, load_jsonl
from tests.conformance import assert_valid_file


def test_load_skips_and_counts_bad_lines(recorded: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = recorded["jsonl"].read_bytes().splitlines(keepends=True)
    path.write_bytes(
        good[0]
        + b"not json\n"
        + b"\n"
        + b"[1, 2]\n"
        + b'{"event_type": "x"}\n'
        + b"".join(good[1:])
    )
    store = EventStore.memory()
    progress: list[tuple[int, int]] = []
    result = load_jsonl(path, store, progress=lambda d, t: progress.append((d, t)))
    assert result.events == len(good) and store.count() == len(good)
    assert result.bad == 3
    assert result.problems[0].startswith(f"{path}:2: not JSON")
    assert "not a JSON object" in result.problems[1]
    assert "not an OISP event" in result.problems[2]
    assert progress[-1] == (path.stat().st_size, path.stat().st_size)
    assert [s.event for s in select_events(store, EventFilter())] == recorded["events"]


def test_load_without_bodies_keeps_only_columns(recorded: dict[str, Any]) -> None:
    store = EventStore.memory()
    load_jsonl(recorded["jsonl"], store, bodies=False)
    assert store.count() == len(recorded["events"])
    assert store.conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == 0


def test_follower_waits_for_complete_lines(recorded: dict[str, Any], tmp_path: Path) -> None:
    lines = recorded["jsonl"].read_bytes().splitlines(keepends=True)
    path = tmp_path / "growing.jsonl"
    path.write_bytes(lines[0] + lines[1][:25])  # the second line is still being written
    store = EventStore.memory()
    follower = JsonlFollower(path, store, LoadResult())
    follower.start_at_beginning()
    follower.poll()
    assert store.count() == 1
    with path.open("ab") as f:
        f.write(lines[1][25:] + lines[2])
    follower.poll()
    assert store.count() == 3
    follower.close()
    assert_valid_file(path)


def test_follower_survives_truncation_and_rotation(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    lines = recorded["jsonl"].read_bytes().splitlines(keepends=True)
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"".join(lines[:4]))
    store = EventStore.memory()
    follower = JsonlFollower(path, store, LoadResult())
    follower.start_at_end()
    follower.poll()
    assert store.count() == 0  # --follow without history starts at the end

    with path.open("ab") as f:  # appended, then rotated away like the JSONL sink does
        f.write(lines[4])
    os.replace(path, path.with_name("live.jsonl.1"))
    path.write_bytes(lines[5] + lines[7] + lines[8])
    follower.poll()
    assert store.count() == 4  # the old file's tail, then the new file

    assert len(lines[6]) < len(lines[5] + lines[7] + lines[8])
    path.write_bytes(lines[6])  # truncated in place (same inode, smaller)
    follower.poll()
    assert store.count() == 5
    follower.close()
    assert_valid_file(path)
    assert_valid_file(path.with_name("live.jsonl.1"))


def test_events_written_by_the_sink_load_back_identically(recorded: dict[str, Any]) -> None:
    store = EventStore.memory()
    load_jsonl(recorded["jsonl"], store)
    again = b"".join(encode_dict(s.event) for s in select_events(store, EventFilter()))
    assert again == recorded["jsonl"].read_bytes()


def encode_dict(event: dict[str, Any]) -> bytes:
    from oisp_sensor.events import Event

    return encode(Event.from_dict(event))
