"""`oisp-sensor record` and `oisp-sensor run -- COMMAND`: the sensor in the foreground.

`record` serves until Ctrl-C or SIGTERM; `run` serves for as long as one command
runs, with that command's environment pointing at the sensor, then prints what it
captured and exits with the command's own status. Both stop the same clean way, so
every captured event reaches the sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from oisp_sensor.cli.common import fail, load_config, run_async, setup_logging
from oisp_sensor.config import Config
from oisp_sensor.errors import CaptureError, ConfigError, SinkError
from oisp_sensor.events import Event, EventType, provider_label

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def sensor_options(func: F) -> F:
    """The options `record`, `run` and `demo` share (DESIGN.md §4); flags override config."""
    options = [
        click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write events to this JSON Lines file.",
        ),
        click.option("--db", type=click.Path(dir_okay=False), help="Event store (SQLite) path."),
        click.option("--no-db", is_flag=True, default=None, help="Do not write the event store."),
        click.option("--web/--no-web", default=None, help="Serve the dashboard."),
        click.option("--port", type=click.IntRange(0, 65535), help="Dashboard port (7777)."),
        click.option(
            "--web-bind",
            metavar="ADDR",
            help="Address the dashboard listens on (127.0.0.1); any other needs a token.",
        ),
        click.option(
            "--web-token",
            metavar="TOKEN",
            help="Dashboard token for a non-loopback --web-bind (default: generated and "
            "printed; OISP_WEB_TOKEN keeps it out of the process list).",
        ),
        click.option(
            "--proxy-port", type=click.IntRange(0, 65535), help="Proxy port (8080; 0 = any free)."
        ),
        click.option("--bind", help="Address the proxy listens on (127.0.0.1)."),
        click.option("--socket", "socket_path", help="Unix-socket bridge path (/tmp/oisp.sock)."),
        click.option("--no-socket", is_flag=True, default=None, help="No unix-socket bridge."),
        click.option(
            "--upstream-ca",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="Also trust this CA (PEM) for upstream servers. Repeatable.",
        ),
        click.option(
            "--connect-to",
            multiple=True,
            metavar="HOST:PORT=ADDR:PORT",
            help="Connect to ADDR:PORT for HOST:PORT, keeping SNI and Host. Repeatable.",
        ),
        click.option("--redaction", type=click.Choice(["safe", "full", "minimal"])),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="Config file (overrides the one given before the command).",
        ),
        click.option("-v", "--verbose", "verbosity", count=True, help="More log output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass(slots=True)
class SensorFlags:
    """The sensor options as given on the command line (None = not given)."""

    output: Path | None = None
    db: str | None = None
    no_db: bool | None = None
    web: bool | None = None
    port: int | None = None
    web_bind: str | None = None
    web_token: str | None = None
    proxy_port: int | None = None
    bind: str | None = None
    socket_path: str | None = None
    no_socket: bool | None = None
    upstream_ca: tuple[str, ...] = ()
    connect_to: tuple[str, ...] = ()
    redaction: str | None = None
    config_file: str | None = None
    verbosity: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> SensorFlags:
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        flags = cls(**{k: v for k, v in kwargs.items() if k in names})
        flags.extra = {k: v for k, v in kwargs.items() if k not in names}
        return flags


def apply_flags(config: Config, flags: SensorFlags) -> Config:
    """Config with the command-line flags applied on top (flags win)."""
    capture: dict[str, Any] = {}
    if flags.proxy_port is not None:
        capture["proxy_port"] = flags.proxy_port
    if flags.bind:
        capture["bind"] = flags.bind
    if flags.no_socket:
        capture["socket"] = ""
    elif flags.socket_path:
        capture["socket"] = flags.socket_path
    if flags.upstream_ca:
        capture["upstream_ca"] = config.capture.upstream_ca + tuple(flags.upstream_ca)
    if flags.connect_to:
        capture["connect_to"] = config.capture.connect_to + tuple(flags.connect_to)
    if capture:
        config = config.replace("capture", **capture)
    sinks: dict[str, Any] = {}
    if flags.no_db:
        sinks["no_db"] = True
    elif flags.db:
        sinks["db"], sinks["no_db"] = flags.db, False
    if flags.output:
        sinks["jsonl"] = str(flags.output)
    if sinks:
        config = config.replace("sinks", **sinks)
    web: dict[str, Any] = {}
    if flags.web is not None:
        web["enabled"] = flags.web
    if flags.port is not None:
        web["port"] = flags.port
    if flags.web_bind:
        web["bind"] = flags.web_bind
    if flags.web_token:
        web["token"] = flags.web_token
    if web:
        config = config.replace("web", **web)
    if flags.redaction:
        config = config.replace("redaction", mode=flags.redaction)
    return config


def resolve_config(obj: Mapping[str, Any] | None, flags: SensorFlags) -> Config:
    """The group's config (or the command's own --config), then the flags."""
    if flags.verbosity:
        setup_logging(flags.verbosity)
    config = load_config(flags.config_file) if flags.config_file else (obj or {}).get("config")
    if not isinstance(config, Config):
        config = load_config(None)
    try:
        config = apply_flags(config, flags)  # validated again: flags are as untrusted as the file
    except ConfigError as e:
        fail(f"invalid option: {e}", status=2)
    return config


# --- record --------------------------------------------------------------------------------


@click.command()
@sensor_options
@click.pass_obj
def record(obj: dict[str, Any] | None, /, **kwargs: Any) -> None:
    """Capture AI traffic until Ctrl-C: proxy, unix-socket bridge, event store, dashboard."""
    flags = SensorFlags.from_kwargs(kwargs)
    config = resolve_config(obj, flags)
    run_async(_record(config, flags))


async def _record(config: Config, flags: SensorFlags) -> None:
    from oisp_sensor.sensor import Sensor

    sensor = Sensor(config, command="record", redaction=flags.redaction)
    try:
        await sensor.start()
    except (CaptureError, SinkError, ConfigError, OSError) as e:
        fail(str(e))
    click.echo(_banner(sensor))
    await sensor.run_until_signalled()
    counts = sensor.counters.snapshot()
    click.echo(f"oisp-sensor: stopped. {_counts_line(counts)}")
    for line in recording_report(counts, recorded_sinks(sensor)):
        click.echo(line)


def _banner(sensor: Any) -> str:
    url = sensor.proxy_url
    where = [str(p) for p in (sensor.db_path, sensor.jsonl_path) if p]
    lines = [
        "oisp-sensor is recording.",
        f"  proxy   {url}",
        f"  events  {', '.join(where) if where else '(no sink: events are decoded and dropped)'}",
    ]
    if sensor.bridge is not None:
        lines.append(f"  bridge  {sensor.bridge.path}")
    if sensor.dashboard is not None:
        lines.append(f"  web     {sensor.dashboard.login_url}")
        if sensor.dashboard.token_generated:
            lines.append(
                "          (token generated for this run; set OISP_WEB_TOKEN or --web-token"
                " to keep one)"
            )
    elif sensor.web_error:
        lines.append(f"  web     disabled: {sensor.web_error} (try --port)")
    lines += [
        "",
        "Send an app's AI traffic through it:",
        f"  export HTTPS_PROXY={url} HTTP_PROXY={url}",
        '  eval "$(oisp-sensor ca env)"     # trust the local CA in this shell'
        " (or once: oisp-sensor ca install)",
        "or start a program under the sensor:  oisp-sensor run -- python app.py",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def _counts_line(counts: Mapping[str, int]) -> str:
    """What was captured and decoded; what reached the sinks is `recording_report`'s."""
    parts = [f"{counts.get('events.total', 0)} events"]
    for key, label in (("events.ai_request", "AI requests"), ("events.ai_response", "responses")):
        if counts.get(key):
            parts.append(f"{counts[key]} {label}")
    return ", ".join(parts) + "."


