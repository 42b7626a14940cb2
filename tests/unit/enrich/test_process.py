"""Process enrichment against real processes: spawned, exited, zombie, unreadable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from oisp_sensor.enrich.process import MAX_CMDLINE_CHARS, ProcessEnricher, join_cmdline
from oisp_sensor.events import Event
from tests.conformance import assert_valid_events
from tests.unit.enrich.events import response_event

SLEEPER = "import time; time.sleep(60)"


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", SLEEPER, "--flag", "two words"], cwd=tmp_path)
    _wait_started(child.pid)
    yield child
    child.kill()
    child.wait()


def _wait_started(pid: int) -> None:
    """Until the child has exec'd (its cmdline is the new program's)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if SLEEPER in psutil.Process(pid).cmdline() or "sleep" in psutil.Process(pid).name():
                return
        except psutil.Error:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not start")


def event_for(pid: int, **process: object) -> Event:
    return response_event("openai", "gpt-4o", None, process={"pid": pid, **process})


def test_fills_process_context_of_a_real_process(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    event = event_for(sleeper.pid)
    ProcessEnricher().enrich(event)
    proc = event.process
    assert proc is not None
    assert proc["cmdline_args"] == [sys.executable, "-c", SLEEPER, "--flag", "two words"]
    assert proc["cmdline"] == f"{sys.executable} -c '{SLEEPER}' --flag 'two words'"
    assert proc["cwd"] == str(tmp_path)
    assert proc["exe"] == psutil.Process(sleeper.pid).exe()
    assert proc["name"] == psutil.Process(sleeper.pid).name()
    assert proc["ppid"] == os.getpid()
    assert proc["parent"]["pid"] == os.getpid()
    assert proc["parent"]["cmdline"]  # the test runner's own command line
    assert proc["ancestors"][0] == {k: proc["parent"][k] for k in ("pid", "name", "exe")}
    assert [a["pid"] for a in proc["ancestors"]][:2] == [os.getpid(), os.getppid()]
    assert 1 <= len(proc["ancestors"]) <= 5
    started = psutil.Process(sleeper.pid).create_time()
    assert proc["start_time"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(started)))
    assert "env" not in proc
    assert event.actor == {"uid": os.getuid(), "gid": os.getgid(), "user": _me()}
    assert_valid_events([event.to_dict()])


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_capture_metadata_wins(sleeper: subprocess.Popen[bytes]) -> None:
    """What the capture saw at call time is kept; a ppid that no longer matches means the
    parent chain read now describes another tree, so it is left out."""
    event = event_for(sleeper.pid, name="worker-thread", ppid=1)
    event.actor = {"uid": 4321}
    ProcessEnricher().enrich(event)
    assert event.process is not None
    assert event.process["name"] == "worker-thread"
    assert event.process["ppid"] == 1
    assert "parent" not in event.process and "ancestors" not in event.process
    assert event.process["cmdline_args"][1:3] == ["-c", SLEEPER]
    assert event.actor == {"uid": 4321}  # another uid: nothing of ours is mixed in


def test_user_name_from_the_captured_uid(sleeper: subprocess.Popen[bytes]) -> None:
    event = event_for(sleeper.pid)
    event.actor = {"uid": 0}
    ProcessEnricher().enrich(event)
    assert event.actor is not None and event.actor["user"] == "root"


