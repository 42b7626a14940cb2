"""`oisp-sensor record` with exporters configured really exports.

The real command runs as a subprocess with a config file naming an OTLP receiver,
a webhook and a Kafka broker (Tansu); captures arrive through the real unix-socket
bridge; Ctrl-C (SIGINT) stops it, and every exporter must have received the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from oisp_sensor.sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from tests.conformance import assert_valid_events
from tests.unit.sinks.receivers import exported, http_receiver, tansu
from tests.unit.sinks.test_kafka import consume
from tests.unit.store.traffic import sample_captures

EVENTS, CALLS = 12, 5
SECRET = "whsec-integration-7f2a"


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = tempfile.mkdtemp(prefix="oisp-x-", dir="/tmp")  # unix socket paths are short
    yield Path(directory) / "oisp.sock"
    shutil.rmtree(directory, ignore_errors=True)


async def connect_when_listening(
    proc: asyncio.subprocess.Process, path: Path
) -> asyncio.StreamWriter:
    """The bridge binds (the file appears) a moment before it listens: retry until it does."""
    async with asyncio.timeout(60):
        while True:
            assert proc.returncode is None, await proc.stderr.read()  # type: ignore[union-attr]
            try:
                _, writer = await asyncio.open_unix_connection(str(path))
                return writer
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(0.05)


async def test_record_exports_to_otlp_webhook_and_kafka(tmp_path: Path, sock_path: Path) -> None:
    async with http_receiver() as collector, http_receiver() as hook:
        with tansu(tmp_path) as broker:
            config = tmp_path / "config.toml"
            config.write_text(
                f"""
[capture]
proxy_port = 0
socket = "{sock_path}"

[web]
enabled = false

[sinks]
no_db = true
otlp = true
otlp_endpoint = "{collector.url}"
otlp_headers = ["authorization=Bearer fleet-token-123456"]
otlp_resource_attributes = ["deployment.environment=ci"]
webhook_url = "{hook.url}/oisp"
webhook_secret = "{SECRET}"
webhook_types = ["ai.response"]
kafka_brokers = ["{broker}"]
kafka_topic = "fleet-events"
"""
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "oisp_sensor",
                "record",
                "--config",
                str(config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                writer = await connect_when_listening(proc, sock_path)
                writer.write(b"".join(raw.to_json_line() for raw in sample_captures()))
                await writer.drain()
                writer.close()
                await writer.wait_closed()
                # The webhook sends within a second; then stop the sensor as a user would.
                await hook.wait(lambda r: len(r) >= 1, timeout=30)
                proc.send_signal(signal.SIGINT)
                async with asyncio.timeout(30):
                    out, err = await proc.communicate()
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            assert proc.returncode == 0, err.decode()
            assert b"stopped" in out

            spans_logs = exported(collector)
            assert len(spans_logs.spans) == CALLS and len(spans_logs.logs) == EVENTS
            assert all(
                r.headers["authorization"] == "Bearer fleet-token-123456"
                for r in collector.requests
            )
            assert {r["deployment.environment"] for r, _ in spans_logs.spans} == {"ci"}
            assert_valid_events([orjson.loads(g.body.string_value) for _, g in spans_logs.logs])

            posted = [e for r in hook.requests for e in orjson.loads(r.body)]
            assert [e["event_type"] for e in posted] == ["ai.response"] * CALLS
            assert_valid_events(posted)
            for r in hook.requests:
                assert verify_signature(
                    SECRET, r.body, r.headers[SIGNATURE_HEADER], r.headers[TIMESTAMP_HEADER]
                )

            messages = await consume(broker, "fleet-events", EVENTS)
            assert len(messages) == EVENTS
            assert_valid_events([orjson.loads(m.value) for m in messages])
    assert "fleet-token-123456" not in err.decode() + out.decode()
    assert os.environ.get("OISP_DATA_DIR")  # the subprocess used the test's isolated dirs
