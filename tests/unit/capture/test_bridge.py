"""The unix-socket bridge: real sockets, a real Pipeline and Decoder behind it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import tracemalloc
from collections import Counter as Tally
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.capture.bridge import Bridge
from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.errors import CaptureError
from oisp_sensor.events import CaptureKind, Event, RawCapture
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sensor import build_pipeline
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, T0, captures, http_request, http_response

EXAMPLE = Path(__file__).parents[3] / "examples" / "emit_raw.py"


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A short path: unix socket paths are limited to ~104 bytes, pytest's tmp_path is long."""
    directory = tempfile.mkdtemp(prefix="oisp-t-", dir="/tmp")
    yield Path(directory) / "oisp.sock"
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Sensor:
    """A started pipeline plus the bridge feeding it; events are tallied, not all kept."""

    pipeline: Pipeline
    bridge: Bridge
    counters: Counters
    types: Tally[str] = field(default_factory=Tally)
    kept: list[dict[str, Any]] = field(default_factory=list)
    keep: int = 200

    def on_event(self, event: Event) -> None:
        self.types[event.event_type] += 1
        if len(self.kept) < self.keep:
            self.kept.append(event.to_dict())

    async def settle(self, captures: int, timeout: float = 30.0) -> None:
        """Wait until the bridge read `captures` valid lines and the pipeline drained."""
        async with asyncio.timeout(timeout):
            while (
                self.counters.get("bridge.captures") < captures or not self.pipeline.queue.empty()
            ):
                await asyncio.sleep(0.01)


async def start_sensor(path: Path, *, queue_size: int = 50_000, **bridge_kw: Any) -> Sensor:
    counters = Counters()
    pipeline = build_pipeline(Config(), counters=counters, hasher=HASHER)
    if queue_size != pipeline.queue.maxsize:
        pipeline.queue = asyncio.Queue(queue_size)
    bridge = Bridge(
        path, pipeline.submit, counters, has_room=lambda: not pipeline.queue.full(), **bridge_kw
    )
    sensor = Sensor(pipeline, bridge, counters)
    pipeline.add_listener(sensor.on_event)
    await pipeline.start()
    await bridge.start()
    return sensor


@pytest.fixture
async def sensor(sock_path: Path) -> AsyncIterator[Sensor]:
    s = await start_sensor(sock_path)
    yield s
    await s.bridge.close()
    await s.pipeline.stop()


async def stop(sensor: Sensor) -> None:
    await sensor.bridge.close()
    await sensor.pipeline.stop()


def chat_exchange(n: int) -> tuple[bytes, bytes]:
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {n}"}]},
    )
    response = http_response(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answer {n}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    )
    return request, response


def exchange_lines(pid: int, fd: int, count: int, *, splits: list[int] | None = None) -> bytes:
    raws = captures([chat_exchange(n) for n in range(count)], pid=pid, fd=fd, splits=splits)
    return b"".join(r.to_json_line() for r in raws)


async def send(path: Path, data: bytes, *, chunk: int = 0) -> None:
    reader, writer = await asyncio.open_unix_connection(str(path))
    if chunk:
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
            await writer.drain()
    else:
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def good_line(kind: str = "SslWrite", data: bytes = b"x") -> bytes:
    return RawCapture(
        kind=CaptureKind(kind), timestamp_ns=T0, data=data, pid=1, metadata={"fd": 3}
    ).to_json_line()


# --- the socket file -----------------------------------------------------------------------


async def test_socket_is_a_0600_socket_removed_on_close(sensor: Sensor, sock_path: Path) -> None:
    st_mode = os.stat(sock_path).st_mode
    assert st_mode & 0o777 == 0o600
    assert sorted(p.name for p in sock_path.parent.iterdir()) == ["oisp.sock"]  # no staging left
    await sensor.bridge.close()
    assert not sock_path.exists()


