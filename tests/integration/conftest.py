"""Real clients -> the real relay -> a local TLS fake of the providers.

`live_sensor` runs a Sensor and the FakeProvider on their own event loop in a
thread, so a test can drive them with ordinary blocking clients (the SDKs'
sync APIs, requests, subprocesses such as curl and node) exactly as a user's
program would. Real hosts are routed to the fake with --connect-to semantics and
the fake's trustme CA is trusted with --upstream-ca; clients trust the sensor's
local CA through the same environment `oisp-sensor run` gives them.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from oisp_sensor.config import Config
from oisp_sensor.demo import FakeProvider
from oisp_sensor.sensor import Sensor
from tests.conformance import assert_valid_file

T = TypeVar("T")

AI_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")
OTHER_HOST = "files.example.test"  # not an AI host: tunnelled, never decrypted


@dataclass(frozen=True)
class UpstreamCerts:
    ca: trustme.CA
    ca_path: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="session")
def upstream_certs(tmp_path_factory: pytest.TempPathFactory) -> UpstreamCerts:
    ca = trustme.CA()
    cert = ca.issue_cert(*AI_HOSTS, OTHER_HOST, "localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    path = tmp_path_factory.mktemp("upstream-ca") / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return UpstreamCerts(ca, path, context)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()


class BackgroundLoop:
    """An event loop in a thread, so blocking clients can run in the test's own thread."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bg-loop", daemon=True)
        self.thread.start()

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(factory), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def connect_to_fake(port: int) -> tuple[str, ...]:
    """--connect-to routes sending every test host to the fake on 127.0.0.1:port."""
    return tuple(f"{h}:443=127.0.0.1:{port}" for h in (*AI_HOSTS, OTHER_HOST))


class LiveSensor:
    """A started Sensor + FakeProvider pair on a background event loop."""

    def __init__(self, tmp: Path, certs: UpstreamCerts, **capture: Any) -> None:
        self.tmp = tmp
        self.certs = certs
        self.jsonl = tmp / "events.jsonl"
        self.capture = capture
        self.bg = BackgroundLoop()
        self.fake: FakeProvider
        self.sensor: Sensor
        self.env: dict[str, str] = {}
        self._stopped = False

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        return self.bg.call(factory, timeout)

    def start(self, config: Config | None = None) -> LiveSensor:
        self.fake = self.call(lambda: FakeProvider(ssl_context=self.certs.server_context).start())
        routes = connect_to_fake(self.fake.port)
        config = config or Config()
        capture: dict[str, Any] = {
            "proxy_port": 0,
            "socket": "",
            "upstream_ca": (str(self.certs.ca_path),),
            "connect_to": routes,
        }
        capture.update(self.capture)
        config = config.replace("capture", **capture)
        config = config.replace("sinks", no_db=True)
        config = config.replace("web", enabled=False)
        self.sensor = Sensor(config, command="test", jsonl=self.jsonl)
        self.call(self.sensor.start)
        self.env = self.sensor.client_environment({})
        return self

    def apply_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process's HTTP clients at the sensor, as `oisp-sensor run` does."""
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("NODE_OPTIONS", raising=False)

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        return env

    def stop(self) -> list[dict[str, Any]]:
        """Stop cleanly (flushes every event) and return the events, schema-validated."""
        if not self._stopped:
            self._stopped = True
            try:
                # Clients in tests are done when they stop us: no need for a long grace.
                self.call(lambda: self.sensor.stop(grace_s=0.2))
                self.call(self.fake.close)
            finally:
                self.bg.close()
        if not self.jsonl.exists() or not self.jsonl.read_text().strip():
            return []
        return assert_valid_file(self.jsonl)

    @property
    def counters(self) -> dict[str, int]:
        return self.sensor.counters.snapshot()


async def _wrap(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


@pytest.fixture
def live_sensor(tmp_path: Path, upstream_certs: UpstreamCerts) -> Iterator[LiveSensor]:
    live = LiveSensor(tmp_path, upstream_certs).start()
    try:
        yield live
    finally:
        if not live._stopped:
            live.stop()


@pytest.fixture
def fake_upstream(upstream_certs: UpstreamCerts) -> Iterator[FakeProvider]:
    """The fake provider alone (TLS, trustme cert), for tests that start the sensor as a program."""
    bg = BackgroundLoop()
    fake = bg.call(lambda: FakeProvider(ssl_context=upstream_certs.server_context).start())
    try:
        yield fake
    finally:
        bg.call(fake.close)
        bg.close()


@pytest.fixture
def live_env(live_sensor: LiveSensor, monkeypatch: pytest.MonkeyPatch) -> LiveSensor:
    """live_sensor with this process's environment pointing at it."""
    live_sensor.apply_env(monkeypatch)
    return live_sensor


def by_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]