def test_ancestors_of_a_grandchild(tmp_path: Path) -> None:
    shell = subprocess.Popen(["/bin/sh", "-c", f'{sys.executable} -c "{SLEEPER}"; true'])
    try:
        deadline = time.monotonic() + 10
        while not (children := psutil.Process(shell.pid).children()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        grandchild = children[0].pid
        _wait_started(grandchild)
        event = event_for(grandchild)
        ProcessEnricher().enrich(event)
        assert event.process is not None
        chain = [(a["pid"], a.get("name")) for a in event.process["ancestors"]]
        assert chain[0] == (shell.pid, "sh")
        assert chain[1][0] == os.getpid()
        script = f'{sys.executable} -c "{SLEEPER}"; true'
        assert event.process["parent"]["cmdline"] == f"/bin/sh -c '{script}'"
    finally:
        for p in psutil.Process(shell.pid).children(recursive=True):
            p.kill()
        shell.kill()
        shell.wait()


def test_what_was_learned_survives_the_process_exiting(
    sleeper: subprocess.Popen[bytes],
) -> None:
    enricher = ProcessEnricher(recheck_s=0)  # ask the OS again on every event
    first = event_for(sleeper.pid)
    enricher.enrich(first)
    sleeper.kill()
    sleeper.wait()
    assert not psutil.pid_exists(sleeper.pid)
    later = event_for(sleeper.pid)
    enricher.enrich(later)
    assert later.process == first.process
    assert later.process is not first.process  # each event owns its own objects
    assert later.process["cmdline_args"] is not first.process["cmdline_args"]
    assert later.process["ancestors"][0] is not first.process["ancestors"][0]


def test_process_gone_before_first_seen() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    event = event_for(child.pid, name="python3")
    ProcessEnricher().enrich(event)
    assert event.process == {"pid": child.pid, "name": "python3"}
    assert event.actor is None


def test_zombie_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        event = event_for(child.pid)
        ProcessEnricher().enrich(event)
        proc = event.process
        assert proc is not None
        assert proc["name"]  # a zombie still has its name and parent...
        assert proc["parent"]["pid"] == os.getpid()
        assert "cmdline" not in proc  # ...but no command line, cwd or exe any more
        assert_valid_events([event.to_dict()])
    finally:
        child.wait()


def test_no_such_pid_and_bad_pids() -> None:
    unused = max(psutil.pids()) + 1
    while psutil.pid_exists(unused):
        unused += 1
    enricher = ProcessEnricher()
    for process in ({"pid": unused}, {"pid": 0}, {"pid": -5}, {"pid": "12"}, {"exe": "/bin/x"}):
        event = response_event("openai", "gpt-4o", None, process=dict(process))
        enricher.enrich(event)
        assert event.process == process
    nothing = response_event("openai", "gpt-4o", None)
    enricher.enrich(nothing)
    assert nothing.process is None


def test_a_process_started_after_the_event_is_not_the_caller(
    sleeper: subprocess.Popen[bytes],
) -> None:
    """pids are reused: whoever holds the pid now but started later did not make the call."""
    started_ns = int(psutil.Process(sleeper.pid).create_time() * 1e9)
    event = event_for(sleeper.pid)
    event.ts_ns = started_ns - 30 * 10**9
    ProcessEnricher().enrich(event)
    assert event.process == {"pid": sleeper.pid}


def test_old_events_are_not_enriched_from_the_live_system(
    sleeper: subprocess.Popen[bytes],
) -> None:
    """A replayed capture from yesterday says nothing about today's pid owners."""
    event = event_for(sleeper.pid)
    event.ts_ns = time.time_ns() - 24 * 3600 * 10**9
    ProcessEnricher().enrich(event)
    assert event.process == {"pid": sleeper.pid}


def test_cache_is_bounded(sleeper: subprocess.Popen[bytes]) -> None:
    enricher = ProcessEnricher(cache_size=2)
    for pid in (os.getpid(), os.getppid(), sleeper.pid):
        event = event_for(pid)
        enricher.enrich(event)
        assert event.process is not None and "cmdline" in event.process
    assert len(enricher) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_permission_denied_is_not_an_error(sleeper: subprocess.Popen[bytes]) -> None:
    """A sensor running as an ordinary user cannot read a root process's exe or cwd: it
    keeps what it can read (name, command line) and carries on."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops to `nobody` and enriches an event for root's process
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            event = event_for(sleeper.pid)
            ProcessEnricher().enrich(event)
            os.write(write_end, json.dumps(event.process).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    proc = json.loads(out)
    assert proc["pid"] == sleeper.pid
    assert proc["cmdline_args"][1:3] == ["-c", SLEEPER]
    assert "exe" not in proc and "cwd" not in proc


def test_huge_command_lines_are_capped() -> None:
    args = ["prog"] + ["x" * 1000] * 100
    joined, kept = join_cmdline(args)
    assert len(joined) <= MAX_CMDLINE_CHARS + 10
    assert kept[-1].endswith("…")
    assert sum(len(a) + 1 for a in kept) <= MAX_CMDLINE_CHARS + 2
