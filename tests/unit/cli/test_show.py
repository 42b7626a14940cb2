"""`oisp-sensor show`: readable lines, the events themselves, filters, and --follow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import IO, Any

import pytest

from oisp_sensor.cli.show import format_event
from tests.conformance import assert_valid_events
from tests.unit.cli.conftest import Run
from tests.unit.store.traffic import CANARY

ROOT = Path(__file__).resolve().parents[3]


def test_show_the_default_store_one_line_per_event(
    run: Run, default_store: Path, recorded: dict[str, Any]
) -> None:
    result = run("show")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(recorded["events"])
    assert "\x1b[" not in result.stdout  # piped: plain text, no colour codes
    response = next(line for line in lines if "ai.response" in line and "node[2002]" in line)
    for part in ("anthropic/claude-sonnet-4-5-20250929", "12→17 tok", "$0.000291", "200", CANARY):
        assert part in response
    failed = next(line for line in lines if "429" in line)
    assert "error: Rate limit reached" in failed
    assert any("agent.tool_call" in line and "get_weather" in line for line in lines)


def test_show_json_prints_the_events_themselves(run: Run, recorded: dict[str, Any]) -> None:
    for source in ([recorded["jsonl"]], ["--db", recorded["db"]]):
        result = run("show", *source, "--json", "--limit", "0")
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert events == recorded["events"]
        assert_valid_events(events)


def test_show_filters(run: Run, recorded: dict[str, Any]) -> None:
    db = ["--db", recorded["db"]]
    out = run("show", *db, "--json", "--type", "ai.response", "--provider", "openai").stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert got and {e["event_type"] for e in got} == {"ai.response"}
    assert {e["data"]["provider"]["name"] for e in got} == {"openai"}
    out = run("show", *db, "--json", "--process", "curl,node", "--model", "claude*").stdout
    assert {json.loads(line)["process"]["name"] for line in out.splitlines()} == {"node"}
    out = run(
        "show", *db, "--json", "--since", "2026-01-01T00:00:05Z", "--until", "2026-01-01T00:00:09Z"
    )
    assert {json.loads(line)["process"]["name"] for line in out.stdout.splitlines()} == {"node"}


def test_show_limit_says_what_it_left_out(run: Run, recorded: dict[str, Any]) -> None:
    result = run("show", recorded["jsonl"], "--limit", "2", "--json")
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert got == recorded["events"][-2:]
    assert f"showed the last 2 of {len(recorded['events'])} matching events" in result.stderr


def test_show_nothing_matching(run: Run, recorded: dict[str, Any]) -> None:
    result = run("show", recorded["jsonl"], "--process", "nobody")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no matching events" in result.stderr


def test_show_a_store_file_given_as_file(run: Run, recorded: dict[str, Any]) -> None:
    """A store passed positionally is recognised by its header, whatever its name."""
    renamed = recorded["db"].with_name("capture.sqlite")
    recorded["db"].rename(renamed)
    assert len(run("show", renamed, "--json").stdout.splitlines()) == len(recorded["events"])


def test_show_errors_are_messages_not_tracebacks(run: Run, tmp_path: Path) -> None:
    result = run("show")
    assert result.exit_code == 1 and "no event store at" in result.stderr
    garbage = tmp_path / "events.db"
    garbage.write_bytes(b"\x00garbage" * 100)
    result = run("show", "--db", garbage)
    assert result.exit_code == 1
    assert "is not a SQLite database" in result.stderr and "Traceback" not in result.output
    result = run("show", "--since", "someday", tmp_path / "x.jsonl")
    assert result.exit_code == 2 and "--since" in result.stderr
    result = run("show", tmp_path / "none.jsonl")
    assert result.exit_code == 1 and "no such file" in result.stderr


def test_show_a_locked_store_is_a_clear_error(run: Run, recorded: dict[str, Any]) -> None:
    import sqlite3

    holder = sqlite3.connect(recorded["db"], isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run("show", "--db", recorded["db"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "locked by another process" in result.stderr and "Traceback" not in result.output


def test_the_line_fits_a_terminal(recorded: dict[str, Any]) -> None:
    for event in recorded["events"]:
        line = format_event(event, width=100)
        assert len(line.plain) <= 100
        assert line.spans  # styled for a terminal


# --- --follow, with real processes -------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from oisp_sensor.sinks.store import StoreSink
    from oisp_sensor.sinks.jsonl import JsonlSink
    from tests.unit.store.traffic import run_through, sample_captures

    async def main():
        for i in range({batches}):
            if {db!r}:
                sinks = [StoreSink(Path({db!r}), retention_days=36500)]
            else:
                sinks = [JsonlSink(Path({jsonl!r}))]
            await run_through(sample_captures(1_767_225_600_000_000_000 + i * 10**10), sinks)
            print("batch", i, flush=True)
            time.sleep(0.05)

    asyncio.run(main())
    """
)


def _reader(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oisp_sensor",
            "show",
            "--follow",
            "--json",
            "--interval",
            "0.05",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _read_lines(stream: IO[str], n: int, timeout: float) -> list[str]:
    """Up to `n` lines within `timeout` (a thread, since select() cannot see buffered lines)."""
    import queue
    import threading

    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True).start()
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and (left := deadline - time.monotonic()) > 0:
        try:
            out.append(lines.get(timeout=left))
        except queue.Empty:
            break
    return out


@pytest.mark.parametrize("kind", ["store", "jsonl"])
def test_follow_sees_every_event_a_concurrent_writer_adds(
    kind: str, tmp_path: Path, recorded: dict[str, Any]
) -> None:
    per_batch = len(recorded["events"])
    batches = 6
    if kind == "store":
        db, jsonl = str(tmp_path / "live.db"), ""
        from oisp_sensor.store import EventStore

        EventStore(Path(db)).close()  # exists before the reader starts
        target = ["--db", db]
    else:
        db, jsonl = "", str(tmp_path / "live.jsonl")
        Path(jsonl).touch()
        target = [jsonl]
    reader = _reader(target)
    try:
        time.sleep(0.5)  # reading before the writer starts: --follow from an empty source
        writer = subprocess.run(
            [
                sys.executable,
                "-c",
                WRITER.format(root=str(ROOT), db=db, jsonl=jsonl, batches=batches),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert writer.returncode == 0, writer.stderr
        assert reader.stdout is not None
        lines = _read_lines(reader.stdout, per_batch * batches, timeout=30)
    finally:
        reader.send_signal(signal.SIGTERM)
        _, err = reader.communicate(timeout=10)
    assert reader.returncode == 0, err
    events = [json.loads(line) for line in lines]
    assert len(events) == per_batch * batches
    assert len({e["event_id"] for e in events}) == len(events)  # nothing twice
    assert_valid_events(events)
    if kind == "jsonl":
        from tests.conformance import assert_valid_file

        assert_valid_file(Path(jsonl))


def test_big_files_are_worked_on_from_a_private_temporary_store(
    run: Run, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    from oisp_sensor.cli import sources

    monkeypatch.setattr(sources, "IN_MEMORY_MAX_BYTES", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    result = run("show", recorded["jsonl"], "--json", "--limit", "0")
    assert [json.loads(line) for line in result.stdout.splitlines()] == recorded["events"]
    assert list((tmp_path / "scratch").iterdir()) == []  # removed afterwards
