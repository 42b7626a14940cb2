"""`oisp-sensor status`: is everything in place, and if not, what to do about it.

Checks the CA (present, trusted), the running sensor (from its state file: pid
alive, proxy/socket/web accepting connections, state fresh, nothing dropped) and
the store (opens, size, event count). Every problem is printed with its fix and
makes the exit status 1, so scripts and health checks can rely on it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import orjson

from oisp_sensor import runtime
from oisp_sensor.config import Config
from oisp_sensor.errors import SensorError, StoreError
from oisp_sensor.events import rfc3339
from oisp_sensor.store import EventStore

STALE_AFTER_S = 30.0  # sensors publish every few seconds


@dataclass(slots=True)
class Check:
    name: str
    ok: bool | None  # None: informational, neither good nor bad
    detail: str
    fix: str = ""


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


# --- the CA -----------------------------------------------------------------------------------


def check_ca() -> list[Check]:
    try:
        from oisp_sensor.capture.ca import LocalCA
        from oisp_sensor.capture.trust import (
            ENV_COMMAND,
            default_context_verification,
            detect_store,
        )
    except ImportError:  # a build without the relay
        return [Check("CA", None, "not available in this build")]
    try:
        ca = LocalCA.load()
    except SensorError as e:
        return [Check("CA", False, str(e), "oisp-sensor ca init --force && oisp-sensor ca install")]
    if ca is None:
        return [
            Check(
                "CA",
                False,
                "none yet (the relay needs it to see HTTPS traffic)",
                "oisp-sensor ca init && oisp-sensor ca install",
            )
        ]
    detail = f"{ca.cert_path}, valid until {ca.not_valid_after:%Y-%m-%d}"
    try:
        store = detect_store()
        trusted = store.is_trusted(ca.certificate)
        where = f"the {store.name} trust store"
    except SensorError:
        trusted, where = None, "the OS trust store"
    if trusted is None:
        verification = default_context_verification(ca)
        trusted, where = verification.ok, "Python's default trust store"
    if trusted:
        return [Check("CA", True, f"{detail}; trusted by {where}")]
    return [
        Check(
            "CA",
            False,
            f"{detail}; not trusted by {where}",
            "oisp-sensor ca install (as root), or use `oisp-sensor run -- COMMAND`, or "
            f"{ENV_COMMAND} in the shell that runs your app",
        )
    ]


# --- the running sensor -----------------------------------------------------------------------


def _tcp_ok(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _unix_ok(path: str, timeout: float = 1.0) -> bool:
    if not hasattr(socket, "AF_UNIX"):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _url_address(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


OVERLOAD_FIX = (
    "the sensor could not decode as fast as traffic arrived: the machine is overloaded; "
    "close other load or capture fewer apps"
)


def check_sensor(state: runtime.SensorState | None, now: float) -> list[Check]:
    if state is None:
        stale = runtime.read_any()
        detail = "not running"
        if stale is not None:
            detail += f" (the last one, pid {stale.pid}, stopped without cleaning up)"
        return [
            Check(
                "Sensor",
                False,
                detail,
                "start it: oisp-sensor record   (or try it with: oisp-sensor demo)",
            )
        ]
    up = _age(now - state.started_at)
    checks = [
        Check(
            "Sensor",
            True,
            f"{state.command} running, pid {state.pid}, up {up}"
            + (" — PAUSED (not recording)" if state.paused else ""),
        )
    ]
    if now - state.updated_at > STALE_AFTER_S:
        checks.append(
            Check(
                "  state",
                False,
                f"last update {_age(now - state.updated_at)} ago; the sensor may be hung",
                f"restart it (kill {state.pid}, then oisp-sensor record)",
            )
        )
    if state.proxy:
        ok = _tcp_ok(state.proxy)
        checks.append(
            Check(
                "  proxy",
                ok,
                f"{state.proxy} "
                + ("accepting connections" if ok else "not accepting connections"),
                "" if ok else f"restart the sensor; is another program using {state.proxy}?",
            )
        )
    if state.socket:
        ok = _unix_ok(state.socket)
        checks.append(
            Check(
                "  socket",
                ok,
                f"{state.socket} " + ("accepting connections" if ok else "not accepting"),
                "" if ok else "restart the sensor; check the socket file's permissions",
            )
        )
    if state.web_url:
        ok = _tcp_ok(_url_address(state.web_url))
        checks.append(
            Check(
                "  web",
                ok,
                f"{state.web_url} " + ("reachable" if ok else "not reachable"),
                "" if ok else "restart the sensor; is the port taken by another program?",
            )
        )
    checks.extend(check_drops(state.counters))
    return checks


# What an exporter (sinks/delivery.py) lost: buffer full, refused, retries run out, or
# still buffered when the sensor stopped.
_EXPORT_LOSS = re.compile(
    r"^sink\.(\w+)\.(buffer_full|rejected_\w+|gave_up_\w+|unsent_at_exit_\w+)$"
)
_SINK_LOSS = re.compile(r"^sink\.(\w+)\.(dropped|errors)$")
_EXPORT_MEANINGS = (
    ("buffer_full", "its buffer was full (destination slow or down)"),
    ("rejected_", "the destination refused them"),
    ("gave_up_", "retries ran out"),
    ("unsent_at_exit_", "still buffered when the sensor stopped"),
)
# Sinks the user reads their events from, by the name their runner counts under.
_SINK_LABELS = {"store": "the store", "jsonl": "the JSONL file"}
# Views, not records: what they skip is still in the store and the JSONL file.
_VIEW_LOSSES = ("sink.live.dropped", "sink.live.errors", "web.live_dropped")


@dataclass(frozen=True, slots=True)
class Loss:
    """One kind of loss, in words: what was lost, and whether anything recorded is missing."""

    counters: tuple[str, ...]
    problem: bool  # False: a view skipped updates, or capture was paused on purpose
    text: str
    fix: str = ""


def describe_losses(counters: dict[str, int]) -> list[Loss]:
    """Every loss the counters show, worded for a user: what it means, not just a count.

    A sink's `dropped` means events that sink never received (its queue was full), so
    its records lack them; the live feed's and a slow tab's are only a view skipping
    updates; captured chunks dropped before decoding leave calls recorded incomplete.
    """
    total = counters.get("events.total", 0)
    out: list[Loss] = []
    queue = counters.get("capture.dropped", 0)
    handoff = counters.get("capture.relay_dropped", 0)
    if queue or handoff:
        where = []
        if queue:
            where.append(f"{queue:,} at the decoder's queue (capture.dropped)")
        if handoff:
            where.append(f"{handoff:,} in the relay's hand-off (capture.relay_dropped)")
        consequences = []
        if incomplete := counters.get("capture.incomplete_exchanges", 0):
            consequences.append(f"{incomplete:,} calls were recorded incomplete (flagged partial)")
        if lost := counters.get("capture.gap_connections", 0):
            consequences.append(f"later calls on {lost:,} connections were not recorded")
        text = (
            f"{queue + handoff:,} captured chunks were dropped because the sensor fell behind "
            f"({', '.join(where)})"
        )
        if consequences:
            text += ": " + "; ".join(consequences)
        names = tuple(n for n in ("capture.dropped", "capture.relay_dropped") if counters.get(n))
        out.append(Loss(names, True, text, OVERLOAD_FIX))
    for name, n in sorted(counters.items()):
        if not n or name in _VIEW_LOSSES:
            continue
        if m := _SINK_LOSS.match(name):
            sink, kind = m.groups()
            label = _SINK_LABELS.get(sink, f"the {sink} exporter")
            if kind == "dropped":
                text = f"{label} missed {n:,} of {total:,} events: its queue was full ({name})"
                fix = (
                    f"the {sink} sink could not keep up and its queue overflowed: check the disk "
                    f"or the {sink} destination, and its errors in the sensor's log"
                )
            else:
                text = f"{label}: {n:,} failed writes ({name}); see the sensor's log"
                fix = f"see the {sink} sink's errors in the sensor's log (disk full? permissions?)"
            out.append(Loss((name,), True, text, fix))
        elif m := _EXPORT_LOSS.match(name):
            sink, kind = m.groups()
            unit, what = "events", ""
            for prefix, meaning in _EXPORT_MEANINGS:
                if kind.startswith(prefix):
                    unit, what = kind[len(prefix) :] or unit, meaning
            out.append(
                Loss(
                    (name,),
                    True,
                    f"the {sink} exporter lost {n:,} {unit}: {what} ({name})",
                    f"check the {sink} destination (reachable? accepting?) and the sensor's log",
                )
            )
    view = sum(counters.get(k, 0) for k in _VIEW_LOSSES)
    if view:
        names = tuple(k for k in _VIEW_LOSSES if counters.get(k))
        out.append(
            Loss(
                names,
                False,
                f"the dashboard's live view skipped {view:,} updates (a slow tab or browser); "
                f"nothing recorded is missing",
            )
        )
    if paused := counters.get("events.paused_dropped", 0):
        out.append(
            Loss(("events.paused_dropped",), False, f"{paused:,} events not recorded while paused")
        )
    return out


def check_drops(counters: dict[str, int]) -> list[Check]:
    total = counters.get("events.total", 0)
    losses = describe_losses(counters)
    problems = [loss for loss in losses if loss.problem]
    notes = "; ".join(loss.text for loss in losses if not loss.problem)
    if not problems:
        detail = f"{total:,} events, nothing dropped"
        if notes:
            detail += f" ({notes})"
        return [Check("  drops", True, detail)]
    out = [Check("  drops", False, loss.text, loss.fix) for loss in problems]
    if notes:
        out.append(Check("  drops", None, notes))
    return out


# --- the store --------------------------------------------------------------------------------


def check_store(path: Path | None, retention_days: float) -> tuple[list[Check], dict[str, Any]]:
    if path is None:
        return [Check("Store", None, "disabled (--no-db / sinks.no_db)")], {}
    if not path.exists():
        return [Check("Store", None, f"{path}: no events yet (created when the sensor starts)")], {
            "path": str(path)
        }
    try:
        with EventStore(path, create=False, busy_timeout_ms=2_000) as store:
            count = store.count()
            oldest, newest = store.conn.execute(
                "SELECT min(ts_ns), max(ts_ns) FROM events"
            ).fetchone()
            size = store.size_bytes()
    except StoreError as e:
        return [Check("Store", False, str(e), f"move {path} away, or pass --db PATH")], {
            "path": str(path)
        }
    facts: dict[str, Any] = {
        "path": str(path),
        "events": count,
        "size_bytes": size,
        "oldest": rfc3339(oldest) if oldest else None,
        "newest": rfc3339(newest) if newest else None,
        "retention_days": retention_days,
    }
    detail = f"{path}: {count:,} events, {human_bytes(size)}, kept {retention_days:g} days"
    if oldest:
        detail += f", oldest {rfc3339(oldest)[:10]}"
    return [Check("Store", True, detail)], facts


# --- the command ------------------------------------------------------------------------------


@click.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store to check (default: the running sensor's, else the configured one).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: dict[str, Any], db: Path | None, as_json: bool) -> None:
    """Is the sensor set up and running? Exit status 1, with fixes, when something is wrong."""
    config: Config = obj["config"]
    now = time.time()
    state = runtime.read()
    checks = check_ca()
    checks += check_sensor(state, now)
    path = db or (Path(state.db_path) if state and state.db_path else config.db_path)
    store_checks, store_facts = check_store(path, config.retention.days)
    checks += store_checks
    if state and state.jsonl_path:
        with contextlib.suppress(OSError):
            size = Path(state.jsonl_path).stat().st_size
            checks.append(Check("JSONL", True, f"{state.jsonl_path}: {human_bytes(size)}"))
    problems = [c for c in checks if c.ok is False]
    if as_json:
        out = {
            "ok": not problems,
            "checks": [asdict(c) for c in checks],
            "sensor": asdict(state) if state else None,
            "store": store_facts,
        }
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print(checks)
    if problems:
        sys.exit(1)


def _print(checks: list[Check]) -> None:
    tty = sys.stdout.isatty()
    marks = {True: "✓", False: "✗", None: "·"} if tty else {True: "ok", False: "!!", None: "--"}
    colours = {True: "green", False: "red", None: "bright_black"}
    for c in checks:
        mark = marks[c.ok]
        if tty:
            mark = click.style(mark, fg=colours[c.ok], bold=c.ok is False)
        click.echo(f"{mark} {c.name:<9} {c.detail}")
        if c.fix:
            click.echo(f"  {'':<9} fix: {c.fix}")
    problems = sum(1 for c in checks if c.ok is False)
    if problems:
        click.echo(f"{problems} problem{'s' if problems > 1 else ''} found.")