def recorded_sinks(sensor: Any) -> list[tuple[str, str]]:
    """(runner name, what to call it) of the sinks a user reads events back from."""
    out = []
    if sensor.db_path is not None:
        out.append(("store", f"the store ({sensor.db_path})"))
    if sensor.jsonl_path is not None:
        out.append(("jsonl", f"{sensor.jsonl_path}"))
    return out


def recording_report(counts: Mapping[str, int], sinks: Sequence[tuple[str, str]]) -> list[str]:
    """Where the events went, from what each sink reports it wrote, and plainly what did not.

    The claim "all recorded" is made only when every sink wrote every event; anything
    lost (captures dropped before decoding, events a sink never got, exporters that
    could not deliver) is listed with what it means for the user's records.
    """
    from oisp_sensor.cli.status import describe_losses

    total = counts.get("events.total", 0)
    losses = describe_losses(dict(counts))
    problems = [loss.text for loss in losses if loss.problem]
    written = [(label, counts.get(f"sink.{name}.written", 0)) for name, label in sinks]
    lines = []
    if problems:
        lines.append(
            "  WARNING: not everything was recorded; the sensor fell behind or a sink failed:"
        )
        lines += [f"    - {text}" for text in problems]
    if written and all(n == total for _, n in written):
        if total:
            where = " and ".join(label for label, _ in written)
            lines.append(f"  recorded: all {total:,} events in {where}")
    elif written:
        lines.append(
            "  recorded: "
            + ", ".join(f"{n:,} of {total:,} events in {label}" for label, n in written)
        )
    lines += [f"  note: {loss.text}" for loss in losses if not loss.problem]
    return lines


