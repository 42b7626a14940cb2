"""Configuration: TOML file, then `OISP_*` environment, then command-line flags.

Validated once, at load time, into frozen dataclasses; an invalid value is a
`ConfigError` naming the key and the expected form. Only the CLI loads config;
everything below it receives the values it needs.

    [capture]   proxy_port, bind, socket, upstream_ca, connect_to, tunnel_on_tls_failure,
                record_chunks, idle_timeout_s
    [[providers]]  host, port, provider, api, scheme   (custom endpoints)
    [redaction] mode = "safe" | "full" | "minimal", [[redaction.patterns]] name, regex
    [retention] days, prune_every_min
    [sinks]     jsonl, jsonl_rotate_mb, db, no_db;
                exporters (docs/exporters.md): otlp, otlp_endpoint, otlp_protocol (protobuf|json),
                otlp_signals (traces, logs), otlp_headers ["Name=Value"],
                otlp_compression (gzip|none),
                otlp_resource_attributes ["key=value"], otlp_ca_file, otlp_timeout_s;
                webhook_url, webhook_secret, webhook_types, webhook_format (json|ndjson),
                webhook_headers, webhook_ca_file, webhook_timeout_s;
                kafka_brokers ["host:port"], kafka_topic, kafka_acks (all|1|0), kafka_compression
                (none|gzip|snappy|lz4|zstd);
                export_buffer (events each exporter holds while its destination is down),
                export_retry_s (how long one batch is retried before it is dropped)
    [pricing]   enabled, [[pricing.overrides]] provider, model (glob), input_per_mtok,
                output_per_mtok, cached_input_per_mtok, cache_write_per_mtok  (USD per 1M tokens)
    [web]       enabled, port, bind, token

Environment: `OISP_<SECTION>_<KEY>`, e.g. `OISP_WEB_PORT=8000`, `OISP_REDACTION_MODE=minimal`;
lists are comma-separated (`OISP_CAPTURE_CONNECT_TO=a:443=b:443,c:443=d:443`); arrays of
tables ([[providers]], patterns, price overrides) come from the file only. An `OISP_`
variable naming a section but no setting of it is an error, so a typo is never ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oisp_sensor.errors import ConfigError
from oisp_sensor.paths import config_dir, data_dir

REDACTION_MODES = ("safe", "full", "minimal")
# Wire formats a custom endpoint may speak ([[providers]] api).
PROVIDER_APIS = ("openai", "anthropic", "gemini", "ollama", "bedrock", "cohere")


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
    api: str = "openai"  # wire format: one of PROVIDER_APIS
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
    prune_every_min: float = 60.0  # the store drops expired events at start and this often


@dataclass(frozen=True, slots=True)
class SinksConfig:
    jsonl: str = ""  # path; "" = no JSONL file
    jsonl_rotate_mb: int = 0
    db: str = ""  # "" = the default store in the data dir
    no_db: bool = False
    # Exporters (sinks/otlp.py, webhook.py, kafka.py); each is off until configured.
    otlp: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4318"  # base URL; /v1/traces and /v1/logs are added
    otlp_protocol: str = "protobuf"
    otlp_signals: tuple[str, ...] = ("traces", "logs")
    otlp_headers: tuple[str, ...] = ()  # "Name=Value", e.g. an auth header (masked by config show)
    otlp_compression: str = "gzip"
    otlp_resource_attributes: tuple[str, ...] = ()  # "key=value", e.g. deployment.environment=prod
    otlp_ca_file: str = ""
    otlp_timeout_s: float = 10.0
    webhook_url: str = ""  # "" = no webhook
    webhook_secret: str = ""  # signs each POST (X-OISP-Signature)
    webhook_types: tuple[str, ...] = ()  # event types to send, e.g. "ai.response", "agent.*"
    webhook_format: str = "json"
    webhook_headers: tuple[str, ...] = ()
    webhook_ca_file: str = ""
    webhook_timeout_s: float = 10.0
    kafka_brokers: tuple[str, ...] = ()  # "host:port"; none = no Kafka
    kafka_topic: str = "oisp-events"
    kafka_acks: str = "all"
    kafka_compression: str = "gzip"
    export_buffer: int = 10_000
    export_retry_s: float = 300.0


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """The user's own price for a model: negotiated rates, a gateway, a model genai-prices lacks.

    `model` is a model id or a glob (`corp-llama-*`), `provider` our provider id ("" = any).
    Cache prices left unset fall back to the input price.
    """

    model: str = ""
    provider: str = ""
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class PricingConfig:
    enabled: bool = True  # false: no cost is computed (reported costs are still kept)
    overrides: tuple[PriceOverride, ...] = ()


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
    pricing: PricingConfig = field(default_factory=PricingConfig)
    web: WebConfig = field(default_factory=WebConfig)
    source: str = ""  # the file it came from, for messages

    @property
    def db_path(self) -> Path | None:
        if self.sinks.no_db:
            return None
        return Path(self.sinks.db).expanduser() if self.sinks.db else data_dir() / "events.db"

    def replace(self, section: str, **values: Any) -> Config:
        """A copy with some values of one section changed (flags use this), validated again.

        Values that are None are skipped, so a command can pass its flags straight
        through: a flag the user did not give leaves the file/environment value alone.
        An invalid result is a ConfigError naming the key, exactly as from the file.
        """
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        current = getattr(self, section)
        known = {f.name for f in dataclasses.fields(current)}
        if unknown := sorted(set(given) - known):
            raise ConfigError(f"{section}.{unknown[0]}: unknown setting")
        updated = dataclasses.replace(self, **{section: dataclasses.replace(current, **given)})
        _validate(updated)
        return updated


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
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    elif explicit:
        raise ConfigError(f"{path}: no such config file")
    _apply_env(raw, environ if environ is not None else dict(os.environ))
    config: Config = _build(Config, raw, "")
    _validate(config)
    return dataclasses.replace(config, source=str(path) if path.exists() else "")


def loads(text: str, *, where: str = "config") -> Config:
    """A Config from TOML text alone (no environment): how settings edits are validated."""
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:  # RecursionError: nesting too deep
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    config: Config = _build(Config, raw, "")
    _validate(config)
    return config


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> None:
    sections = {
        name: hint
        for name, hint in typing.get_type_hints(Config).items()
        if name not in ("providers", "source")
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
        known = {f.name for f in dataclasses.fields(sections[section])}
        if name not in known:
            raise ConfigError(
                f"{key}: {section}.{name} is not a setting "
                f"(known in [{section}]: {', '.join(sorted(known))})"
            )
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
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in values
    ]
    if required:
        raise ConfigError(
            f"{where + '.' if where else ''}{required[0]}: required setting is missing"
        )
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
        # ASCII digits only: str.isdigit() also takes "²", and int() refuses "--5".
        if env and re.fullmatch(r"\s*-?[0-9]+\s*", value):
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


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9a-fA-F:.]+\]?$"
)


def is_host_name(text: str) -> bool:
    """A bare host (`llm.example.com`, `*.corp.net`, an IP): no scheme, port or path."""
    return bool(_HOST_NAME.match(text))


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[v6]:port` (or a bare host with `default_port`) -> (host, port)."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unterminated IPv6 address in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad authority {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        if default_port is None:
            raise ValueError(f"no port in {text!r}")
        return host.lower(), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host.lower(), int(port_text)


def parse_connect_to(specs: Iterable[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """`HOST:PORT=ADDR:PORT` entries (curl's --connect-to, without its empty fields)."""
    routes: dict[tuple[str, int], tuple[str, int]] = {}
    for spec in specs:
        source, sep, dest = spec.partition("=")
        try:
            if not sep:
                raise ValueError("missing '='")
            routes[split_host_port(source)] = split_host_port(dest)
        except ValueError as e:
            raise ConfigError(
                f"capture.connect_to: expected HOST:PORT=ADDR:PORT, got {spec!r} ({e})"
            ) from None
    return routes


def _validate(config: Config) -> None:
    c = config.capture
    for key, port in (("capture.proxy_port", c.proxy_port), ("web.port", config.web.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key}: expected a port number 0-65535, got {port}")
    parse_connect_to(c.connect_to)
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
    if not 0 < config.retention.days < float("inf"):  # also refuses nan
        raise ConfigError(
            f"retention.days: expected a positive number, got {config.retention.days}"
        )
    if config.retention.prune_every_min <= 0:
        raise ConfigError(
            "retention.prune_every_min: expected a positive number of minutes, "
            f"got {config.retention.prune_every_min}"
        )
    _validate_pricing(config.pricing)
    _validate_exporters(config.sinks)
    for i, p in enumerate(config.providers):
        if p.api not in PROVIDER_APIS:
            raise ConfigError(
                f"providers[{i}].api: expected one of {', '.join(PROVIDER_APIS)}, got {p.api!r}"
            )
        if not is_host_name(p.host):
            raise ConfigError(
                f"providers[{i}].host: expected a host name such as llm.example.com "
                f"(no scheme, port or path), got {p.host!r}"
            )


def _validate_pricing(pricing: PricingConfig) -> None:
    for i, o in enumerate(pricing.overrides):
        where = f"pricing.overrides[{i}]"
        if not o.model.strip():
            raise ConfigError(f"{where}.model: must name a model id or a glob such as 'gpt-4o*'")
        for name in ("input_per_mtok", "output_per_mtok"):
            if getattr(o, name) is None:
                raise ConfigError(f"{where}.{name}: required (USD per million tokens)")
        for name in (
            "input_per_mtok",
            "output_per_mtok",
            "cached_input_per_mtok",
            "cache_write_per_mtok",
        ):
            value = getattr(o, name)
            if value is not None and not 0 <= value < float("inf"):
                raise ConfigError(
                    f"{where}.{name}: expected a non-negative number of USD per million "
                    f"tokens, got {value}"
                )


def _validate_exporters(sinks: SinksConfig) -> None:
    """The exporter settings, checked here so a typo stops `record` instead of losing events."""
    choices = {
        "otlp_protocol": ("protobuf", "json"),
        "otlp_compression": ("gzip", "none"),
        "webhook_format": ("json", "ndjson"),
        "kafka_acks": ("all", "1", "0"),
        "kafka_compression": ("none", "gzip", "snappy", "lz4", "zstd"),
    }
    for name, allowed in choices.items():
        if getattr(sinks, name) not in allowed:
            raise ConfigError(
                f"sinks.{name}: expected one of {', '.join(allowed)}, got {getattr(sinks, name)!r}"
            )
    for signal in sinks.otlp_signals:
        if signal not in ("traces", "logs"):
            raise ConfigError(f"sinks.otlp_signals: expected traces and/or logs, got {signal!r}")
    for name in ("otlp_endpoint", "webhook_url"):
        url = getattr(sinks, name)
        if url and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            raise ConfigError(f"sinks.{name}: expected an http:// or https:// URL, got {url!r}")
    for name in ("otlp_headers", "otlp_resource_attributes", "webhook_headers"):
        for i, item in enumerate(getattr(sinks, name)):
            key, sep, _ = item.partition("=")
            if not sep or not key.strip() or any(c in item for c in "\r\n"):
                # Not echoed: a header without "=" is often a pasted credential.
                raise ConfigError(f'sinks.{name}[{i}]: expected "name=value"')
    for pattern in sinks.webhook_types:
        if not re.match(r"^[a-z_]+(\.[a-z_]+|\.\*)$", pattern):
            raise ConfigError(
                f"sinks.webhook_types: expected event types such as ai.response or agent.*, "
                f"got {pattern!r}"
            )
    for broker in sinks.kafka_brokers:
        if not re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$", broker):
            raise ConfigError(f"sinks.kafka_brokers: expected host:port, got {broker!r}")
    for name in ("otlp_ca_file", "webhook_ca_file"):
        path = getattr(sinks, name)
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"sinks.{name}: no such file: {path}")
    for name in ("otlp_timeout_s", "webhook_timeout_s", "export_retry_s"):
        if not 0 < getattr(sinks, name) < float("inf"):
            raise ConfigError(f"sinks.{name}: expected a positive number of seconds")
    if sinks.export_buffer < 1:
        raise ConfigError(f"sinks.export_buffer: expected 1 or more, got {sinks.export_buffer}")
    if sinks.kafka_brokers and not sinks.kafka_topic.strip():
        raise ConfigError("sinks.kafka_topic: must name a topic")
