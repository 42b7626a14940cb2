"""The running sensor's state file: atomic, private, and never mistaken for a live sensor."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil

from oisp_sensor import runtime
from oisp_sensor.runtime import SensorState


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_publish_then_read(data_dir: Path) -> None:
    state = SensorState(
        proxy="127.0.0.1:8080", db_path="/x/events.db", counters={"events.total": 3}
    )
    runtime.publish(state)
    path = data_dir / "sensor.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == ["sensor.json"]  # no temporary left over
    assert runtime.read() == state


def test_no_file_means_no_sensor() -> None:
    assert runtime.read() is None and runtime.read_any() is None


def test_a_dead_pid_means_no_sensor(data_dir: Path) -> None:
    runtime.publish(SensorState(pid=_dead_pid()))
    assert runtime.read() is None
    assert runtime.read_any() is not None  # status can still say it died uncleanly


def test_a_reused_pid_is_not_the_sensor() -> None:
    """Our pid, but a state claiming to start before this process existed: pid reuse."""
    created = psutil.Process(os.getpid()).create_time()
    runtime.publish(SensorState(started_at=created - 3600))
    assert runtime.read() is None


def test_garbage_is_no_sensor(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for content in (b"", b"{not json", b"[]", b'{"pid": "one"}'):
        (data_dir / "sensor.json").write_bytes(content)
        assert runtime.read() is None


def test_newer_fields_are_ignored(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "sensor.json").write_text(
        f'{{"pid": {os.getpid()}, "started_at": {time.time()}, "future_field": 1}}'
    )
    state = runtime.read()
    assert state is not None and state.pid == os.getpid()


def test_clear_removes_only_its_own_file(data_dir: Path) -> None:
    other = _dead_pid()
    runtime.publish(SensorState(pid=other))
    runtime.clear()
    assert (data_dir / "sensor.json").exists()
    runtime.clear(pid=other)
    assert not (data_dir / "sensor.json").exists()
    runtime.clear()  # nothing there: fine
