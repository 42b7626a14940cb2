"""`oisp-sensor show`: events as one readable line each, or as the events themselves.

    2026-01-01 14:30:16.345  ai.response  python3[4242]  openai/gpt-4o-mini  50→10 tok
        $0.000014  830ms  200  It is 18C and sunny…        (all on one line)

Colour on a terminal, plain text when piped; `--json` writes the stored events,
one per line (JSONL), for jq or another tool. `--follow` keeps printing new
events as they arrive, from a JSONL file (like tail -F) or from the store.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click
import orjson
from rich.console import Console
from rich.text import Text

from oisp_sensor.cli.common import fail
from oisp_sensor.cli.sources import (
    Source,
    db_option,
    filter_options,
    open_source,
    report_bad_lines,
)
from oisp_sensor.config import Config
from oisp_sensor.errors import StoreError
from oisp_sensor.events import provider_label
from oisp_sensor.store import EventFilter, select_events, select_new
from oisp_sensor.store.query import count_matching

TYPE_STYLES = {
    "ai.request": "cyan",
    "ai.response": "green",
    "ai.streaming_chunk": "dim green",
    "agent.tool_call": "magenta",
    "agent.tool_result": "magenta",
    "network.connect": "blue",
}
PLAIN_SNIPPET = 120


# --- one line per event -----------------------------------------------------------------------


def _text_of(value: Any) -> str:
    """Readable text from content that may be a string, parts, or a redaction marker."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("text", "content", "redacted", "summary"):
            if key in value:
                return _text_of(value[key])
        return orjson.dumps(value).decode()
    return str(value)


