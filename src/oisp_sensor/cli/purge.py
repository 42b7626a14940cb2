"""`oisp-sensor purge`: permanently delete captured events, by age, by process, or all.

Applies to the event store and to the JSONL files the sensor writes (the
configured `sinks.jsonl`, the running sensor's file, their rotations, and any
`--jsonl FILE` given). Deleted events are gone from the files' bytes, not merely
hidden: see `store.purge`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from oisp_sensor import runtime
from oisp_sensor.cli.common import fail
from oisp_sensor.cli.feedback import progress_bar
from oisp_sensor.cli.status import human_bytes
from oisp_sensor.config import Config
from oisp_sensor.errors import StoreError
from oisp_sensor.store import EventFilter, EventStore
from oisp_sensor.store.purge import purge_jsonl, purge_store, rotations
from oisp_sensor.store.query import count_matching
from oisp_sensor.store.timespec import parse_duration


def jsonl_targets(config: Config, given: tuple[Path, ...]) -> list[tuple[Path, bool]]:
    """(file, is_rotation) for every JSONL file the purge applies to, each once."""
    owned = [Path(p) for p in given]
    if config.sinks.jsonl:
        owned.append(Path(config.sinks.jsonl).expanduser())
    state = runtime.read()
    if state and state.jsonl_path:
        owned.append(Path(state.jsonl_path))
    seen: set[Path] = set()
    out: list[tuple[Path, bool]] = []
    for path in owned:
        for candidate, rotated in [(path, False), *((r, True) for r in rotations(path))]:
            key = candidate.resolve()
            if key not in seen and candidate.exists():
                seen.add(key)
                out.append((candidate, rotated))
    return out


@click.command()
@click.option(
    "--older-than",
    metavar="AGE",
    help="Delete events older than AGE: 30d, 12h, 2w (a bare number is days).",
)
@click.option(
    "--process",
    "processes",
    multiple=True,
    help="Delete events of this process (name, * wildcards, or pid; repeatable).",
)
@click.option("--all", "everything", is_flag=True, help="Delete every event.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Store to purge (default: configured).",
)
@click.option(
    "--jsonl",
    "jsonl_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also purge this JSONL file and its rotations (repeatable).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(
    obj: dict[str, Any],
    older_than: str | None,
    processes: tuple[str, ...],
    everything: bool,
    db: Path | None,
    jsonl_files: tuple[Path, ...],
    yes: bool,
) -> None:
    """Permanently delete captured events from the store and JSONL files."""
    config: Config = obj["config"]
    if everything and (older_than or processes):
        raise click.UsageError("--all deletes everything; do not combine it with filters")
    if not (everything or older_than or processes):
        raise click.UsageError("say what to delete: --older-than AGE, --process NAME, or --all")
    until_ns = None
    if older_than:
        try:
            until_ns = int((time.time() - parse_duration(older_than)) * 1e9)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--older-than") from None
    flt = EventFilter(processes=processes, until_ns=until_ns)

    state = runtime.read()
    db_path = db or (Path(state.db_path) if state and state.db_path else config.db_path)
    store: EventStore | None = None
    try:
        if db_path is not None and db_path.exists():
            store = EventStore(db_path, create=False)
        files = jsonl_targets(config, jsonl_files)
        if store is None and not files:
            click.echo("Nothing to purge: no event store and no JSONL files found.")
            return
        _describe(store, flt, files, everything, older_than, processes)
        if not yes:
            if not sys.stdin.isatty():
                fail("refusing to delete without confirmation: pass --yes", status=2)
            click.confirm("Delete permanently?", abort=True)
        if store is not None:
            with progress_bar("purging the store") as advance:
                done = purge_store(store, flt, progress=advance)
            click.echo(
                f"store {db_path}: removed {done.removed:,} events; "
                f"{human_bytes(done.size_before)} → {human_bytes(done.size_after)}"
            )
            if not done.wal_truncated:
                click.echo(
                    "  note: another program is reading the store; the removed events leave "
                    "its write-ahead log when it stops reading",
                    err=True,
                )
        for path, rotated in files:
            with progress_bar(f"purging {path.name}") as advance:
                result = purge_jsonl(path, flt, delete_if_empty=rotated, progress=advance)
            what = "deleted (emptied)" if result.deleted_file else f"{result.kept:,} kept"
            click.echo(f"jsonl {path}: removed {result.removed:,} events, {what}")
            if result.unreadable:
                click.echo(
                    f"  note: {result.unreadable} lines are not events and were left as they are",
                    err=True,
                )
    except StoreError as e:
        fail(str(e))
    finally:
        if store is not None:
            store.close()


def _describe(
    store: EventStore | None,
    flt: EventFilter,
    files: list[tuple[Path, bool]],
    everything: bool,
    older_than: str | None,
    processes: tuple[str, ...],
) -> None:
    if everything:
        what = "ALL events"
    else:
        parts = []
        if older_than:
            parts.append(f"older than {older_than}")
        if processes:
            parts.append(f"from process {' or '.join(processes)}")
        what = "events " + " and ".join(parts)
    click.echo(f"This permanently deletes {what} from:")
    if store is not None:
        click.echo(f"  store {store.name} ({count_matching(store, flt):,} matching events)")
    for path, _ in files:
        click.echo(f"  jsonl {path}")