async def test_stale_socket_is_replaced(sock_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nobody listens: what a crashed sensor leaves behind
    sensor = await start_sensor(sock_path)
    try:
        await send(sock_path, exchange_lines(10, 3, 1))
        await sensor.settle(3)
    finally:
        await stop(sensor)
    assert sensor.types["ai.response"] == 1


async def test_a_live_socket_is_not_stolen(sensor: Sensor, sock_path: Path) -> None:
    second = Bridge(sock_path, lambda raw: True, Counters())
    with pytest.raises(CaptureError, match="already listening"):
        await second.start()
    # The first sensor still works.
    await send(sock_path, exchange_lines(10, 3, 1))
    await sensor.settle(3)


@pytest.mark.parametrize("what", ["file", "symlink", "directory"])
async def test_anything_but_a_socket_is_left_alone(sock_path: Path, what: str) -> None:
    if what == "file":
        sock_path.write_text("precious")
    elif what == "symlink":
        sock_path.symlink_to("/etc/hostname")
    else:
        sock_path.mkdir()
    with pytest.raises(CaptureError, match="not a socket"):
        await Bridge(sock_path, lambda raw: True, Counters()).start()
    assert sock_path.is_symlink() or sock_path.exists()
    if what == "file":
        assert sock_path.read_text() == "precious"


async def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot listen|No such file"):
        await Bridge(Path("/nonexistent-dir/oisp.sock"), lambda raw: True, Counters()).start()


# --- bad input ---------------------------------------------------------------------------------


BAD_LINES = [
    b"this is not json",
    b'{"kind": "SslWrite", "timestamp_ns": 1, "data": "!!not base64!!"}',
    b'{"kind": "SslRewrite", "timestamp_ns": 1, "data": ""}',
    b'{"kind": "SslWrite", "timestamp_ns": 1, "data": "eA==", "note": "sk-secret-in-bad-line"',
    b'{"kind": "SslWrite", "data": "eA=="}',
    b'{"kind": "SslWrite", "timestamp_ns": "soon", "data": "eA=="}',
    b'{"kind": "SslWrite", "timestamp_ns": 1, "pid": "12", "data": "eA=="}',
    b'{"kind": "SslWrite", "timestamp_ns": 1, "metadata": [1], "data": "eA=="}',
    b"[1, 2, 3]",
    b'"just a string"',
    b"\xff\xfe garbage bytes \x00",
]


async def test_every_kind_of_bad_line_is_counted_and_skipped(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = await start_sensor(sock_path, max_line_bytes=4096)
    good = exchange_lines(77, 5, 2).splitlines(keepends=True)
    oversized = b'{"kind": "SslWrite", "data": "' + b"A" * 10_000 + b'"}\n'
    # Bad lines interleaved with a real exchange, all on one connection.
    stream = (
        b"".join(line + b"\n" for line in BAD_LINES[:5])
        + good[0]
        + b"\n   \n"  # blank lines are not errors
        + oversized
        + b"".join(good[1:4])
        + b"".join(line + b"\n" for line in BAD_LINES[5:])
        + b"".join(good[4:])
    )
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.bridge"):
        await send(sock_path, stream)
        await sensor.settle(len(good))
    await stop(sensor)

    assert sensor.counters.get("bridge.bad_lines") == len(BAD_LINES)
    assert sensor.counters.get("bridge.oversized_lines") == 1
    assert sensor.counters.get("bridge.connections") == 1
    # The connection survived every bad line: both exchanges were decoded.
    assert sensor.types["ai.request"] == 2 and sensor.types["ai.response"] == 2
    assert_valid_events(sensor.kept)
    warnings = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("emitter 1 (pid ") and ", line 1: skipped: not JSON" in m for m in warnings
    )
    assert any(", line 3: skipped: unknown kind 'SslRewrite'" in m for m in warnings)
    assert any(", line 9: skipped: line longer than 4096 bytes" in m for m in warnings)
    assert "sk-secret-in-bad-line" not in caplog.text  # content is never logged


async def test_bad_line_logging_is_rate_limited(
    sensor: Sensor, sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.bridge"):
        await send(sock_path, b"nope\n" * 500 + exchange_lines(1, 1, 1))
        await sensor.settle(3)
        async with asyncio.timeout(5):
            while "500 bad lines in total" not in caplog.text:
                await asyncio.sleep(0.01)
    assert sensor.counters.get("bridge.bad_lines") == 500
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 10


async def test_line_over_16_mib_is_skipped_by_default(sensor: Sensor, sock_path: Path) -> None:
    huge = b'{"kind": "SslWrite", "timestamp_ns": 1, "data": "' + b"QUFB" * (4 * 1024 * 1024 + 1)
    await send(sock_path, huge + b'"}\n' + exchange_lines(3, 3, 1))
    await sensor.settle(3)
    assert sensor.counters.get("bridge.oversized_lines") == 1
    assert sensor.counters.get("bridge.bad_lines") == 0


async def test_a_long_line_under_the_limit_is_accepted(sock_path: Path) -> None:
    """Lines longer than the reader's buffer are assembled, not mistaken for oversized."""
    sensor = await start_sensor(sock_path, read_limit=1024)
    body = "x" * 200_000
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": body}]},
    )
    raws = captures([(request, chat_exchange(0)[1])], pid=9, fd=9)
    await send(sock_path, b"".join(r.to_json_line() for r in raws), chunk=7000)
    await sensor.settle(len(raws))
    await stop(sensor)
    assert sensor.counters.get("bridge.oversized_lines") == 0
    assert sensor.types["ai.request"] == 1
    assert_valid_events(sensor.kept)


async def test_last_line_without_newline_is_used(sensor: Sensor, sock_path: Path) -> None:
    lines = exchange_lines(5, 5, 1)
    await send(sock_path, lines.rstrip(b"\n"))
    await sensor.settle(3)  # the last line is the ConnClose that completes the exchange
    await stop(sensor)
    assert sensor.counters.get("bridge.bad_lines") == 0
    assert sensor.types["ai.response"] == 1


# --- framing, under any chunking (no sockets: a StreamReader fed directly) --------------------

LINE = st.one_of(
    st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.integers(min_value=0, max_value=300).map(lambda n: b"y" * n),
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(LINE, min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    read_limit=st.integers(min_value=2, max_value=64),
    trailing_newline=st.booleans(),
)
def test_framing_is_independent_of_chunking(
    lines: list[bytes], cuts: list[int], read_limit: int, trailing_newline: bool
) -> None:
    max_line = 100
    stream = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    expected = [(line, len(line) > max_line) for line in lines]
    if not trailing_newline and lines[-1] == b"":
        expected.pop()  # no bytes after the last newline: no last line

    async def run() -> list[tuple[bytes, bool]]:
        bridge = Bridge("/unused", lambda raw: True, Counters(), max_line_bytes=max_line)
        reader = asyncio.StreamReader(limit=read_limit)
        points = sorted({c for c in cuts if 0 < c < len(stream)})
        for a, b in zip([0, *points], [*points, len(stream)], strict=True):
            reader.feed_data(stream[a:b])
        reader.feed_eof()
        out = []
        while (item := await bridge._next_line(reader)) is not None:
            out.append(item)
        return out

    got = asyncio.run(run())
    assert [(line.rstrip(b"\n"), big) for line, big in got] == [
        (b"" if big else line, big) for line, big in expected
    ]


# --- many emitters, backpressure ------------------------------------------------------------


async def test_twenty_concurrent_emitters_lose_nothing(sensor: Sensor, sock_path: Path) -> None:
    emitters, exchanges = 20, 15
    streams = [exchange_lines(1000 + i, 3, exchanges, splits=[5, 40, 41]) for i in range(emitters)]
    lines = sum(s.count(b"\n") for s in streams)
    await asyncio.gather(*(send(sock_path, s, chunk=997) for s in streams))
    await sensor.settle(lines)
    await stop(sensor)
    assert sensor.counters.get("bridge.connections") == emitters
    assert sensor.types["ai.request"] == emitters * exchanges
    assert sensor.types["ai.response"] == emitters * exchanges
    assert sensor.counters.get("capture.dropped") == 0
    assert sensor.counters.get("bridge.bad_lines") == 0
    assert_valid_events(sensor.kept)
    pids = {e["process"]["pid"] for e in sensor.kept if e["event_type"] == "ai.request"}
    assert len(pids) > 1


FLOOD_EMITTER = Path(__file__).with_name("flood_emitter.py")


async def test_a_flood_is_bounded_by_backpressure_not_memory(sock_path: Path) -> None:
    """~40 MB through a pipeline queue of 2: the sensor holds a few MB, loses nothing."""
    sensor = await start_sensor(sock_path, queue_size=2, read_limit=64 * 1024)
    sensor.keep = 4
    count, pad = 600, 48_000
    tracemalloc.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FLOOD_EMITTER), str(sock_path), str(count), str(pad)
        )
        await sensor.settle(2 * count, timeout=90)
        assert await proc.wait() == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await stop(sensor)
    sent = count * pad * 4 // 3
    assert sent > 35_000_000
    assert peak < 12_000_000, f"peak {peak / 1e6:.1f} MB for {sent / 1e6:.0f} MB sent"
    assert sensor.counters.get("bridge.backpressure_waits") > 0  # the queue really was full
    assert sensor.counters.get("capture.dropped") == 0
    assert sensor.types["ai.request"] == count and sensor.types["ai.response"] == count
    assert_valid_events(sensor.kept)


