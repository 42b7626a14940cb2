"""A real sensor (relay, pipeline, store, dashboard) in front of the fake AI provider.

Clients reach `api.openai.com` & co through the sensor's proxy; `--connect-to` sends
the relay's upstream connections to the local TLS fake, whose certificate comes from
a `trustme` CA handed to the relay as `--upstream-ca`. Nothing touches the internet.
Used by the browser tests and by `python -m tests.browser.screenshots`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

from oisp_sensor.config import Config
from oisp_sensor.demo.provider import FakeProvider, Script
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.sensor import Sensor

REPO = Path(__file__).resolve().parents[2]
AI_HOSTS = ("api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com")
TEST_KEY = b"oisp-sensor-test-hash-key-32byte"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Rig:
    sensor: Sensor
    fake: FakeProvider
    db_path: Path
    config_path: Path
    client_ctx: ssl.SSLContext

    @property
    def web_url(self) -> str:
        return self.sensor.web_url

    def http(self) -> httpx.AsyncClient:
        """An HTTP client configured like an app told to use the proxy and trust the CA."""
        return httpx.AsyncClient(proxy=self.sensor.proxy_url, verify=self.client_ctx, timeout=10)

    def openai(self) -> Any:
        import openai

        return openai.AsyncOpenAI(api_key="sk-test-browser-0123456789", http_client=self.http())

    def anthropic(self) -> Any:
        import anthropic
        import httpx2  # this anthropic SDK is built on httpx2, with the same client options

        http = httpx2.AsyncClient(proxy=self.sensor.proxy_url, verify=self.client_ctx, timeout=10)
        return anthropic.AsyncAnthropic(
            api_key="sk-ant-api03-browser-test-0123456789", http_client=http
        )

    def queue(self, *scripts: Script) -> None:
        self.fake.queue(*scripts)

    def client_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.sensor.client_environment(env))
        env["PYTHONPATH"] = str(REPO)
        return env

    async def run_program(self, *argv: str, cwd: Path = REPO) -> tuple[int, str]:
        """Run a program with the environment `oisp-sensor run` gives it: (pid, stdout)."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=self.client_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise AssertionError(f"{argv[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
        return proc.pid, out.decode()

    async def call(self, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One AI program run (tests/browser/client.py): (its pid, what its SDK returned)."""
        pid, out = await self.run_program(
            sys.executable, "-m", "tests.browser.client", json.dumps(spec)
        )
        result: dict[str, Any] = json.loads(out)
        return pid, result


@contextlib.asynccontextmanager
async def running_sensor(tmp: Path, **web: Any) -> AsyncIterator[Rig]:
    """Fake provider + sensor (dashboard on a free port), both stopped on exit."""
    upstream = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream.issue_cert(*AI_HOSTS).configure_cert(server_ctx)
    ca_pem = tmp / "upstream-ca.pem"
    upstream.cert_pem.write_to_path(str(ca_pem))
    config_path = tmp / "config.toml"
    async with FakeProvider(ssl_context=server_ctx) as fake:
        config = (
            Config(source=str(config_path))
            .replace(
                "capture",
                proxy_port=0,
                socket="",
                upstream_ca=(str(ca_pem),),
                connect_to=tuple(f"{h}:443=127.0.0.1:{fake.port}" for h in AI_HOSTS),
            )
            .replace("sinks", db=str(tmp / "events.db"))
            .replace("web", port=0, **web)
        )
        sensor = Sensor(config, command="record", hasher=KeyedHasher(TEST_KEY))
        await sensor.start()
        try:
            assert sensor.ca is not None
            client_ctx = ssl.create_default_context(cafile=str(sensor.ca.cert_path))
            yield Rig(sensor, fake, tmp / "events.db", config_path, client_ctx)
        finally:
            await sensor.stop()
