"""Dashboard settings: redaction mode, retention, custom endpoints — persisted to the
config file and applied to the running sensor where that is possible without a restart.

Only the keys a change touches are rewritten; everything else in the file (other
sections, values the dashboard does not edit) stays as it was. A change is validated
exactly as a start would validate the file, so the dashboard can never save a config
the sensor then refuses to load.

Custom endpoints change what the CA may sign for (its nameConstraints), so they take
effect at the next start, when the CA is re-issued; the answer says so.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from oisp_sensor import config as config_mod
from oisp_sensor.config import PROVIDER_APIS, REDACTION_MODES, Config, is_host_name
from oisp_sensor.errors import ConfigError
from oisp_sensor.paths import config_dir, replace_file, write_private

EDITABLE = ("redaction_mode", "retention_days", "custom_endpoints")
_ENDPOINT_KEYS = ("host", "port", "provider", "api", "scheme")
# Config-file key (as the loader names it) -> the API's name for it.
_API_KEY = (
    (re.compile(r"^redaction\.mode"), "redaction_mode"),
    (re.compile(r"^retention\.days"), "retention_days"),
    (re.compile(r"^providers"), "custom_endpoints"),
)


class SettingsError(ValueError):
    """A settings change the dashboard sent is not valid; `key` names the offending setting."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Settings:
    config: Config
    path: Path
    on_redaction: Callable[[str], None] | None = None  # apply a new mode to the pipeline
    on_retention: Callable[[float], None] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    restart_required: set[str] = field(default_factory=set)

    def current(self) -> dict[str, Any]:
        c = self.config
        return {
            "config_path": str(self.path),
            "redaction_mode": c.redaction.mode,
            "redaction_modes": list(REDACTION_MODES),
            "retention_days": c.retention.days,
            "custom_endpoints": [
                {
                    "host": p.host,
                    "port": p.port,
                    "provider": p.provider,
                    "api": p.api,
                    "scheme": p.scheme,
                }
                for p in c.providers
            ],
            "apis": list(PROVIDER_APIS),
            "restart_required": sorted(self.restart_required),
            "overridden_by_environment": self._overridden(),
        }

    def _overridden(self) -> dict[str, str]:
        """Settings an OISP_* variable overrides: saving them here only matters without it."""
        names = {
            "redaction_mode": "OISP_REDACTION_MODE",
            "retention_days": "OISP_RETENTION_DAYS",
        }
        return {key: var for key, var in names.items() if var in self.environ}

    def update(self, body: Any) -> dict[str, Any]:
        """Validate, write the config file, apply what can be applied live."""
        if not isinstance(body, dict):
            raise SettingsError("expected a JSON object")
        unknown = sorted(set(body) - set(EDITABLE))
        if unknown:
            raise SettingsError(f"{unknown[0]}: not a setting the dashboard can change", unknown[0])
        raw = self._read_file()
        if "redaction_mode" in body:
            raw.setdefault("redaction", {})["mode"] = body["redaction_mode"]
        if "retention_days" in body:
            raw.setdefault("retention", {})["days"] = body["retention_days"]
        if "custom_endpoints" in body:
            raw["providers"] = _endpoints(body["custom_endpoints"])
            if not raw["providers"]:
                del raw["providers"]
        try:
            text = tomli_w.dumps(raw)
        except (TypeError, ValueError) as e:  # e.g. null, which TOML cannot hold
            key = next(iter(body))
            raise SettingsError(f"{key}: {e}", key) from e
        # Validate exactly as a start would: through the config loader, from the new text.
        try:
            new = config_mod.loads(text, where=str(self.path))
        except ConfigError as e:
            message = str(e).removeprefix(f"{self.path}: ")
            raise SettingsError(*_api_names(message)) from e
        _write_config(self.path, text.encode())
        old, self.config = self.config, new
        if new.redaction.mode != old.redaction.mode and self.on_redaction:
            self.on_redaction(new.redaction.mode)
        if new.retention.days != old.retention.days and self.on_retention:
            self.on_retention(new.retention.days)
        if new.providers != old.providers:
            self.restart_required.add("custom_endpoints")
        return self.current()

    def _read_file(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SettingsError(f"cannot update {self.path}: {e}") from e


def _endpoints(value: Any) -> list[dict[str, Any]]:
    """The dashboard's endpoint list as `[[providers]]` tables, checked beyond the loader:
    a host goes into the CA's name constraints, so it must be a bare host name."""
    if not isinstance(value, list):
        raise SettingsError("custom_endpoints: expected a list", "custom_endpoints")
    out = []
    for i, entry in enumerate(value):
        where = f"custom_endpoints[{i}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where}: expected an object with a host", where)
        unknown = sorted(set(entry) - set(_ENDPOINT_KEYS))
        if unknown:
            raise SettingsError(f"{where}.{unknown[0]}: unknown field", f"{where}.{unknown[0]}")
        table = {k: v for k, v in entry.items() if v not in (None, "")}
        host = table.get("host")
        if not isinstance(host, str) or not is_host_name(host.strip()):
            raise SettingsError(
                f"{where}.host: expected a host name such as llm.example.com "
                f"(no scheme, port or path), got {host!r}",
                f"{where}.host",
            )
        table["host"] = host.strip().lower()
        if table.get("scheme", "https") not in ("http", "https"):
            raise SettingsError(f"{where}.scheme: expected http or https", f"{where}.scheme")
        port = table.get("port")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise SettingsError(f"{where}.port: expected a port number 1-65535", f"{where}.port")
        out.append(table)
    return out


def _api_names(message: str) -> tuple[str, str]:
    """A loader message (`providers[0].api: ...`) in the API's terms, and the key it names."""
    for pattern, name in _API_KEY:
        match = pattern.match(message)
        if match:
            message = name + message[match.end() :]
            return message, message.split(":", 1)[0]
    return message, ""


def _write_config(path: Path, data: bytes) -> None:
    """Atomically replace the config file, keeping its mode (0600 when new).

    The default config folder is made private; a folder the user chose (`--config`)
    is left as it is.
    """
    if path.parent == config_dir():
        write_private(path, data)
        return
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    try:
        replace_file(path, data, mode)
    except OSError as e:
        raise SettingsError(f"cannot write {path}: {e.strerror}") from e