async def test_refused_submits_are_retried_not_dropped(sock_path: Path) -> None:
    """Without `has_room`, a False from submit pauses the emitter and retries."""
    accepted: list[RawCapture] = []
    refusals = iter([False] * 5 + [True, False, False, True] + [True] * 100)

    def submit(raw: RawCapture) -> bool:
        ok = next(refusals)
        if ok:
            accepted.append(raw)
        return ok

    counters = Counters()
    bridge = Bridge(sock_path, submit, counters)
    await bridge.start()
    try:
        lines = [good_line(data=bytes([65 + i])) for i in range(6)]
        await send(sock_path, b"".join(lines))
        async with asyncio.timeout(10):
            while len(accepted) < 6:
                await asyncio.sleep(0.01)
    finally:
        await bridge.close()
    assert [r.data for r in accepted] == [b"A", b"B", b"C", b"D", b"E", b"F"]  # in order
    assert counters.get("bridge.backpressure_waits") == 2


# --- shutdown ---------------------------------------------------------------------------------


async def test_close_reads_what_was_already_sent(sock_path: Path) -> None:
    sensor = await start_sensor(sock_path)
    reader, writer = await asyncio.open_unix_connection(str(sock_path))
    writer.write(exchange_lines(8, 8, 3))
    await writer.drain()
    await stop(sensor)  # the emitter is still connected
    assert sensor.types["ai.response"] == 3
    assert await reader.read() == b""  # and was disconnected
    writer.close()


