"""Settings from the dashboard: saved to the config file, validated like a start would,
applied live where possible, and errors that name the setting at fault."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from oisp_sensor import config as config_mod
from oisp_sensor.config import Config
from oisp_sensor.web.settings import Settings
from tests.unit.web.conftest import Served

EXISTING = """\
# my sensor
[capture]
proxy_port = 9999

[retention]
days = 3.0
prune_every_min = 30.0
"""


@pytest.fixture
def config_file(api: Served) -> Path:
    assert api.ctx.settings is not None
    path = api.ctx.settings.path
    path.write_text(EXISTING)
    os.chmod(path, 0o640)
    api.ctx.settings.config = config_mod.load(path, environ={})
    return path


async def put(api: Served, body: Any) -> tuple[int, dict[str, Any]]:
    response = await api.client.put("/api/settings", json=body, headers={"Origin": api.origin})
    return response.status, await response.json()


async def test_get_settings(api: Served, config_file: Path) -> None:
    body = await api.get_json("/api/settings")
    assert body["config_path"] == str(config_file)
    assert body["redaction_mode"] == "safe"
    assert body["redaction_modes"] == ["safe", "full", "minimal"]
    assert body["retention_days"] == 3.0
    assert body["custom_endpoints"] == []
    assert "openai" in body["apis"]


async def test_saving_changes_the_file_and_keeps_the_rest(api: Served, config_file: Path) -> None:
    status, body = await put(
        api,
        {
            "redaction_mode": "minimal",
            "retention_days": 14,
            "custom_endpoints": [
                {"host": "LLM.corp.example", "provider": "corp-gateway", "api": "openai"},
                {"host": "127.0.0.1", "port": 11434, "api": "ollama", "scheme": "http"},
            ],
        },
    )
    assert status == 200, body
    on_disk = tomllib.loads(config_file.read_text())
    assert on_disk["redaction"]["mode"] == "minimal"
    assert on_disk["retention"] == {"days": 14, "prune_every_min": 30.0}
    assert on_disk["capture"] == {"proxy_port": 9999}  # untouched
    assert on_disk["providers"] == [
        {"host": "llm.corp.example", "provider": "corp-gateway", "api": "openai"},
        {"host": "127.0.0.1", "port": 11434, "api": "ollama", "scheme": "http"},
    ]
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640  # its mode is kept
    # What was saved is what the sensor loads at its next start.
    loaded = config_mod.load(config_file, environ={})
    assert loaded.redaction.mode == "minimal" and loaded.retention.days == 14
    assert [p.host for p in loaded.providers] == ["llm.corp.example", "127.0.0.1"]
    assert body["redaction_mode"] == "minimal"
    assert body["restart_required"] == ["custom_endpoints"]
    assert (await api.get_json("/api/settings"))["retention_days"] == 14


async def test_removing_every_endpoint_removes_the_table(api: Served, config_file: Path) -> None:
    await put(api, {"custom_endpoints": [{"host": "llm.corp.example"}]})
    status, _ = await put(api, {"custom_endpoints": []})
    assert status == 200
    assert "providers" not in tomllib.loads(config_file.read_text())


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"redaction_mode": "paranoid"}, "redaction_mode"),
        ({"redaction_mode": 3}, "redaction_mode"),
        ({"retention_days": -1}, "retention_days"),
        ({"retention_days": "a week"}, "retention_days"),
        ({"retention_days": None}, "retention_days"),
        ({"custom_endpoints": "llm.corp.example"}, "custom_endpoints"),
        ({"custom_endpoints": ["llm.corp.example"]}, "custom_endpoints[0]"),
        (
            {"custom_endpoints": [{"host": "https://llm.corp.example/v1"}]},
            "custom_endpoints[0].host",
        ),
        ({"custom_endpoints": [{"host": ""}]}, "custom_endpoints[0].host"),
        ({"custom_endpoints": [{"host": "a.example", "api": "soap"}]}, "custom_endpoints[0].api"),
        ({"custom_endpoints": [{"host": "a.example", "port": 70000}]}, "custom_endpoints[0].port"),
        (
            {"custom_endpoints": [{"host": "a.example", "scheme": "ftp"}]},
            "custom_endpoints[0].scheme",
        ),
        (
            {"custom_endpoints": [{"host": "a.example", "colour": "red"}]},
            "custom_endpoints[0].colour",
        ),
        ({"proxy_port": 1}, "proxy_port"),
    ],
)
async def test_invalid_values_are_400_naming_the_key(
    api: Served, config_file: Path, body: dict[str, Any], key: str
) -> None:
    status, answer = await put(api, body)
    assert status == 400
    assert answer["key"] == key
    assert answer["error"].startswith(key)
    assert config_file.read_text() == EXISTING  # nothing written


async def test_not_an_object_is_400(api: Served, config_file: Path) -> None:
    status, answer = await put(api, ["redaction_mode", "full"])
    assert status == 400 and "object" in answer["error"]
    response = await api.client.put(
        "/api/settings", data=b"mode=full", headers={"Origin": api.origin}
    )
    assert response.status == 400


def test_changes_are_applied_live(tmp_path: Path) -> None:
    applied: list[Any] = []
    settings = Settings(
        Config(),
        tmp_path / "config.toml",
        on_redaction=lambda mode: applied.append(("redaction", mode)),
        on_retention=lambda days: applied.append(("retention", days)),
    )
    settings.update({"redaction_mode": "full"})
    settings.update({"redaction_mode": "full", "retention_days": 1.5})
    assert applied == [("redaction", "full"), ("retention", 1.5)]
    assert not settings.restart_required


def test_a_new_default_config_file_is_private(tmp_path: Path) -> None:
    from oisp_sensor.paths import config_dir

    path = config_dir() / "config.toml"
    Settings(Config(), path).update({"retention_days": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_environment_overrides_are_reported(tmp_path: Path) -> None:
    settings = Settings(Config(), tmp_path / "c.toml", environ={"OISP_REDACTION_MODE": "full"})
    assert settings.current()["overridden_by_environment"] == {
        "redaction_mode": "OISP_REDACTION_MODE"
    }