def _snippet(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    kind = event.get("event_type")
    if kind == "ai.request":
        messages = data.get("messages") or []
        if messages and isinstance(messages[-1], dict):
            last = messages[-1]
            return f"{last.get('role', '?')}: {_text_of(last.get('content'))}"
        if data.get("messages_count"):
            return f"{data['messages_count']} messages"
        return ""
    if kind == "ai.response":
        error = data.get("error")
        if isinstance(error, dict) and (error.get("message") or error.get("type")):
            return f"error: {error.get('message') or error.get('type')}"
        for choice in data.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            text = _text_of((message or {}).get("content"))
            if text:
                return text
        calls = data.get("tool_calls") or []
        names = [c.get("name", "?") for c in calls if isinstance(c, dict)]
        return f"→ tools: {', '.join(names)}" if names else ""
    if kind == "agent.tool_call":
        tool = (data.get("tool") or {}).get("name", "?")
        args = data.get("arguments")
        return f"{tool}({orjson.dumps(args).decode() if args else ''})"
    if kind == "agent.tool_result":
        tool = (data.get("tool") or {}).get("name") or data.get("call_id", "?")
        return f"{tool} → {_text_of(data.get('result'))}"
    if kind == "network.connect":
        dest = data.get("dest") or {}
        return f"{dest.get('domain') or dest.get('ip', '?')}:{dest.get('port', '?')}"
    return ""


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def _usd(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _when(ts: str) -> str:
    try:
        local = datetime.fromisoformat(ts).astimezone()
    except ValueError:
        return ts
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def format_event(event: dict[str, Any], *, width: int | None = None) -> Text:
    """One event as a line of styled text; `width` truncates it to fit a terminal."""
    data = event.get("data") or {}
    kind = str(event.get("event_type", "?"))
    process = event.get("process") or {}
    usage = data.get("usage") or {}
    failed = data.get("success") is False
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(_when(str(event.get("ts", ""))), "dim")
    line.append("  ")
    line.append(f"{kind:<17}", "bold red" if failed else TYPE_STYLES.get(kind, ""))
    who = process.get("name") or "?"
    if process.get("pid") is not None:
        who += f"[{process['pid']}]"
    line.append(f"  {who:<20}", "bold")
    provider = provider_label(event)
    model = (data.get("model") or {}).get("id") or (data.get("model") or {}).get("name")
    if provider or model:
        line.append(f"  {'/'.join(p for p in (provider, model) if p)}", "cyan")
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        line.append(
            f"  {usage.get('prompt_tokens', '?')}→{usage.get('completion_tokens', '?')} tok"
        )
    if cost := _usd(usage.get("total_cost_usd")):
        line.append(f"  {cost}", "yellow")
    took = data.get("latency_ms", data.get("duration_ms"))
    if latency := _ms(took):
        line.append(f"  {latency}")
    if ttft := _ms(data.get("time_to_first_token_ms")):
        line.append(f" (ttft {ttft})", "dim")
    if isinstance(data.get("status_code"), int):
        line.append(f"  {data['status_code']}", "bold red" if failed else "green")
    elif kind == "agent.tool_result" and isinstance(data.get("success"), bool):
        line.append("  failed" if failed else "  ok", "bold red" if failed else "green")
    if event.get("confidence", {}).get("completeness") == "partial":
        line.append("  partial", "yellow")
    snippet = " ".join(_snippet(event).split())
    if snippet:
        room = (width - len(line) - 2) if width else PLAIN_SNIPPET
        if room > 8:
            if len(snippet) > room:
                snippet = snippet[: room - 1] + "…"
            line.append("  " + snippet)
    if width:
        line.truncate(width, overflow="ellipsis")
    return line


# --- output -----------------------------------------------------------------------------------


class Printer:
    """Writes events as JSONL or readable lines, styled only on a terminal."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.tty = sys.stdout.isatty()
        self.console = Console(highlight=False, soft_wrap=True) if self.tty else None

    def write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        out = sys.stdout
        if self.as_json:
            out.flush()
            sys.stdout.buffer.write(b"".join(orjson.dumps(e) + b"\n" for e in events))
            sys.stdout.buffer.flush()
        elif self.console is not None:
            for event in events:
                self.console.print(format_event(event, width=self.console.width))
        else:
            out.write("".join(format_event(e).plain + "\n" for e in events))
            out.flush()


def _follow(
    source: Source, flt: EventFilter, printer: Printer, after: int, interval: float
) -> None:
    """Poll for new events until interrupted (Ctrl-C or SIGTERM end it quietly)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    last = after
    try:
        while True:
            if source.follower is not None:
                source.follower.poll()
                if source.loaded:
                    report_bad_lines(source.loaded)
            newest = source.store.max_id()
            if newest < last:  # the store was purged: ids start over
                last = 0
            if newest > last:
                printer.write([s.event for s in select_new(source.store, flt, last, newest)])
                last = newest
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _quiet_exit_on_broken_pipe() -> None:
    """`show | head` closes the pipe early: stop quietly, as other Unix tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@db_option
@filter_options
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show the most recent N matching events (0 = all).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="Print the events themselves, one per line.")
@click.option("--interval", type=float, default=0.5, hidden=True, help="Follow poll period (s).")
@click.pass_obj
def show(
    obj: dict[str, Any],
    file: Path | None,
    db: Path | None,
    flt: EventFilter,
    limit: int,
    follow: bool,
    as_json: bool,
    interval: float,
) -> None:
    """Show captured events from a JSONL FILE or the event store."""
    config: Config = obj["config"]
    source = open_source(config, file, db)
    printer = Printer(as_json)
    try:
        newest = source.store.max_id()
        shown = select_events(source.store, flt, limit=limit or None, up_to_id=newest)
        printer.write([s.event for s in shown])
        if limit and len(shown) == limit:
            total = count_matching(source.store, flt)
            if total > limit:
                click.echo(
                    f"oisp-sensor: showed the last {limit} of {total} matching events "
                    f"(--limit 0 for all)",
                    err=True,
                )
        elif not shown and not follow:
            click.echo(f"oisp-sensor: no matching events in {source.label}", err=True)
        if follow:
            _follow(source, flt, printer, newest, interval)
    except StoreError as e:
        fail(str(e))
    except BrokenPipeError:
        _quiet_exit_on_broken_pipe()
    finally:
        source.close()