async def test_close_with_an_idle_emitter_is_prompt(sock_path: Path) -> None:
    sensor = await start_sensor(sock_path)
    _, writer = await asyncio.open_unix_connection(str(sock_path))
    async with asyncio.timeout(2):
        await stop(sensor)
    writer.close()


# --- the example emitter ------------------------------------------------------------------------


async def test_example_emitter_against_the_bridge(sensor: Sensor, sock_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--socket",
        str(sock_path),
        "--count",
        "3",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    await sensor.settle(15)
    await stop(sensor)
    assert sensor.counters.get("bridge.bad_lines") == 0
    assert sensor.types["ai.request"] == 3 and sensor.types["ai.response"] == 3
    assert_valid_events(sensor.kept)
    responses = [e for e in sensor.kept if e["event_type"] == "ai.response"]
    assert all("Hello from the bridge!" in json.dumps(e["data"]) for e in responses)
    requests = [e for e in sensor.kept if e["event_type"] == "ai.request"]
    # The example's fake key was reduced like any other: never stored as is.
    assert all("sk-example-not-a-real-key" not in json.dumps(e) for e in sensor.kept)
    assert {e["data"]["model"]["id"] for e in requests} == {"gpt-4o-mini"}


def test_example_emitter_refuses_a_foreign_socket(tmp_path: Path) -> None:
    """Plaintext must not go to a socket someone else planted in /tmp."""
    fake = tmp_path / "not-a-socket"
    fake.write_text("")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--socket", str(fake)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "not a socket owned by" in result.stderr


def test_example_emitter_without_a_sensor(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--socket", str(tmp_path / "absent.sock")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "is `oisp-sensor record` running?" in result.stderr


def test_example_lines_parse_as_raw_captures() -> None:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import emit_raw
    finally:
        sys.path.pop(0)
    request, response = emit_raw.openai_chat_exchange()
    lines = list(emit_raw.exchange_lines(1, 2, request, response))
    raws = [RawCapture.from_json_line(line) for line in lines]
    assert [r.kind for r in raws] == ["ConnOpen", "SslWrite", "SslWrite", "SslRead", "ConnClose"]
    assert b"".join(r.data for r in raws if r.kind == "SslWrite") == request
    assert base64.b64decode(json.loads(lines[3])["data"]) == response


async def test_a_failing_submit_cuts_off_only_that_emitter(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    accepted: list[bytes] = []

    def submit(raw: RawCapture) -> bool:
        if raw.data == b"boom":
            raise RuntimeError("a bug downstream")
        accepted.append(raw.data)
        return True

    counters = Counters()
    bridge = Bridge(sock_path, submit, counters)
    await bridge.start()
    try:
        await send(sock_path, good_line(data=b"boom") + good_line(data=b"lost"))
        await send(sock_path, good_line(data=b"fine"))
        async with asyncio.timeout(5):
            while counters.get("bridge.internal_errors") < 1 or b"fine" not in accepted:
                await asyncio.sleep(0.01)
    finally:
        await bridge.close()
    assert accepted == [b"fine"]
    assert "internal error at line 1" in caplog.text
