"""`oisp-sensor status`: every problem found is printed with its fix and fails the command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oisp_sensor import runtime
from oisp_sensor.cli.status import check_drops, check_sensor, check_store
from oisp_sensor.runtime import SensorState
from tests.unit.cli.conftest import Run


@pytest.fixture
def listeners() -> Iterator[dict[str, str]]:
    """A real TCP proxy port, web port and unix socket, as a running sensor would have."""
    tcp = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    folder = tempfile.mkdtemp(prefix="oisp-")  # short: unix socket paths are limited
    path = f"{folder}/oisp.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    unix.listen()
    proxy, web = (f"127.0.0.1:{s.getsockname()[1]}" for s in tcp)
    yield {"proxy": proxy, "web_url": f"http://{web}/", "socket": path}
    for s in [*tcp, unix]:
        s.close()
    Path(path).unlink()
    Path(folder).rmdir()


def _closed_port() -> str:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def test_nothing_set_up(run: Run) -> None:
    result = run("status")
    assert result.exit_code == 1
    out = result.stdout
    assert "CA" in out and "oisp-sensor ca init && oisp-sensor ca install" in out
    assert "not running" in out and "fix: start it: oisp-sensor record" in out
    assert "no events yet" in out
    assert "2 problems found" in out


def test_a_healthy_running_sensor(listeners: dict[str, str]) -> None:
    state = SensorState(counters={"events.total": 42, "sink.store.written": 42}, **listeners)
    checks = check_sensor(state, time.time())
    assert all(c.ok for c in checks), checks
    details = " ".join(c.detail for c in checks)
    assert "accepting connections" in details and "reachable" in details
    assert "42 events, nothing dropped" in details


def test_unreachable_parts_are_problems_with_fixes(listeners: dict[str, str]) -> None:
    state = SensorState(
        proxy=_closed_port(), socket="/nonexistent/oisp.sock", web_url=f"http://{_closed_port()}/"
    )
    bad = [c for c in check_sensor(state, time.time()) if c.ok is False]
    assert [c.name.strip() for c in bad] == ["proxy", "socket", "web"]
    assert all(c.fix for c in bad)


def test_a_sensor_that_stopped_publishing_may_be_hung() -> None:
    state = SensorState(updated_at=time.time() - 120)
    (stale,) = [c for c in check_sensor(state, time.time()) if c.ok is False]
    assert "may be hung" in stale.detail and str(state.pid) in stale.fix


def test_drops_are_problems_except_while_paused() -> None:
    bad = check_drops({"events.total": 10, "sink.store.dropped": 3, "capture.dropped": 1})
    assert [c.ok for c in bad] == [False, False]
    assert "overloaded" in bad[0].fix and "store sink could not keep up" in bad[1].fix
    (paused,) = check_drops({"events.total": 10, "events.paused_dropped": 5})
    assert paused.ok and "while paused" in paused.detail


def test_a_slow_dashboard_tab_does_not_fail_status() -> None:
    """The live view skipping updates loses nothing recorded: reported, not a problem."""
    counts = {
        "events.total": 10,
        "web.live_dropped": 6,
        "sink.live.dropped": 2,
        "sink.live.written": 8,  # what the feed did get: not counted as skipped
    }
    (check,) = check_drops(counts)
    assert check.ok
    assert "nothing dropped" in check.detail and "live view skipped 8 updates" in check.detail


def test_losses_are_worded_by_kind() -> None:
    checks = check_drops(
        {
            "events.total": 1_000,
            "sink.store.dropped": 120,
            "sink.jsonl.errors": 3,
            "capture.dropped": 10,
            "capture.incomplete_exchanges": 4,
            "web.live_dropped": 9,
        }
    )
    details = [c.detail for c in checks]
    assert [c.ok for c in checks] == [False, False, False, None]
    assert "10 captured chunks were dropped" in details[0] and "4 calls were recorded" in details[0]
    assert details[1] == "the JSONL file: 3 failed writes (sink.jsonl.errors); see the sensor's log"
    assert details[2] == (
        "the store missed 120 of 1,000 events: its queue was full (sink.store.dropped)"
    )
    assert "live view skipped 9 updates" in details[3]


def test_store_facts(recorded: dict[str, Any]) -> None:
    (check,), facts = check_store(recorded["db"], 7)
    assert check.ok and f"{len(recorded['events'])} events" in check.detail
    assert facts["events"] == len(recorded["events"]) and facts["size_bytes"] > 0
    assert facts["oldest"] == recorded["events"][0]["ts"]


def test_a_broken_store_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"nope" * 500)
    (check,), _ = check_store(path, 7)
    assert check.ok is False and "not a SQLite database" in check.detail and check.fix


def test_status_of_a_running_sensor(
    run: Run, listeners: dict[str, str], recorded: dict[str, Any]
) -> None:
    runtime.publish(
        SensorState(db_path=str(recorded["db"]), jsonl_path=str(recorded["jsonl"]), **listeners)
    )
    result = run("status", "--json")
    out = json.loads(result.stdout)
    by_name = {c["name"].strip(): c for c in out["checks"]}
    assert by_name["Sensor"]["ok"] and by_name["proxy"]["ok"] and by_name["socket"]["ok"]
    assert out["store"]["events"] == len(recorded["events"])
    assert out["sensor"]["proxy"] == listeners["proxy"]
    # The only problem left is the CA, which no test may install into the system.
    assert [c["name"] for c in out["checks"] if c["ok"] is False] == ["CA"]
    assert result.exit_code == 1 and out["ok"] is False


def test_a_sensor_that_died_uncleanly(run: Run) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    runtime.publish(SensorState(pid=proc.pid))
    result = run("status")
    assert result.exit_code == 1
    assert f"pid {proc.pid}, stopped without cleaning up" in result.stdout


def test_ca_present_but_untrusted_says_how_to_trust_it(run: Run) -> None:
    from oisp_sensor.capture.ca import LocalCA

    LocalCA.create()
    out = run("status").stdout
    line = next(line for line in out.splitlines() if " CA " in f" {line} ")
    assert "not trusted" in line
    assert "oisp-sensor ca install" in out and "oisp-sensor run" in out
