"""`oisp-sensor config show | path`: the effective configuration, secrets masked.

`show` prints valid TOML (file, then `OISP_*` environment, applied): paste it into
a config file and you get the same sensor. Tokens, and any value that looks like a
credential, are printed as "********" so the output is safe to share in a bug report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import click

from oisp_sensor.config import Config, default_config_path

MASK = "********"

# Setting names whose value is a secret whatever it looks like.
_SECRET_NAMES = re.compile(r"(token|secret|password|passwd|api_?key|credential)", re.I)
# Values that look like credentials wherever they appear.
_SECRET_VALUES = re.compile(
    r"(sk-[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|[rs]k_live_[A-Za-z0-9]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|Bearer\s+\S{8,})"
)
_URL_PASSWORD = re.compile(r"(\w+://[^/\s:@]+:)([^@\s/]+)(@)")


_SECRET_QUERY = re.compile(
    r"([?&][^=&#]*(?:key|token|secret|sig|signature|auth)[^=&#]*=)[^&#]+", re.I
)


def mask_value(name: str, value: str) -> str:
    """`value` of setting `name` with anything secret replaced by MASK."""
    if not value:
        return value
    if _SECRET_NAMES.search(name):
        return MASK
    if name.endswith("headers"):  # "Name=Value" items: the name helps debugging, values are auth
        header, sep, _ = value.partition("=")
        return f"{header}={MASK}" if sep else MASK
    if name.endswith("webhook_url") and "://" in value and "?" not in value:
        # Chat webhooks (Slack, Discord, Teams) carry their credential in the path itself.
        scheme, _, rest = value.partition("://")
        host, slash, path = rest.partition("/")
        return f"{scheme}://{host}/{MASK}" if slash and path else value
    if name.endswith("url") and "?" in value:  # webhook URLs often carry a token there
        value = value.split("?", 1)[0] + "?" + MASK
    masked = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", value)
    masked = _SECRET_QUERY.sub(rf"\g<1>{MASK}", masked)  # ?api_key=… in any other value
    return _SECRET_VALUES.sub(MASK, masked)


def _toml_value(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(mask_value(name, value))  # a JSON string is a TOML basic string
    if isinstance(value, (tuple, list)):
        items = [_toml_value(name, v) for v in value]
        return "[" + ", ".join(i for i in items if i is not None) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")  # pragma: no cover


def _is_table_list(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and dataclasses.is_dataclass(value[0])


def _scalars(obj: Any) -> list[str]:
    lines = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) or _is_table_list(value):
            continue
        rendered = _toml_value(f.name, value)
        if rendered is not None:
            lines.append(f"{f.name} = {rendered}")
    return lines


def _tables(obj: Any, prefix: str) -> list[str]:
    """Sub-tables and arrays of tables of `obj`, TOML style, depth first."""
    out: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += ["", f"[{name}]", *_scalars(value), *_tables(value, name + ".")]
        elif _is_table_list(value):
            for item in value:
                out += ["", f"[[{name}]]", *_scalars(item), *_tables(item, name + ".")]
    return out


def render_toml(config: Config) -> str:
    top = [line for line in _scalars(config) if not line.startswith("source ")]
    return "\n".join([*top, *_tables(config, "")]).strip() + "\n"


def env_overrides(environ: dict[str, str] | None = None) -> list[str]:
    environ = dict(os.environ) if environ is None else environ
    skip = {"OISP_CONFIG", "OISP_DATA_DIR", "OISP_CONFIG_DIR"}
    sections = [f.name for f in dataclasses.fields(Config) if f.name != "source"]
    return sorted(
        k
        for k in environ
        if k.startswith("OISP_")
        and k not in skip
        and any(k[5:].lower().startswith(s + "_") for s in sections)
    )


@click.group(name="config")
def config_group() -> None:
    """Show the effective configuration, or where its file is."""


@config_group.command(name="show")
@click.pass_obj
def config_show(obj: dict[str, Any]) -> None:
    """Print the effective configuration as TOML (secrets masked)."""
    config: Config = obj["config"]
    path = config.source or str(default_config_path())
    origin = f"from {path}" if config.source else f"defaults ({path} does not exist)"
    click.echo(f"# oisp-sensor configuration: {origin}")
    if overrides := env_overrides():
        click.echo(f"# overridden by the environment: {', '.join(overrides)}")
    click.echo(f"# event store: {config.db_path or 'disabled'}")
    click.echo(render_toml(config), nl=False)


@config_group.command(name="path")
@click.pass_obj
def config_path(obj: dict[str, Any]) -> None:
    """Print the config file's path (on stderr: whether it exists)."""
    config: Config = obj["config"]
    path = config.source or obj.get("config_path") or str(default_config_path())
    click.echo(path)
    if not os.path.exists(path):
        click.echo("(does not exist yet; oisp-sensor runs on its defaults)", err=True)