# --- run -----------------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@sensor_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def run(obj: dict[str, Any] | None, /, command: tuple[str, ...], **kwargs: Any) -> None:
    """Run COMMAND with its AI traffic captured; print a summary; exit with its status.

    \b
    Example:  oisp-sensor run -- python examples/openai_chat.py
    """
    flags = SensorFlags.from_kwargs(kwargs)
    # A run is self-contained: any free port, and no shared socket or dashboard unless asked.
    if flags.proxy_port is None:
        flags.proxy_port = 0
    if flags.socket_path is None:
        flags.no_socket = True
    if flags.web is None:
        flags.web = False
    config = resolve_config(obj, flags)
    sys.exit(run_async(_run(config, flags, list(command))))


async def _run(config: Config, flags: SensorFlags, command: list[str]) -> int:
    from oisp_sensor.sensor import Sensor

    sensor = Sensor(config, command="run", redaction=flags.redaction)
    summary = RunSummary()
    try:
        await sensor.start()
    except (CaptureError, SinkError, ConfigError, OSError) as e:
        fail(str(e))
    assert sensor.pipeline is not None
    sensor.pipeline.add_listener(summary.add)
    env = dict(os.environ)
    env.update(sensor.client_environment(env))
    click.echo(f"oisp-sensor: capturing {shlex.join(command)} through {sensor.proxy_url}", err=True)
    try:
        relay = sensor.relay
        status = await _run_child(
            command, env, on_start=relay.attributor.hint if relay is not None else None
        )
    finally:
        await sensor.stop()
    click.echo(summary.render(sensor.db_path, sensor.jsonl_path), err=True)
    counts = sensor.counters.snapshot()
    if counts.get("relay.client_tls_rejections"):
        click.echo(
            f"  {counts['relay.client_tls_rejections']} connection(s) refused the sensor's"
            " certificate (a pinned or custom trust store); those hosts were then tunnelled"
            " without capture.",
            err=True,
        )
    for line in recording_report(counts, recorded_sinks(sensor)):
        click.echo(line, err=True)
    return status


