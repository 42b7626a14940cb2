"""Progress for long operations (big JSONL imports, reports over large stores, pruning).

A rich progress display on stderr when stderr is a terminal, nothing otherwise:
piped and scripted output stays clean, and stdout only ever carries results.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int, int], None]  # (done, total)
Step = Callable[[str], None]


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _console(console: Console | None) -> Console | None:
    if console is not None:
        return console
    return Console(stderr=True) if stderr_is_terminal() else None


@contextlib.contextmanager
def progress_bar(
    description: str, *, unit: str = "", console: Console | None = None
) -> Iterator[Advance]:
    """Yields `advance(done, total)`; a bar with ETA on a terminal, a no-op elsewhere."""
    out = _console(console)
    if out is None:
        yield lambda done, total: None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        yield advance


@contextlib.contextmanager
def spinner(description: str, *, console: Console | None = None) -> Iterator[Step]:
    """Yields `step(what)`; a spinner with elapsed time for work of unknown length."""
    out = _console(console)
    if out is None:
        yield lambda what: None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def step(what: str) -> None:
            progress.update(task, description=f"{description}: {what}")

        yield step
