"""The store's schema and its migrations, numbered by `PRAGMA user_version`.

Each migration is a frozen step from version N to N+1, run in one transaction, so
a store written by any earlier release opens in this one and a crash mid-upgrade
leaves the old version intact. Migrations use SQL only (json_extract over the
stored bodies), never today's Python code, so they keep meaning what they meant.

Layout (v2): `events` holds one narrow row of indexed columns per event and
`bodies` the whole event as JSON under the same id. Reports scan only the
narrow table: on a million events that is the difference between reading tens
of megabytes and reading a gigabyte.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from oisp_sensor.errors import StoreError

Migration = Callable[[sqlite3.Connection], None]


def _v1(conn: sqlite3.Connection) -> None:
    """The first layout: one wide table, body inline, a handful of columns."""
    conn.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            ts_ns INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            provider TEXT,
            model TEXT,
            pid INTEGER,
            process_name TEXT,
            body TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX events_ts ON events(ts_ns)")


def _str(path: str) -> str:
    return (
        f"CASE WHEN json_type(body, '{path}') = 'text' "
        f"THEN nullif(json_extract(body, '{path}'), '') END"
    )


def _int(path: str) -> str:
    return f"CASE WHEN json_type(body, '{path}') = 'integer' THEN json_extract(body, '{path}') END"


def _num(path: str) -> str:
    return (
        f"CASE WHEN json_type(body, '{path}') IN ('integer', 'real') "
        f"THEN json_extract(body, '{path}') END"
    )


def _bool(path: str) -> str:
    return f"CASE json_type(body, '{path}') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"


_V2_EVENTS = """CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    ts_ns INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    request_id TEXT,
    conversation_id TEXT,
    pid INTEGER,
    process_name TEXT,
    app TEXT,
    success INTEGER,
    status_code INTEGER,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    cached_tokens INTEGER,
    reasoning_tokens INTEGER,
    input_cost_usd REAL,
    output_cost_usd REAL,
    cost_usd REAL,
    latency_ms REAL,
    ttft_ms REAL,
    tool_name TEXT,
    call_id TEXT,
    duration_ms REAL
)"""

_V2_INDEXES = (
    "CREATE INDEX events_ts ON events(ts_ns)",
    "CREATE INDEX events_type_ts ON events(event_type, ts_ns)",
    "CREATE INDEX events_process ON events(process_name COLLATE NOCASE)",
    "CREATE INDEX events_provider_model ON events(provider COLLATE NOCASE, model)",
    # With event_type, "does this request have a response?" is answered from the index alone.
    "CREATE INDEX events_request ON events(request_id, event_type) WHERE request_id IS NOT NULL",
    "CREATE INDEX events_conversation ON events(conversation_id) WHERE conversation_id IS NOT NULL",
    "CREATE INDEX events_call ON events(call_id, event_type) WHERE call_id IS NOT NULL",
)


def _v2(conn: sqlite3.Connection) -> None:
    """Split bodies out of the scanned table; index what filters and reports use."""
    conn.execute("ALTER TABLE events RENAME TO events_v1")
    conn.execute("DROP INDEX IF EXISTS events_ts")
    conn.execute(_V2_EVENTS)
    conn.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.execute(
        f"""INSERT INTO events SELECT
            id, event_id, ts_ns, event_type, provider, model,
            {_str("$.data.request_id")}, {_str("$.data.conversation_id")},
            pid, process_name,
            coalesce({_str("$.app.name")}, {_str("$.app.app_id")}),
            {_bool("$.data.success")}, {_int("$.data.status_code")},
            {_int("$.data.usage.prompt_tokens")}, {_int("$.data.usage.completion_tokens")},
            {_int("$.data.usage.total_tokens")}, {_int("$.data.usage.cached_tokens")},
            {_int("$.data.usage.reasoning_tokens")},
            {_num("$.data.usage.input_cost_usd")}, {_num("$.data.usage.output_cost_usd")},
            {_num("$.data.usage.total_cost_usd")},
            {_num("$.data.latency_ms")}, {_num("$.data.time_to_first_token_ms")},
            {_str("$.data.tool.name")}, {_str("$.data.call_id")}, {_num("$.data.duration_ms")}
        FROM events_v1"""
    )
    conn.execute("INSERT INTO bodies SELECT id, body FROM events_v1")
    conn.execute("DROP TABLE events_v1")
    for statement in _V2_INDEXES:
        conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, name: str, target: int = SCHEMA_VERSION) -> int:
    """Bring the store to `target`; returns the version it had. Needs an autocommit connection.

    Each step runs in its own IMMEDIATE transaction and re-reads the version inside it,
    so two processes opening a new store at once do not both migrate it.
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{name} was written by a newer oisp-sensor (store version {found}, this one "
            f"reads up to {SCHEMA_VERSION}); upgrade oisp-sensor or pass --db for another file"
        )
    if found >= target:
        return found
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = user_version(conn)
            if version >= target:
                conn.execute("COMMIT")
                return found
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