async def _run_child(
    command: list[str], env: dict[str, str], on_start: Callable[[int], None] | None = None
) -> int:
    try:
        proc = await asyncio.create_subprocess_exec(*command, env=env)
    except FileNotFoundError:
        click.echo(f"oisp-sensor: command not found: {command[0]}", err=True)
        return 127
    except PermissionError:
        click.echo(f"oisp-sensor: permission denied: {command[0]}", err=True)
        return 126
    if on_start is not None:
        on_start(proc.pid)  # its connections are then attributed on the relay's fast path
    loop = asyncio.get_running_loop()
    handled: list[int] = []

    def forward(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    # Ctrl-C reaches the child from the terminal itself; we only survive it to flush.
    # Signals sent to us alone (kill, a supervisor) are passed on.
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            if sig == signal.SIGINT:
                loop.add_signal_handler(sig, lambda: None)
            else:
                loop.add_signal_handler(sig, functools.partial(forward, sig))
            handled.append(sig)
    try:
        code = await proc.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return 128 - code if code < 0 else code


@dataclass(slots=True)
class _Line:
    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usage_seen: int = 0
    cost: float = 0.0
    cost_seen: int = 0


class RunSummary:
    """Calls, tokens and cost per provider and model, from the ai.response events of a run."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], _Line] = {}
        self.tool_calls = 0
        self.connections = 0
        self.errors: list[str] = []

    def add(self, event: Event) -> None:
        if event.event_type == EventType.NETWORK_CONNECT:
            self.connections += 1
            return
        if event.event_type == EventType.AGENT_TOOL_CALL:
            self.tool_calls += 1
            return
        if event.event_type != EventType.AI_RESPONSE:
            return
        data = event.data
        model = (data.get("model") or {}).get("id") or "?"
        key = (provider_label(event) or "?", str(model))
        line = self.lines.setdefault(key, _Line())
        line.calls += 1
        if not data.get("success", False):
            line.failed += 1
            status = data.get("status_code")
            message = (data.get("error") or {}).get("message") or ""
            self.errors.append(f"{key[0]} {model}: {status or 'no response'} {message}".strip())
        usage = data.get("usage") or {}
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            line.usage_seen += 1
            line.input_tokens += int(usage.get("prompt_tokens") or 0)
            line.output_tokens += int(usage.get("completion_tokens") or 0)
        if isinstance(usage.get("total_cost_usd"), (int, float)):
            line.cost_seen += 1
            line.cost += float(usage["total_cost_usd"])

    @property
    def calls(self) -> int:
        return sum(line.calls for line in self.lines.values())

    def render(self, db_path: Path | None = None, jsonl_path: Path | None = None) -> str:
        where = ", ".join(str(p) for p in (db_path, jsonl_path) if p)
        if not self.lines:
            return (
                "oisp-sensor: no AI calls captured"
                + (f" ({self.connections} other connections seen)" if self.connections else "")
                + ". A program that ignores HTTPS_PROXY, or talks to a host oisp-sensor does"
                " not know (add it under [[providers]] in the config), is not captured."
            )
        rows = [("provider", "model", "calls", "input tok", "output tok", "cost")]
        for (provider, model), line in sorted(self.lines.items()):
            calls = f"{line.calls}" + (f" ({line.failed} failed)" if line.failed else "")
            tokens_in = f"{line.input_tokens:,}" if line.usage_seen else "-"
            tokens_out = f"{line.output_tokens:,}" if line.usage_seen else "-"
            cost = _money(line.cost) if line.cost_seen else "-"
            if line.cost_seen and line.cost_seen < line.calls:
                cost += " (partial)"
            rows.append((provider, model, calls, tokens_in, tokens_out, cost))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        plural = "s" if self.calls != 1 else ""
        out = [f"oisp-sensor: {self.calls} AI call{plural} captured"]
        out += [
            "  "
            + "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        if self.tool_calls:
            out.append(f"  tool calls requested by models: {self.tool_calls}")
        out += [f"  failed: {e}" for e in self.errors[:5]]
        if where:
            out.append(f"  events: {where}   (oisp-sensor show / analyze)")
        return "\n".join(out)


def _money(value: float) -> str:
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"
