"""The dashboard inside a running sensor: started with it, in its state file, its
controls reaching the real pipeline, a taken port not stopping capture."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from oisp_sensor import runtime
from oisp_sensor.cli.main import cli
from oisp_sensor.cli.record import _banner
from oisp_sensor.config import Config
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.sensor import Sensor
from tests.conftest import TEST_KEY
from tests.unit.web.test_security import HOST_IP, needs_interface


def sensor_config(tmp_path: Path, **web: Any) -> Config:
    return (
        Config(source=str(tmp_path / "config.toml"))
        .replace("capture", proxy_port=0, socket="")
        .replace("sinks", db=str(tmp_path / "events.db"))
        .replace("web", **{"port": 0, **web})
    )


@pytest.fixture
async def sensor(tmp_path: Path) -> AsyncIterator[Sensor]:
    s = Sensor(sensor_config(tmp_path), hasher=KeyedHasher(TEST_KEY))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def call(sensor: Sensor, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    origin = sensor.web_url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, origin + path, headers={"Origin": origin}, **kwargs
        ) as response:
            return response.status, await response.json()


async def test_the_sensor_serves_its_dashboard(sensor: Sensor) -> None:
    assert sensor.dashboard is not None
    assert sensor.web_url.startswith("http://127.0.0.1:")
    status, health = await call(sensor, "GET", "/api/health")
    assert status == 200
    assert health["capturing"] is True and health["command"] == "record"
    assert health["proxy"] == sensor.state().proxy
    assert sensor.state().web_url == sensor.web_url
    banner = _banner(sensor)
    assert f"web     {sensor.web_url}" in banner and "token" not in banner


async def test_pause_shows_in_the_state_file_at_once(sensor: Sensor) -> None:
    status, body = await call(sensor, "POST", "/api/capture", json={"paused": True})
    assert status == 200 and body["paused"] is True
    assert sensor.pipeline is not None and sensor.pipeline.paused
    state = runtime.read()
    assert state is not None and state.paused and state.web_url == sensor.web_url
    result = CliRunner().invoke(cli, ["status"])
    assert "PAUSED" in result.output
    await call(sensor, "POST", "/api/capture", json={"paused": False})
    state = runtime.read()
    assert state is not None and not state.paused


async def test_settings_reach_the_running_pipeline(sensor: Sensor, tmp_path: Path) -> None:
    assert sensor.pipeline is not None
    status, body = await call(
        sensor, "PUT", "/api/settings", json={"redaction_mode": "minimal", "retention_days": 2}
    )
    assert status == 200, body
    assert getattr(sensor.pipeline.redactor, "mode", None) == "minimal"
    assert sensor._store_sink is not None and sensor._store_sink.retention.days == 2
    assert (tmp_path / "config.toml").read_text().count("minimal") == 1


async def test_ca_status_never_includes_the_key(sensor: Sensor) -> None:
    status, body = await call(sensor, "GET", "/api/ca")
    assert status == 200
    assert body["present"] is True
    assert sensor.ca is not None and body["fingerprint_sha256"] == sensor.ca.fingerprint_sha256
    assert body["reissue_pending"] is False
    commands = [c["command"] for c in body["commands"]]
    assert 'eval "$(oisp-sensor ca env)"' in commands
    if not body["trusted"]:
        assert "sudo oisp-sensor ca install" in commands
    assert "PRIVATE KEY" not in str(body)


async def test_a_taken_port_disables_the_dashboard_not_capture(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = Sensor(sensor_config(tmp_path, port=port), hasher=KeyedHasher(TEST_KEY))
        await s.start()
        try:
            assert s.dashboard is None
            assert f"127.0.0.1:{port}" in s.web_error
            assert s.relay is not None and s.proxy_url
            assert s.state().web_url == ""
            assert "web     disabled" in _banner(s)
        finally:
            await s.stop()


async def test_no_web_means_no_dashboard(tmp_path: Path) -> None:
    s = Sensor(sensor_config(tmp_path, enabled=False), hasher=KeyedHasher(TEST_KEY))
    await s.start()
    try:
        assert s.dashboard is None and s.web_url == "" and not s.web_error
        assert s.pipeline is not None
        assert all(r.sink.name != "live" for r in s.pipeline.runners)
    finally:
        await s.stop()


@needs_interface
async def test_a_generated_token_is_printed_not_published(tmp_path: Path) -> None:
    assert HOST_IP is not None
    s = Sensor(sensor_config(tmp_path, bind=HOST_IP), hasher=KeyedHasher(TEST_KEY))
    await s.start()
    try:
        assert s.dashboard is not None and s.dashboard.token_generated
        token = s.dashboard.token
        banner = _banner(s)
        assert f"?token={token}" in banner and "generated" in banner
        assert token not in s.web_url
        assert s.state().web_url == s.web_url
        assert token.encode() not in s.state().to_json()
        async with aiohttp.ClientSession() as session:
            async with session.get(s.web_url + "api/health") as response:
                assert response.status == 401
            async with session.get(
                s.web_url + "api/health", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                assert response.status == 200
    finally:
        await s.stop()


def test_record_flags_reach_the_web_config() -> None:
    from oisp_sensor.cli.record import SensorFlags, apply_flags

    flags = SensorFlags(web=False, port=8123, web_bind="0.0.0.0", web_token="tok-0123456789")
    web = apply_flags(Config(), flags).web
    assert (web.enabled, web.port, web.bind, web.token) == (
        False,
        8123,
        "0.0.0.0",
        "tok-0123456789",
    )
