"""Where `show` and `analyze` read events from: a JSONL file, a store file, or the store.

`FILE` may be JSONL (loaded into an in-memory store, so every query is the same
SQL) or an SQLite store (recognised by its header, whatever its name); without
`FILE`, `--db PATH` or the configured store is used.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from oisp_sensor.cli.common import fail
from oisp_sensor.cli.feedback import progress_bar
from oisp_sensor.config import Config
from oisp_sensor.errors import StoreError
from oisp_sensor.store import EventStore
from oisp_sensor.store.jsonl import JsonlFollower, LoadResult, load_jsonl
from oisp_sensor.store.query import EventFilter
from oisp_sensor.store.timespec import parse_when

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
IN_MEMORY_MAX_BYTES = 256 * 1024 * 1024  # larger JSONL files are worked on from disk

F = TypeVar("F", bound=Callable[..., Any])


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


@dataclass
class Source:
    store: EventStore
    label: str  # for messages: the file or store it came from
    follower: JsonlFollower | None = None  # set for JSONL files
    loaded: LoadResult | None = None
    scratch: Path | None = None  # a temporary folder holding the working copy

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()
        self.store.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Event store to read (default: the configured store).",
    )(fn)


_FILTER_ARGUMENTS = ("types", "processes", "providers", "models", "since", "until")


def filter_options(fn: F) -> F:
    """--type/--process/--provider/--model/--since/--until, shared by show and analyze and
    handed to the command as one `flt: EventFilter` argument."""

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _FILTER_ARGUMENTS}
        return fn(*args, flt=build_filter(**given), **kwargs)

    options = [
        click.option(
            "--type",
            "types",
            multiple=True,
            help="Event type, or a prefix such as 'ai' or 'agent.*' (repeatable, or a,b).",
        ),
        click.option(
            "--process", "processes", multiple=True, help="Process name (* wildcards) or pid."
        ),
        click.option("--provider", "providers", multiple=True, help="Provider, e.g. openai."),
        click.option("--model", "models", multiple=True, help="Model id (* wildcards)."),
        click.option("--since", help="Only events from then on: 1h, 30m, 2d, today, 2026-01-01…"),
        click.option("--until", help="Only events before then (same forms as --since)."),
    ]
    for option in reversed(options):
        command = option(command)
    return cast(F, command)


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def build_filter(
    types: tuple[str, ...],
    processes: tuple[str, ...],
    providers: tuple[str, ...],
    models: tuple[str, ...],
    since: str | None,
    until: str | None,
) -> EventFilter:
    try:
        since_ns = parse_when(since) if since else None
        until_ns = parse_when(until) if until else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since/--until") from None
    return EventFilter(
        types=_split(types),
        processes=_split(processes),
        providers=_split(providers),
        models=_split(models),
        since_ns=since_ns,
        until_ns=until_ns,
    )


def open_source(
    config: Config, file: Path | None, db: Path | None, *, bodies: bool = True
) -> Source:
    """Open the events to read; exits with a clear message when there are none to open."""
    if file is not None and db is not None:
        fail("give either FILE or --db, not both")
    try:
        if file is not None:
            if not file.exists():
                fail(f"{file}: no such file")
            if is_sqlite(file):
                return Source(EventStore(file, create=False), str(file))
            return _load_jsonl(file, bodies=bodies)
        path = db or config.db_path
        if path is None:
            fail(
                "the event store is disabled (--no-db or sinks.no_db in the config): "
                "pass FILE.jsonl or --db PATH"
            )
        return Source(EventStore(path, create=False), str(path))
    except StoreError as e:
        fail(str(e))


def _load_jsonl(path: Path, *, bodies: bool) -> Source:
    """Into a working store; with bodies (show) it can follow the file, without (analyze) it
    is lean. Big files go to a private temporary file rather than memory."""
    scratch = None
    if bodies and path.stat().st_size > IN_MEMORY_MAX_BYTES:
        scratch = Path(tempfile.mkdtemp(prefix="oisp-show-"))  # 0700, like the data dir
        store = EventStore(scratch / "events.db")
    else:
        store = EventStore.memory()
    result = LoadResult()
    follower: JsonlFollower | None = None
    with progress_bar(f"reading {path.name}") as advance:
        if bodies:
            follower = JsonlFollower(path, store, result)
            follower.start_at_beginning()
            follower.poll(progress=advance)
        else:
            load_jsonl(path, store, bodies=False, progress=advance, result=result)
    report_bad_lines(result)
    return Source(store, str(path), follower, result, scratch)


def report_bad_lines(result: LoadResult) -> None:
    if result.bad:
        for problem in result.problems:
            click.echo(f"oisp-sensor: skipped {problem}", err=True)
        if result.bad > len(result.problems):
            click.echo(f"oisp-sensor: skipped {result.bad} bad lines in all", err=True)
        result.bad = 0
        result.problems.clear()
