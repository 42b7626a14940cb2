"""`oisp-sensor analyze`: reports over a JSONL file or the store, as text, JSON or CSV.

The reports themselves live in `store.reports`; this module only picks the
source and renders. JSON and CSV carry raw values (UTC RFC 3339 times, USD,
milliseconds, rates as fractions) for scripts; text is formatted for people.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from oisp_sensor.cli.common import fail
from oisp_sensor.cli.feedback import spinner
from oisp_sensor.cli.sources import db_option, filter_options, open_source
from oisp_sensor.config import Config
from oisp_sensor.errors import StoreError
from oisp_sensor.events import rfc3339
from oisp_sensor.store.query import EventFilter
from oisp_sensor.store.reports import REPORT_NAMES, Column, Report, run_report


def machine_value(kind: str, value: Any) -> Any:
    """The value as JSON/CSV carry it: stable rounding, times as RFC 3339 UTC."""
    if value is None:
        return None
    if kind == "ts":
        return rfc3339(int(value))
    if kind == "usd":
        return round(float(value), 10)
    if kind in ("ms", "number"):
        return round(float(value), 3)
    if kind == "pct":
        return round(float(value), 6)
    return value


def human_value(kind: str, value: Any) -> str:
    if value is None:
        return "—"
    if kind == "ts":
        when = datetime.fromtimestamp(value / 1e9, tz=UTC).astimezone()
        return when.strftime("%Y-%m-%d %H:%M:%S")
    if kind == "usd":
        return (
            f"${value:,.2f}"
            if value >= 100
            else f"${value:.4f}"
            if value >= 0.01
            else f"${value:.6f}"
        )
    if kind == "ms":
        return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:.0f} ms"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "int":
        return f"{value:,}"
    return str(value)


def _kind(column: Column, row: dict[str, Any]) -> str:
    return str(row.get("kind", "text")) if column.kind == "auto" else column.kind


def to_json(report: Report) -> bytes:
    rows = [
        {c.key: machine_value(_kind(c, row), row.get(c.key)) for c in report.columns}
        for row in report.rows
    ]
    out: dict[str, Any] = {"report": report.name, "rows": rows}
    if report.totals is not None:
        kinds = {c.key: c.kind for c in report.columns}
        out["totals"] = {k: machine_value(kinds.get(k, "int"), v) for k, v in report.totals.items()}
    out["total_rows"] = report.total_rows
    out["notes"] = report.notes
    return orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10f}".rstrip("0").rstrip(".") if value else "0"  # never 1e-05
    return value


def write_csv(report: Report) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([c.key for c in report.columns])
    for row in report.rows:
        values = (machine_value(_kind(c, row), row.get(c.key)) for c in report.columns)
        writer.writerow(_csv_cell(v) for v in values)


def write_text(report: Report) -> None:
    tty = sys.stdout.isatty()
    console = Console(
        highlight=False,
        force_terminal=tty,
        no_color=not tty,
        width=None if tty else 10_000,  # piped: never wrap cells
    )
    table = Table(
        title=report.title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD if tty else box.ASCII2,
        header_style="bold cyan" if tty else "",
    )
    summary = report.name == "summary"
    columns = [Column("label", "Metric"), report.columns[1]] if summary else report.columns
    for column in columns:
        numeric = column.kind in ("int", "usd", "ms", "pct", "number", "auto")
        table.add_column(column.label, justify="right" if numeric else "left")
    for row in report.rows:
        table.add_row(*(human_value(_kind(c, row), row.get(c.key)) for c in columns))
    if report.totals is not None:
        table.add_section()
        table.add_row(
            *(
                "Total"
                if i == 0
                else human_value(c.kind, report.totals[c.key])
                if c.key in report.totals
                else ""
                for i, c in enumerate(columns)
            ),
            style="bold",
        )
    if not report.rows:
        console.print(f"{report.title}: nothing to report")
    else:
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", style="dim")


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@db_option
@click.option(
    "--report",
    "-r",
    "report_name",
    type=click.Choice(REPORT_NAMES),
    default="summary",
    show_default=True,
    help="What to report.",
)
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
)
@filter_options
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=None,
    help="At most N rows (default: all; 50 for conversations as text).",
)
@click.pass_obj
def analyze(
    obj: dict[str, Any],
    file: Path | None,
    db: Path | None,
    report_name: str,
    fmt: str,
    flt: EventFilter,
    limit: int | None,
) -> None:
    """Reports over captured events: costs, providers, models, processes, tools, conversations."""
    config: Config = obj["config"]
    if limit is None and report_name == "conversations" and fmt == "text":
        limit = 50
    source = open_source(config, file, db, bodies=False)
    try:
        with spinner(f"analyzing {source.label}") as step:
            report = run_report(report_name, source.store, flt, limit=limit or None, step=step)
    except StoreError as e:
        fail(str(e))
    finally:
        source.close()
    if fmt == "json":
        sys.stdout.buffer.write(to_json(report))
    elif fmt == "csv":
        write_csv(report)
    else:
        write_text(report)
