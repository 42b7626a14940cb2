"""Config: file → OISP_* environment → flags; clear errors (exit 2); `config show` masks secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from oisp_sensor import config as config_mod
from oisp_sensor.cli.config_cmd import MASK, mask_value
from oisp_sensor.errors import ConfigError
from tests.unit.cli.conftest import Run

TOKEN = "tok-9f8e7d6c5b4a3f2e1d0c"
KEY = "sk-proj-abcdefghijklmnopqrstuvwx"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "config.toml",
        f"""
[web]
port = 8000
token = "{TOKEN}"

[retention]
days = 30

[sinks]
jsonl = "/var/log/oisp/events.jsonl"

[[providers]]
host = "gateway.corp.example"
provider = "corp-gateway"
api = "openai"
scheme = "https://svc:{KEY}@gateway.corp.example"
""",
    )


def test_config_show_masks_secrets_and_round_trips(
    run: Run, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OISP_WEB_BIND", "127.0.0.2")
    result = run("--config", config_file, "config", "show")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert TOKEN not in out and KEY not in out
    assert f'token = "{MASK}"' in out
    assert "overridden by the environment: OISP_WEB_BIND" in out
    shown = tomllib.loads(out)
    assert shown["web"]["port"] == 8000 and shown["web"]["bind"] == "127.0.0.2"
    assert shown["retention"]["days"] == 30
    assert shown["providers"][0]["provider"] == "corp-gateway"
    # Valid config as printed: it loads back into the same settings (secrets aside).
    reloaded = config_mod.load(_write(config_file.with_name("again.toml"), out), environ={})
    assert reloaded.web.port == 8000 and reloaded.sinks.jsonl == "/var/log/oisp/events.jsonl"


@pytest.mark.parametrize(
    ("name", "value", "masked"),
    [
        ("token", "anything", MASK),
        ("api_key", "x", MASK),
        ("jsonl", "/tmp/events.jsonl", "/tmp/events.jsonl"),
        ("regex", "sk-[a-z]+", "sk-[a-z]+"),  # a pattern, not a key
        ("upstream", "Bearer abcdefghijklmnop", MASK),
        ("url", "https://user:hunter2@example.com/x", f"https://user:{MASK}@example.com/x"),
        ("note", "AIzaSyA1234567890abcdefghijklmnopq", MASK),
        ("otlp_headers", "authorization=Bearer t", f"authorization={MASK}"),
        ("webhook_secret", "s3cr3t", MASK),
        (
            "webhook_url",
            "https://hooks.slack.com/services/T0/B0/XYZ",
            f"https://hooks.slack.com/{MASK}",
        ),
        ("otlp_endpoint", "https://otel.example.com:4318/", "https://otel.example.com:4318/"),
        (
            "endpoint",
            "https://x.example/v1?api_key=abc123&region=eu",
            f"https://x.example/v1?api_key={MASK}&region=eu",
        ),
    ],
)
def test_masking(name: str, value: str, masked: str) -> None:
    assert mask_value(name, value) == masked


def test_config_path(run: Run, config_file: Path, tmp_path: Path) -> None:
    assert run("--config", config_file, "config", "path").stdout.strip() == str(config_file)
    result = run("config", "path")
    assert result.stdout.strip().endswith("config.toml") and "does not exist" in result.stderr


def test_environment_overrides_the_file(config_file: Path) -> None:
    config = config_mod.load(
        config_file, environ={"OISP_WEB_PORT": "9000", "OISP_RETENTION_DAYS": "2.5"}
    )
    assert config.web.port == 9000 and config.retention.days == 2.5
    assert config.web.token == TOKEN  # untouched values still come from the file


def test_flags_override_both(config_file: Path) -> None:
    config = config_mod.load(config_file, environ={"OISP_WEB_PORT": "9000"})
    flagged = config.replace("web", port=7000, bind=None)  # a flag not given is None
    assert flagged.web.port == 7000 and flagged.web.bind == config.web.bind
    with pytest.raises(ConfigError, match="web.port: expected a port number"):
        config.replace("web", port=70000)
    with pytest.raises(ConfigError, match="sinks.nope: unknown setting"):
        config.replace("sinks", nope=1)
    no_db = config.replace("sinks", no_db=True)
    assert no_db.db_path is None
    assert config.replace("sinks", db="/tmp/x.db").db_path == Path("/tmp/x.db")


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[web]\nport = 'eighty'\n", {}, "web.port: expected an integer, got 'eighty'"),
        ("[retention]\ndays = -1\n", {}, "retention.days: expected a positive number"),
        (
            "[retention]\nprune_every_min = 0\n",
            {},
            "retention.prune_every_min: expected a positive",
        ),
        ("[webb]\nport = 1\n", {}, "webb: unknown setting"),
        ("[web\n", {}, "not valid TOML"),
        ("", {"OISP_WEB_PORT": "x"}, "web.port: expected an integer, got 'x' (from OISP_WEB_PORT)"),
        ("", {"OISP_WEB_PROT": "1"}, "OISP_WEB_PROT: web.prot is not a setting"),
        ("", {"OISP_SINKS_NO_DB": "maybe"}, "sinks.no_db: expected true or false"),
        (
            "[capture]\nconnect_to = ['api.openai.com:443=127.0.0.1']\n",
            {},
            "capture.connect_to: expected HOST:PORT=ADDR:PORT, got 'api.openai.com:443=127.0.0.1'",
        ),
        (
            "[[providers]]\nhost = 'https://llm.corp.net/v1'\n",
            {},
            "providers[0].host: expected a host name such as llm.example.com",
        ),
    ],
)
def test_invalid_config_is_one_clear_message_and_exit_2(
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    env: dict[str, str],
    message: str,
) -> None:
    path = _write(tmp_path / "bad.toml", toml)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run("--config", path, "status")
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_env_config_file_and_missing_file(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OISP_CONFIG", str(tmp_path / "missing.toml"))
    result = run("config", "show")
    assert result.exit_code == 2 and "missing.toml: no such config file" in result.stderr


def test_retention_and_store_settings_reach_status(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OISP_SINKS_DB", str(tmp_path / "elsewhere.db"))
    out = run("status").stdout
    assert "elsewhere.db" in out
    monkeypatch.setenv("OISP_SINKS_NO_DB", "true")
    assert "disabled" in run("status").stdout
