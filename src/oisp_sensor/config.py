"""Configuration: TOML file, then `OISP_*` environment, then command-line flags.

Validated once, at load time, into frozen dataclasses; an invalid value is a
`ConfigError` naming the key and the expected form. Only the CLI loads config;
everything below it receives the values it needs.

    [capture]   proxy_port, bind, socket, upstream_ca, connect_to, tunnel_on_tls_failure,
                record_chunks, idle_timeout_s
    [[providers]]  host, port, provider, api, scheme   (custom endpoints)
    [redaction] mode = "safe" | "full" | "minimal", [[redaction.patterns]] name, regex
    [retention] days
    [sinks]     jsonl, jsonl_rotate_mb, db, no_db
    [web]       enabled, port, bind, token

Environment: `OISP_<SECTION>_<KEY>`, e.g. `OISP_WEB_PORT=8000`, `OISP_REDACTION_MODE=minimal`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oisp_sensor.errors import ConfigError
from oisp_sensor.paths import config_dir, data_dir

REDACTION_MODES = ("safe", "full", "minimal")


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    proxy_port: int = 8080
    bind: str = "127.0.0.1"
    socket: str = "/tmp/oisp.sock"  # "" disables the bridge
    upstream_ca: tuple[str, ...] = ()
    connect_to: tuple[str, ...] = ()  # "HOST:PORT=ADDR:PORT", curl's meaning
    tunnel_on_tls_failure: bool = True  # a client that rejects our cert gets a blind tunnel
    record_chunks: bool = False  # emit ai.streaming_chunk events
    idle_timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class CustomProvider:
    """An endpoint the built-in registry does not know (gateway, self-hosted model server)."""

    host: str
    provider: str = "other"  # name shown to users, e.g. "corp-gateway"
    api: str = "openai"  # wire format: openai | anthropic | gemini | ollama | bedrock | cohere
    port: int | None = None
    scheme: str = "https"


@dataclass(frozen=True, slots=True)
class RedactionPattern:
    name: str
    regex: str


@dataclass(frozen=True, slots=True)
class RedactionConfig:
    mode: str = "safe"
    patterns: tuple[RedactionPattern, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    days: float = 7.0


@dataclass(frozen=True, slots=True)
class SinksConfig:
    jsonl: str = ""  # path; "" = no JSONL file
    jsonl_rotate_mb: int = 0
    db: str = ""  # "" = the default store in the data dir
    no_db: bool = False


@dataclass(frozen=True, slots=True)
class WebConfig:
    enabled: bool = True
    port: int = 7777
    bind: str = "127.0.0.1"
    token: str = ""  # required (or generated) when bind is not loopback


@dataclass(frozen=True, slots=True)
class Config:
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    providers: tuple[CustomProvider, ...] = ()
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    web: WebConfig = field(default_factory=WebConfig)
    source: str = ""  # the file it came from, for messages

    @property
    def db_path(self) -> Path | None:
        if self.sinks.no_db:
            return None
        return Path(self.sinks.db).expanduser() if self.sinks.db else data_dir() / "events.db"

    def replace(self, section: str, **values: Any) -> Config:
        """A copy with some values of one section changed (flags use this)."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


def default_config_path() -> Path:
    if env := os.environ.get("OISP_CONFIG"):
        return Path(env)
    return config_dir() / "config.toml"


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """File, then environment. A missing default file is fine; a missing named file is not."""
    explicit = path is not None or "OISP_CONFIG" in (environ or os.environ)
    path = path or default_config_path()
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    elif explicit:
        raise ConfigError(f"{path}: no such config file")
    _apply_env(raw, environ if environ is not None else dict(os.environ))
    config: Config = _build(Config, raw, "")
    _validate(config)
    return dataclasses.replace(config, source=str(path) if path.exists() else "")


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> None:
    sections = {
        f.name: f.type for f in dataclasses.fields(Config) if f.name not in ("providers", "source")
    }
    for key, value in environ.items():
        if not key.startswith("OISP_") or key in (
            "OISP_CONFIG",
            "OISP_DATA_DIR",
            "OISP_CONFIG_DIR",
        ):
            continue
        rest = key[5:].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue
        name = rest[len(section) + 1 :]
        raw.setdefault(section, {})[name] = _EnvValue(value, key)


class _EnvValue(str):
    """A string from the environment, converted to the field's type on build."""

    origin: str

    def __new__(cls, value: str, origin: str) -> _EnvValue:
        obj = super().__new__(cls, value)
        obj.origin = origin
        return obj


def _build(cls: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = set(raw) - known
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(
            f"{where + '.' if where else ''}{name}: unknown setting "
            f"(known: {', '.join(sorted(known))})"
        )
    values = {
        name: _convert(hints[name], value, f"{where + '.' if where else ''}{name}")
        for name, value in raw.items()
    }
    return cls(**values)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if isinstance(value, _EnvValue):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        return tuple(_convert(item_type, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, _EnvValue) and value == ""):
            return None
        return _convert(args[0], value, key)
    env = isinstance(value, _EnvValue)
    where = f" (from {value.origin})" if env else ""
    if tp is bool:
        if env:
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}{where}")
    if tp is int:
        if env and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}{where}")
    if tp is float:
        try:
            if env:
                return float(value)
        except ValueError:
            pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}{where}")
    if tp is str:
        if isinstance(value, str):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}{where}")
    raise ConfigError(f"{key}: unsupported setting type")  # pragma: no cover


_CONNECT_TO = re.compile(r"^[^:=\s]+:\d{1,5}=[^=\s]+:\d{1,5}$")


def _validate(config: Config) -> None:
    c = config.capture
    for key, port in (("capture.proxy_port", c.proxy_port), ("web.port", config.web.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key}: expected a port number 0-65535, got {port}")
    for spec in c.connect_to:
        if not _CONNECT_TO.match(spec) and not re.match(
            r"^[^=\s]+:\d+=\[[0-9a-fA-F:]+\]:\d+$", spec
        ):
            raise ConfigError(f"capture.connect_to: expected HOST:PORT=ADDR:PORT, got {spec!r}")
    if config.redaction.mode not in REDACTION_MODES:
        raise ConfigError(
            f"redaction.mode: expected one of {', '.join(REDACTION_MODES)}, "
            f"got {config.redaction.mode!r}"
        )
    for i, pattern in enumerate(config.redaction.patterns):
        try:
            re.compile(pattern.regex)
        except re.error as e:
            raise ConfigError(
                f"redaction.patterns[{i}].regex: not a valid regular expression: {e}"
            ) from e
    if config.retention.days <= 0:
        raise ConfigError(
            f"retention.days: expected a positive number, got {config.retention.days}"
        )
    apis = ("openai", "anthropic", "gemini", "ollama", "bedrock", "cohere")
    for i, p in enumerate(config.providers):
        if p.api not in apis:
            raise ConfigError(
                f"providers[{i}].api: expected one of {', '.join(apis)}, got {p.api!r}"
            )
        if not p.host:
            raise ConfigError(f"providers[{i}].host: must not be empty")
