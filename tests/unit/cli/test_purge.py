"""`oisp-sensor purge`: the store and the sensor's JSONL files lose the data, byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from oisp_sensor import runtime
from oisp_sensor.runtime import SensorState
from oisp_sensor.store import EventStore, store_files
from tests.conformance import assert_valid_file
from tests.unit.cli.conftest import Run
from tests.unit.store.traffic import CANARY


def _holding(paths: list[Path], needle: str) -> list[Path]:
    return [p for p in paths if p.exists() and needle.encode() in p.read_bytes()]


@pytest.fixture
def owned(recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The recorded store and JSONL as the configured sinks, with two rotated files."""
    jsonl: Path = recorded["jsonl"]
    for i in (1, 2):
        shutil.copy(jsonl, jsonl.with_name(f"{jsonl.name}.{i}"))
    monkeypatch.setenv("OISP_SINKS_DB", str(recorded["db"]))
    monkeypatch.setenv("OISP_SINKS_JSONL", str(jsonl))
    files = [*store_files(recorded["db"]), jsonl, *jsonl.parent.glob(jsonl.name + ".*")]
    return {**recorded, "files": files}


def test_purge_a_process_everywhere(run: Run, owned: dict[str, Any]) -> None:
    assert len(_holding(owned["files"], CANARY)) >= 4
    result = run("purge", "--process", "node", "--yes")
    assert result.exit_code == 0, result.output
    assert "removed 2 events" in result.stdout
    assert _holding(owned["files"], CANARY) == []
    for path in [owned["jsonl"], *owned["jsonl"].parent.glob(owned["jsonl"].name + ".*")]:
        kept = assert_valid_file(path)
        assert len(kept) == len(owned["events"]) - 2
    with EventStore(owned["db"]) as store:
        assert store.count() == len(owned["events"]) - 2
        assert store.integrity_check() == "ok"


def test_purge_older_than(run: Run, owned: dict[str, Any]) -> None:
    # The sample traffic is dated 2026-01-01: none of it is 100 years old, all of it a day.
    assert run("purge", "--older-than", "36500d", "--yes").exit_code == 0
    with EventStore(owned["db"]) as store:
        assert store.count() == len(owned["events"])
    assert len(assert_valid_file(owned["jsonl"])) == len(owned["events"])
    assert run("purge", "--older-than", "1d", "--yes").exit_code == 0
    with EventStore(owned["db"]) as store:
        assert store.count() == 0
    assert owned["jsonl"].read_bytes() == b""


def test_purge_all(run: Run, owned: dict[str, Any]) -> None:
    result = run("purge", "--all", "--yes")
    assert result.exit_code == 0, result.output
    assert (
        owned["jsonl"].exists() and owned["jsonl"].stat().st_size == 0
    )  # kept: a sensor may write
    assert list(owned["jsonl"].parent.glob(owned["jsonl"].name + ".*")) == []  # rotations gone
    assert _holding(owned["files"], "ai.request") == []
    with EventStore(owned["db"]) as store:
        assert store.count() == 0


def test_purge_asks_first(run: Run, owned: dict[str, Any]) -> None:
    result = run("purge", "--all")
    assert result.exit_code == 2 and "pass --yes" in result.stderr  # no terminal to ask on
    assert "This permanently deletes ALL events" in result.stdout
    assert f"({len(owned['events'])} matching events)" in result.stdout
    with EventStore(owned["db"]) as store:
        assert store.count() == len(owned["events"])


def test_purge_needs_to_know_what(run: Run, owned: dict[str, Any]) -> None:
    assert run("purge", "--yes").exit_code == 2
    assert run("purge", "--all", "--process", "x", "--yes").exit_code == 2
    result = run("purge", "--older-than", "soon", "--yes")
    assert result.exit_code == 2 and "30m, 1h, 7d" in result.stderr


def test_purge_a_given_jsonl_and_the_running_sensors_files(
    run: Run, recorded: dict[str, Any], tmp_path: Path
) -> None:
    extra = tmp_path / "extra" / "out.jsonl"
    extra.parent.mkdir()
    shutil.copy(recorded["jsonl"], extra)
    live = tmp_path / "live.jsonl"
    shutil.copy(recorded["jsonl"], live)
    runtime.publish(SensorState(db_path=str(recorded["db"]), jsonl_path=str(live)))
    result = run("purge", "--process", "python3", "--jsonl", extra, "--yes")
    assert result.exit_code == 0, result.output
    for path in (extra, live):
        names = {json.loads(line)["process"]["name"] for line in path.read_text().splitlines()}
        assert names == {"node", "curl"}
    with EventStore(recorded["db"]) as store:  # the running sensor's store
        assert store.count() == 4


def test_nothing_to_purge(run: Run) -> None:
    result = run("purge", "--all", "--yes")
    assert result.exit_code == 0 and "Nothing to purge" in result.stdout
