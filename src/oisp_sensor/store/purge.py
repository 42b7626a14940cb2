"""Deleting events for real: from the store's file bytes and from JSONL files.

A DELETE alone leaves the text in free pages and in the WAL. So the store is
purged with secure_delete on, then VACUUMed (every page rewritten) and its WAL
checkpointed and truncated. JSONL files are rewritten in place (same inode,
so a running sensor's open file stays valid) and truncated to their new length.

Which events match is decided by the same SQL filter for both, so a purge
removes the same events from a file as from the store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oisp_sensor.errors import StoreError
from oisp_sensor.store.columns import Row
from oisp_sensor.store.db import EventStore, Progress
from oisp_sensor.store.jsonl import parse_line
from oisp_sensor.store.query import EventFilter

CHUNK_BYTES = 1 << 20


@dataclass(slots=True)
class StorePurge:
    removed: int = 0
    size_before: int = 0
    size_after: int = 0
    wal_truncated: bool = True


def purge_store(
    store: EventStore, flt: EventFilter, *, progress: Progress | None = None, retries: int = 20
) -> StorePurge:
    """Delete matching events (all when `flt` is empty) so that their bytes are gone."""
    result = StorePurge(size_before=store.size_bytes())
    where, params = flt.where()
    with store.errors():
        store.conn.execute("PRAGMA secure_delete = ON")  # freed cells are zeroed
    result.removed = store.delete_where(where, params, progress=progress)
    store.vacuum()
    # A reader (e.g. `show --follow`) can hold the WAL open for a moment; wait for it.
    for _ in range(retries):
        if store.checkpoint():
            break
        time.sleep(0.1)
    else:
        result.wal_truncated = False
    result.size_after = store.size_bytes()
    return result


def rotations(path: Path) -> list[Path]:
    """`FILE.1 … FILE.N`, the rotated files of a JSONL sink, oldest last."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    if not path.parent.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in path.parent.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


@dataclass(slots=True)
class FilePurge:
    path: Path
    kept: int = 0
    removed: int = 0
    unreadable: int = 0  # lines that are not events: kept, unless everything goes
    deleted_file: bool = False


class _Matcher:
    """Decides which lines of a batch match the filter, with the store's own SQL."""

    def __init__(self, flt: EventFilter) -> None:
        self.everything = flt.empty
        self.store = EventStore.memory()
        self.where, self.params = flt.where()

    def drop(self, lines: list[bytes], result: FilePurge) -> list[bool]:
        if self.everything:
            return [True] * len(lines)
        rows: list[tuple[Row, str | None]] = []
        ids: list[str | None] = []
        for line in lines:
            if not line.strip():
                ids.append(None)
                continue
            try:
                _, row = parse_line(line)
            except ValueError:
                result.unreadable += 1
                ids.append(None)
                continue
            rows.append((row, None))
            ids.append(row[0])
        if not rows:
            return [False] * len(lines)
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM events")
        self.store.write_rows(rows)
        with self.store.errors():
            matched = {
                r[0]
                for r in self.store.conn.execute(
                    f"SELECT event_id FROM events WHERE {self.where}", self.params
                )
            }
        return [i is not None and i in matched for i in ids]

    def close(self) -> None:
        self.store.close()


def purge_jsonl(
    path: Path,
    flt: EventFilter,
    *,
    delete_if_empty: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FilePurge:
    """Remove matching lines from `path` in place (all lines when `flt` is empty).

    `delete_if_empty` is for rotated files: nobody writes to them any more.
    """
    result = FilePurge(path)
    matcher = _Matcher(flt)
    try:
        _rewrite_in_place(path, matcher, result, progress)
        if delete_if_empty and path.stat().st_size == 0:
            path.unlink()
            result.deleted_file = True
    except OSError as e:
        raise StoreError(f"cannot rewrite {path}: {e.strerror}") from e
    finally:
        matcher.close()
    return result


def _rewrite_in_place(
    path: Path,
    matcher: _Matcher,
    result: FilePurge,
    progress: Callable[[int, int], None] | None,
) -> None:
    # Only lines are removed, so the write position never passes the read position:
    # the file can be filtered in place, in one pass, in bounded memory. Lines a
    # running sensor appends meanwhile are read and kept too, up to the truncate.
    with path.open("r+b") as f:
        total = os.fstat(f.fileno()).st_size
        read_pos = write_pos = 0
        pending = b""
        while True:
            f.seek(read_pos)
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                break
            read_pos += len(chunk)
            pieces = (pending + chunk).split(b"\n")
            pending = pieces.pop()
            lines = [p + b"\n" for p in pieces]
            decisions = matcher.drop(lines, result)
            kept = [line for line, drop in zip(lines, decisions, strict=True) if not drop]
            result.removed += sum(
                1 for line, drop in zip(lines, decisions, strict=True) if drop and line.strip()
            )
            result.kept += sum(1 for line in kept if line.strip())
            keep = b"".join(kept)
            f.seek(write_pos)
            f.write(keep)
            write_pos += len(keep)
            if progress:
                progress(read_pos, max(total, read_pos))
        if pending and not matcher.everything:  # a line still being written: keep it
            f.seek(write_pos)
            f.write(pending)
            write_pos += len(pending)
        f.truncate(write_pos)
        f.flush()
        os.fsync(f.fileno())
