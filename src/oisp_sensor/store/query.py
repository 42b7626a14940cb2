"""Selecting events: one filter type, compiled to SQL, shared by show, analyze and purge.

Matching rules a user can predict: event types match exactly or by prefix (`ai`
or `ai.*` means every ai.* type); process, provider and model compare without
regard to case and accept `*` wildcards; a number given as a process is a pid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from oisp_sensor.store.db import EventStore


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    types: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # exclusive

    @property
    def empty(self) -> bool:
        return not (
            self.types
            or self.processes
            or self.providers
            or self.models
            or self.since_ns is not None
            or self.until_ns is not None
        )

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """A SQL condition over the events table (optionally aliased) and its parameters."""
        col = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(parts: list[tuple[str, list[Any]]]) -> None:
            if parts:
                clauses.append("(" + " OR ".join(p for p, _ in parts) + ")")
                for _, ps in parts:
                    params.extend(ps)

        any_of([_type_clause(f"{col}event_type", t) for t in self.types])
        any_of([_process_clause(col, p) for p in self.processes])
        any_of([_text_clause(f"{col}provider", p) for p in self.providers])
        any_of([_text_clause(f"{col}model", m) for m in self.models])
        if self.since_ns is not None:
            clauses.append(f"{col}ts_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            clauses.append(f"{col}ts_ns < ?")
            params.append(self.until_ns)
        return (" AND ".join(clauses) or "1"), params


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _text_clause(column: str, value: str) -> tuple[str, list[Any]]:
    if "*" in value:
        return f"{column} LIKE ? ESCAPE '\\'", [_like(value)]
    return f"{column} = ? COLLATE NOCASE", [value]


def _type_clause(column: str, value: str) -> tuple[str, list[Any]]:
    value = value.strip().rstrip("*").rstrip(".") if value.endswith("*") else value.strip()
    if "." in value:
        return f"{column} = ?", [value]
    return f"({column} = ? OR {column} LIKE ? ESCAPE '\\')", [value, _like(value) + ".%"]


def _process_clause(col: str, value: str) -> tuple[str, list[Any]]:
    if value.isdigit():
        return f"{col}pid = ?", [int(value)]
    return _text_clause(f"{col}process_name", value)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    event: dict[str, Any]


def select_events(
    store: EventStore, flt: EventFilter, *, limit: int | None = None, up_to_id: int | None = None
) -> list[StoredEvent]:
    """The matching events in time order; with `limit`, the most recent `limit` of them."""
    where, params = flt.where("e")
    if up_to_id is not None:
        where += " AND e.id <= ?"
        params.append(up_to_id)
    sql = f"SELECT e.id, b.body FROM events e JOIN bodies b ON b.id = e.id WHERE {where}"
    with store.errors():
        if limit:
            rows = store.conn.execute(
                f"{sql} ORDER BY e.ts_ns DESC, e.id DESC LIMIT ?", [*params, limit]
            ).fetchall()
            rows.reverse()
        else:
            rows = store.conn.execute(f"{sql} ORDER BY e.ts_ns, e.id", params).fetchall()
    return [StoredEvent(i, orjson.loads(body)) for i, body in rows]


def select_new(
    store: EventStore, flt: EventFilter, after_id: int, up_to_id: int
) -> list[StoredEvent]:
    """Events stored after `after_id` up to `up_to_id`, in the order they arrived (--follow).

    Ids grow in commit order (one writer at a time), so reading `max_id()` first and
    then this range never skips an event committed in between.
    """
    where, params = flt.where("e")
    with store.errors():
        rows = store.conn.execute(
            f"SELECT e.id, b.body FROM events e JOIN bodies b ON b.id = e.id "
            f"WHERE e.id > ? AND e.id <= ? AND {where} ORDER BY e.id",
            [after_id, up_to_id, *params],
        ).fetchall()
    return [StoredEvent(i, orjson.loads(body)) for i, body in rows]


def count_matching(store: EventStore, flt: EventFilter) -> int:
    where, params = flt.where()
    with store.errors():
        n: int = store.conn.execute(
            f"SELECT count(*) FROM events WHERE {where}", params
        ).fetchone()[0]
    return n
