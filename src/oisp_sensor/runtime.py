"""The running sensor's state file, `data_dir/sensor.json`: how other commands find it.

`record`, `run` and `demo` publish their state every few seconds (where they listen,
where events go, counters); `status`, `show` and the TUI read it. A file rather than
a control socket because a reader must cope with a sensor that died without cleaning
up: `read()` checks that the pid is still that sensor and otherwise says "none".
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

from oisp_sensor.paths import data_dir, write_private

STATE_FILE = "sensor.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorState:
    """What a running sensor tells the rest of the machine about itself.

    Addresses are strings a user can paste (`127.0.0.1:8080`, `http://127.0.0.1:7777/`);
    an empty string means "not enabled". The web URL never carries the token.
    """

    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)  # Unix seconds
    updated_at: float = field(default_factory=time.time)
    command: str = "record"  # record | run | demo
    proxy: str = ""
    socket: str = ""
    web_url: str = ""
    db_path: str = ""
    jsonl_path: str = ""
    paused: bool = False
    counters: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SensorState:
        """Lenient: unknown keys (a newer sensor) are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if not isinstance(values.get("pid"), int):
            raise ValueError("state file has no pid")
        counters = values.get("counters")
        if not isinstance(counters, dict):
            values["counters"] = {}
        return cls(**values)


def state_path() -> Path:
    return data_dir() / STATE_FILE


def publish(state: SensorState, path: Path | None = None) -> None:
    """Atomically replace the state file (readers never see half a file)."""
    write_private(path or state_path(), state.to_json())


def clear(pid: int | None = None, path: Path | None = None) -> None:
    """Remove the state file on shutdown, but only if it is ours (another sensor may own it)."""
    path = path or state_path()
    pid = os.getpid() if pid is None else pid
    try:
        current = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    if isinstance(current, dict) and current.get("pid") == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_any(path: Path | None = None) -> SensorState | None:
    """The state file as written, alive or not; None when absent or unreadable."""
    try:
        raw = json.loads((path or state_path()).read_bytes())
        return SensorState.from_json(raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def read(path: Path | None = None) -> SensorState | None:
    """The running sensor's state, or None when there is no file or its process is gone."""
    state = read_any(path)
    if state is None or not is_alive(state):
        return None
    return state


def is_alive(state: SensorState) -> bool:
    """True when `state.pid` runs and started no later than the sensor did (not a reused pid)."""
    try:
        proc = psutil.Process(state.pid)
        created = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else: we cannot tell more
    # create_time has coarse (clock-tick) resolution; allow a little slack.
    return created <= state.started_at + 2.0
