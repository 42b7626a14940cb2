"""JSONL event files as a store: loading them, and following one as it grows.

`show` and `analyze` answer questions about a JSONL file by loading it into an
in-memory store and running the very same queries as on the SQLite store, so the
two can never disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from oisp_sensor.errors import StoreError
from oisp_sensor.store.columns import NotAnEvent, Row, row_from_dict
from oisp_sensor.store.db import EventStore, Progress

BATCH = 5_000


@dataclass(slots=True)
class LoadResult:
    lines: int = 0
    events: int = 0
    bad: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, for a warning

    def note(self, where: str, problem: str) -> None:
        self.bad += 1
        if len(self.problems) < 5:
            self.problems.append(f"{where}: {problem}")


def parse_line(line: bytes) -> tuple[dict[str, Any], Row]:
    """One JSONL line -> (event, its columns); ValueError saying what is wrong with it."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    try:
        return event, row_from_dict(event)
    except NotAnEvent as e:
        raise ValueError(str(e)) from None


def load_jsonl(
    path: Path,
    store: EventStore,
    *,
    bodies: bool = True,
    progress: Progress | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Add every event in the file to `store`; bad lines are counted and skipped."""
    result = result or LoadResult()
    try:
        f = path.open("rb")
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror}") from e
    with f:
        total = os.fstat(f.fileno()).st_size
        read_lines(f, str(path), store, result, bodies=bodies, progress=progress, total=total)
    return result


def read_lines(
    f: IO[bytes],
    name: str,
    store: EventStore,
    result: LoadResult,
    *,
    bodies: bool = True,
    progress: Progress | None = None,
    total: int = 0,
) -> None:
    """Load complete lines from `f` from where it is positioned, to its end."""
    batch: list[tuple[Row, str | None]] = []
    done = 0
    for line in f:
        done += len(line)
        if not line.endswith(b"\n"):
            # A line still being written: leave it for the next read (tail -f semantics).
            f.seek(-len(line), os.SEEK_CUR)
            break
        result.lines += 1
        if not line.strip():
            continue
        try:
            _, row = parse_line(line)
        except ValueError as e:
            result.note(f"{name}:{result.lines}", str(e))
            continue
        batch.append((row, line.decode("utf-8", "replace").strip() if bodies else None))
        if len(batch) >= BATCH:
            result.events += store.write_rows(batch)
            batch.clear()
            if progress:
                progress(done, total)
    if batch:
        result.events += store.write_rows(batch)
    if progress:
        progress(total or done, total or done)


class JsonlFollower:
    """Reads a growing JSONL file into a store, like tail -F: survives truncation and rotation."""

    def __init__(self, path: Path, store: EventStore, result: LoadResult) -> None:
        self.path = path
        self.store = store
        self.result = result
        self._file: IO[bytes] | None = None
        self._inode: int | None = None

    def poll(self, progress: Progress | None = None) -> None:
        """Load whatever complete lines were appended since the last poll."""
        self._reopen_if_replaced()
        if self._file is not None:
            total = os.fstat(self._file.fileno()).st_size - self._file.tell()
            read_lines(
                self._file, str(self.path), self.store, self.result, progress=progress, total=total
            )

    def _reopen_if_replaced(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # rotated away, the new one not created yet
        if self._file is not None and st.st_ino == self._inode:
            if st.st_size < self._file.tell():  # truncated in place: start over
                self._file.seek(0)
            return
        if self._file is not None:
            # Rotated: finish the old file's tail first, then move to the new one.
            read_lines(self._file, str(self.path), self.store, self.result)
            self._file.close()
        self._file = self.path.open("rb")
        self._inode = st.st_ino

    def start_at_end(self) -> None:
        self._reopen_if_replaced()
        if self._file is not None:
            self._file.seek(0, os.SEEK_END)

    def start_at_beginning(self) -> None:
        self._reopen_if_replaced()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
