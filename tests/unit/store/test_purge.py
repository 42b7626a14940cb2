"""Purge: deleted events are gone from the bytes of the store and of JSONL files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from oisp_sensor.store import EventFilter, EventStore, store_files
from oisp_sensor.store.purge import purge_jsonl, purge_store, rotations
from tests.conformance import assert_valid_file
from tests.unit.store.traffic import CANARY


def _everywhere(paths: list[Path], needle: str) -> list[Path]:
    return [p for p in paths if p.exists() and needle.encode() in p.read_bytes()]


def test_purged_store_content_is_gone_from_every_file(recorded: dict[str, Any]) -> None:
    db = recorded["db"]
    assert _everywhere(store_files(db), CANARY)  # it is there to begin with
    with EventStore(db) as reader:  # a second connection open, as a dashboard would be
        reader.count()
        with EventStore(db) as store:
            result = purge_store(store, EventFilter(processes=("node",)))
        assert reader.count() == len(recorded["events"]) - result.removed
    assert result.removed == sum(1 for e in recorded["events"] if e["process"]["name"] == "node")
    assert result.wal_truncated
    assert _everywhere(store_files(db), CANARY) == []
    with EventStore(db) as store:
        assert store.integrity_check() == "ok"
        names = {r[0] for r in store.conn.execute("SELECT DISTINCT process_name FROM events")}
    assert names == {"python3", "curl"}


def test_purge_all_empties_the_store(recorded: dict[str, Any]) -> None:
    with EventStore(recorded["db"]) as store:
        result = purge_store(store, EventFilter())
        assert store.count() == 0
    assert result.removed == len(recorded["events"])
    assert result.size_after < result.size_before


def test_jsonl_purge_rewrites_in_place(recorded: dict[str, Any]) -> None:
    path = recorded["jsonl"]
    inode = path.stat().st_ino
    result = purge_jsonl(path, EventFilter(processes=("node",)))
    assert CANARY.encode() not in path.read_bytes()
    assert path.stat().st_ino == inode  # a running sensor's open file stays valid
    kept = assert_valid_file(path)
    assert result.removed == 2 and result.kept == len(kept) == len(recorded["events"]) - 2
    assert all(e["process"]["name"] != "node" for e in kept)


def test_jsonl_purge_keeps_what_it_cannot_read(recorded: dict[str, Any]) -> None:
    path = recorded["jsonl"]
    with path.open("ab") as f:
        f.write(b"a line that is not an event\n")
        f.write(b'{"partial": "line still being written')
    result = purge_jsonl(path, EventFilter(processes=("node",)))
    data = path.read_bytes()
    assert result.unreadable == 1
    assert data.endswith(b'a line that is not an event\n{"partial": "line still being written')


def test_rotations_are_found_and_emptied_ones_deleted(recorded: dict[str, Any]) -> None:
    path = recorded["jsonl"]
    for i in (1, 2, 10):
        shutil.copy(path, path.with_name(f"{path.name}.{i}"))
    path.with_name(f"{path.name}.bak").write_text("not a rotation")
    found = rotations(path)
    assert [p.name.rsplit(".", 1)[1] for p in found] == ["1", "2", "10"]
    result = purge_jsonl(found[0], EventFilter(), delete_if_empty=True)
    assert result.deleted_file and not found[0].exists()
    assert result.removed == len(recorded["events"])


def test_big_files_are_purged_in_bounded_chunks(recorded: dict[str, Any], tmp_path: Path) -> None:
    lines = recorded["jsonl"].read_bytes()
    big = tmp_path / "big.jsonl"
    big.write_bytes(lines * 400)  # several MB: many chunks, lines cut at chunk edges
    progress: list[tuple[int, int]] = []
    result = purge_jsonl(
        big, EventFilter(processes=("node",)), progress=lambda d, t: progress.append((d, t))
    )
    assert result.removed == 2 * 400
    assert CANARY.encode() not in big.read_bytes()
    assert len(progress) > 2 and progress[-1][0] == progress[-1][1]
    assert len(assert_valid_file(big)) == (len(recorded["events"]) - 2) * 400
