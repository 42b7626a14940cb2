"""`EventStore`: one SQLite connection to an event store, with errors a user can act on.

WAL mode with synchronous=NORMAL: a writer never blocks readers (`show --follow`
reads while `record` writes), and a crash or kill -9 loses at most the last
uncommitted batch, never the file. Every sqlite3 error leaving this class is a
`StoreError` that names the file and says what to do.

A connection belongs to the thread that opened it (sqlite3's rule); the store
sink opens its own in its writer thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from oisp_sensor.errors import StoreError
from oisp_sensor.events import Event
from oisp_sensor.paths import data_dir, ensure_private_dir
from oisp_sensor.store.columns import COLUMNS, Row, row_from_dict
from oisp_sensor.store.schema import SCHEMA_VERSION, migrate

MEMORY = ":memory:"
DELETE_CHUNK = 5_000  # events per delete transaction: milliseconds of holding the write lock

Progress = Callable[[int, int], None]  # (done, total)

_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events (id, {', '.join(COLUMNS)}) "
    f"VALUES (?, {', '.join('?' for _ in COLUMNS)})"
)
# Bodies under the ids just given to their rows (replacing a body orphaned by an old crash)...
_INSERT_BODY = "INSERT OR REPLACE INTO bodies (id, body) VALUES (?, ?)"
# ...or, when some events were already stored, by event_id: a duplicate keeps its own.
_INSERT_BODY_BY_EVENT_ID = (
    "INSERT OR IGNORE INTO bodies (id, body) SELECT id, ? FROM events WHERE event_id = ?"
)


def describe_error(name: str, e: sqlite3.Error) -> str:
    """What went wrong with store `name`, in words that say what to do about it."""
    code = getattr(e, "sqlite_errorname", "")
    msg = str(e)
    if code == "SQLITE_NOTADB" or "not a database" in msg:
        return (
            f"{name} is not a SQLite database ({msg}): move it away "
            f"(a new store is created in its place) or pass --db PATH to use another file"
        )
    if code.startswith("SQLITE_CORRUPT") or "malformed" in msg:
        return (
            f"{name} is damaged ({msg}): move it away (a new store is created in its place) "
            f"or pass --db PATH to use another file"
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg:
        return (
            f"{name} is locked by another process ({msg}): wait for it to finish, "
            f"or stop the other program using it"
        )
    if code.startswith("SQLITE_CANTOPEN"):
        return f"cannot open {name} ({msg}): check that its folder exists and is writable"
    if code.startswith("SQLITE_READONLY"):
        return f"{name} is read-only ({msg}): check its permissions, or pass --db PATH"
    if code.startswith("SQLITE_FULL"):
        return f"{name}: the disk is full ({msg}); free space or lower retention.days"
    return f"{name}: {msg}"


class EventStore:
    """An event store file (or `:memory:`), migrated to the current schema on open."""

    def __init__(
        self,
        path: Path | str,
        *,
        create: bool = True,
        busy_timeout_ms: int = 5_000,
        migrate_to: int = SCHEMA_VERSION,
    ) -> None:
        self.path = Path(path) if str(path) != MEMORY else None
        self.name = str(self.path) if self.path else "the in-memory store"
        if self.path is not None:
            _prepare_file(self.path, create=create)
        fresh = self.path is None or self.path.stat().st_size == 0
        try:
            self.conn = sqlite3.connect(
                str(self.path) if self.path else MEMORY,
                isolation_level=None,  # explicit transactions only
                timeout=busy_timeout_ms / 1000,
            )
        except sqlite3.Error as e:
            raise StoreError(describe_error(self.name, e)) from e
        try:
            with self.errors():
                self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                if fresh:  # only before WAL mode writes the first page
                    self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                if self.path is not None:
                    self.conn.execute("PRAGMA journal_mode = WAL")
                    self.conn.execute("PRAGMA synchronous = NORMAL")
                migrate(self.conn, self.name, migrate_to)
        except BaseException:
            self.conn.close()
            raise

    @classmethod
    def memory(cls) -> EventStore:
        return cls(MEMORY)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Translate sqlite3 errors raised inside into StoreError."""
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(describe_error(self.name, e)) from e

    @contextlib.contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self.errors():
            self.conn.execute(f"BEGIN {mode}")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def write(self, events: Iterable[Event]) -> int:
        """Store events (one transaction); returns how many were new (ids already stored skip).

        The body is the JSON the pipeline sealed the event with (the JSONL line's bytes).
        """
        items = []
        for event in events:
            # The wire form has microsecond precision; so do the columns, so a store and
            # a JSONL file of the same events give identical answers.
            ts_ns = event.ts_ns - event.ts_ns % 1000
            items.append((row_from_dict(event.wire(), ts_ns), event.json_bytes().decode()))
        return self.write_rows(items)

    def write_rows(self, items: Sequence[tuple[Row, str | None]]) -> int:
        """Store pre-computed rows; a None body stores only the columns (analysis imports).

        Rows get their ids here (after the largest, as SQLite would), so each body goes
        in under its row's id without looking the row up by event_id again.
        """
        if not items:
            return 0
        with self.transaction() as conn:
            (last,) = conn.execute("SELECT max(id) FROM events").fetchone()
            first = (last or 0) + 1
            before = conn.total_changes
            conn.executemany(_INSERT_EVENT, [(first + i, *row) for i, (row, _) in enumerate(items)])
            added = conn.total_changes - before
            if added == len(items):
                bodies = [
                    (first + i, body) for i, (_, body) in enumerate(items) if body is not None
                ]
                if bodies:
                    conn.executemany(_INSERT_BODY, bodies)
            else:
                by_event_id = [(body, row[0]) for row, body in items if body is not None]
                if by_event_id:
                    conn.executemany(_INSERT_BODY_BY_EVENT_ID, by_event_id)
        return added

    # --- deleting --------------------------------------------------------------------------

    def delete_where(
        self, where: str, params: Sequence[Any], *, progress: Progress | None = None
    ) -> int:
        """Delete matching events in short transactions, so a live writer is never held up."""
        with self.errors():
            (total,) = self.conn.execute(
                f"SELECT count(*) FROM events WHERE {where}", params
            ).fetchone()
        done = 0
        if progress:
            progress(0, total)
        while removed := self.delete_chunk(where, params):
            done += removed
            if progress:
                progress(done, max(total, done))
        return done

    def delete_chunk(self, where: str, params: Sequence[Any], limit: int = DELETE_CHUNK) -> int:
        """Delete up to `limit` matching events, and their bodies, in one transaction."""
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM events WHERE {where} LIMIT {int(limit)}", params
                )
            ]
            if ids:
                id_list = orjson.dumps(ids).decode()
                for table in ("bodies", "events"):
                    conn.execute(
                        f"DELETE FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                        (id_list,),
                    )
        return len(ids)

    def release_free_pages(self) -> None:
        """Give pages freed by deletions back to the filesystem (stores made with auto_vacuum)."""
        with self.errors():
            self.conn.execute("PRAGMA incremental_vacuum")

    def vacuum(self) -> None:
        """Rewrite the whole file: deleted content is gone from its bytes, not just unlinked."""
        with self.errors():
            self.checkpoint()
            self.conn.execute("VACUUM")
            self.checkpoint()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; False if readers kept it busy."""
        if self.path is None:
            return True
        with self.errors():
            busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    # --- facts -----------------------------------------------------------------------------

    def count(self) -> int:
        with self.errors():
            n: int = self.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return n

    def max_id(self) -> int:
        with self.errors():
            n: int | None = self.conn.execute("SELECT max(id) FROM events").fetchone()[0]
        return n or 0

    def size_bytes(self) -> int:
        """The store's footprint on disk: the database plus its WAL and shared-memory files."""
        if self.path is None:
            return 0
        return sum(_size(p) for p in store_files(self.path))

    def integrity_check(self) -> str:
        with self.errors():
            rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)


def store_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _prepare_file(path: Path, *, create: bool) -> None:
    """Missing: create it owner-only (events hold prompts), or say how to get one."""
    if path.exists():
        if path.is_dir():
            raise StoreError(f"{path} is a directory, not an event store: pass --db FILE")
        return
    if not create:
        raise StoreError(
            f"no event store at {path}: record some traffic first (oisp-sensor record), "
            f"or pass FILE.jsonl or --db PATH"
        )
    try:
        if path.parent == data_dir():
            ensure_private_dir(path.parent)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as e:
        raise StoreError(f"cannot create {path}: {e.strerror}") from e
