"""Queries the dashboard needs beyond `analyze`: pages of events, a call's whole story,
tokens/cost over time, who talks to whom. Same store, same filters (EventFilter) and
the same counting rules as the `analyze` reports (a call is counted by its response;
tokens are total_tokens, else input + output), so the page and the CLI agree.
"""

from __future__ import annotations

from typing import Any

import orjson

from oisp_sensor.store.db import EventStore
from oisp_sensor.store.query import EventFilter
from oisp_sensor.store.reports import TOKENS_SQL, UNKNOWN

_MIN = 60 * 1_000_000_000
# window -> (length, bucket) in ns: about 50-60 points per chart.
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (60 * _MIN, _MIN),
    "24h": (24 * 60 * _MIN, 30 * _MIN),
    "7d": (7 * 24 * 60 * _MIN, 3 * 60 * _MIN),
}

_RESPONSE = "event_type = 'ai.response'"
_FACET_LIMIT = 500


def page_events(
    store: EventStore,
    flt: EventFilter,
    limit: int,
    before_id: int | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Newest first; `next_before` continues with older events (None at the end).

    `status` keeps only events that succeeded ("ok") or failed ("error"): responses
    and tool results, the events that have an outcome.
    """
    where, params = flt.where("e")
    if before_id is not None:
        where += " AND e.id < ?"
        params.append(before_id)
    if status == "ok":
        where += " AND e.success = 1"
    elif status == "error":
        where += " AND e.success = 0"
    with store.errors():
        rows = store.conn.execute(
            f"SELECT e.id, b.body FROM events e JOIN bodies b ON b.id = e.id "
            f"WHERE {where} ORDER BY e.id DESC LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "events": [orjson.loads(body) for _, body in rows],
        "next_before": rows[-1][0] if more and rows else None,
    }


def _bodies(store: EventStore, where: str, params: list[Any]) -> list[dict[str, Any]]:
    rows = store.conn.execute(
        f"SELECT b.body FROM events e JOIN bodies b ON b.id = e.id WHERE {where} ORDER BY e.id",
        params,
    ).fetchall()
    return [orjson.loads(body) for (body,) in rows]


def _ts_of(store: EventStore, event: dict[str, Any] | None) -> int | None:
    if event is None:
        return None
    row = store.conn.execute(
        "SELECT ts_ns FROM events WHERE event_id = ?", [event.get("event_id")]
    ).fetchone()
    return int(row[0]) if row else None


def _emitted_with(
    store: EventStore, event_type: str, anchor: dict[str, Any] | None, request_id: str
) -> list[dict[str, Any]]:
    """Events of `event_type` emitted together with `anchor` for this call.

    Tool calls come out with (and are timestamped like) the response that made them,
    tool results with the request that carried them; both name the call's request in
    `attrs.request_id`, which is not a column, so the timestamp narrows the search.
    """
    ts_ns = _ts_of(store, anchor)
    if ts_ns is None:
        return []
    return [
        e
        for e in _bodies(store, "e.event_type = ? AND e.ts_ns = ?", [event_type, ts_ns])
        if (e.get("attrs") or {}).get("request_id") == request_id
    ]


def call_detail(store: EventStore, event_id: str) -> dict[str, Any] | None:
    """An event and everything about the AI call it belongs to.

    The request and response share `request_id`; the model's tool calls carry it in
    attrs; their results arrive with a later request and are found by `call_id`
    (`carried_by` names that request's event, so the page can link to it). Results
    this call's own request handed back to the model are `carried_results`.
    """
    with store.errors():
        found = _bodies(store, "e.event_id = ?", [event_id])
        if not found:
            return None
        event = found[0]
        data = event.get("data") or {}
        attrs = event.get("attrs") or {}
        request_id = data.get("request_id") or attrs.get("request_id")
        if event.get("event_type") == "agent.tool_result":
            # A result belongs to the call that asked for it, not the request carrying it.
            calls = _bodies(
                store, "e.event_type = 'agent.tool_call' AND e.call_id = ?", [data.get("call_id")]
            )
            if calls:
                request_id = (calls[0].get("attrs") or {}).get("request_id") or request_id
        related = _bodies(store, "e.request_id = ?", [request_id]) if request_id else [event]
        by_type = {e.get("event_type"): e for e in related}
        request, response = by_type.get("ai.request"), by_type.get("ai.response")
        tool_calls: list[dict[str, Any]] = []
        carried: list[dict[str, Any]] = []
        if request_id:
            tool_calls = _emitted_with(store, "agent.tool_call", response, request_id)
            carried = _emitted_with(store, "agent.tool_result", request, request_id)
        call_ids = [c for c in ((e.get("data") or {}).get("call_id") for e in tool_calls) if c]
        results = (
            _bodies(
                store,
                "e.event_type = 'agent.tool_result' AND e.call_id IN "
                f"({', '.join('?' for _ in call_ids)})",
                call_ids,
            )
            if call_ids
            else []
        )
        carried_by = _requests_carrying(store, results)
    return {
        "event": event,
        "request_id": request_id,
        "request": request,
        "response": response,
        "tool_calls": tool_calls,
        "tool_results": results,
        "carried_by": carried_by,
        "carried_results": carried,
    }


def _requests_carrying(store: EventStore, results: list[dict[str, Any]]) -> dict[str, str]:
    """result event_id -> event_id of the ai.request that handed that result to the model."""
    out: dict[str, str] = {}
    for result in results:
        rid = (result.get("attrs") or {}).get("request_id")
        if not rid:
            continue
        row = store.conn.execute(
            "SELECT event_id FROM events WHERE request_id = ? AND event_type = 'ai.request'",
            [rid],
        ).fetchone()
        if row:
            out[str(result.get("event_id"))] = str(row[0])
    return out


def timeseries(
    store: EventStore, since_ns: int, until_ns: int, bucket_ns: int
) -> list[dict[str, Any]]:
    """Responses, errors, tokens and cost per bucket; empty buckets are present with zeros
    (a chart with gaps reads as missing data, and no responses really means none).

    Buckets start at `since_ns`, so the buckets add up to the window's totals.
    """
    with store.errors():
        rows = store.conn.execute(
            f"""SELECT (ts_ns - ?) / ? AS bucket, count(*), sum(success = 0),
                      sum(prompt_tokens), sum(completion_tokens), sum({TOKENS_SQL}),
                      sum(cost_usd)
               FROM events
               WHERE {_RESPONSE} AND ts_ns >= ? AND ts_ns < ?
               GROUP BY bucket ORDER BY bucket""",
            [since_ns, bucket_ns, since_ns, until_ns],
        ).fetchall()
    found = {int(r[0]): r[1:] for r in rows}
    buckets = max(1, -(-(until_ns - since_ns) // bucket_ns))
    out = []
    for i in range(buckets):
        n, err, prompt, completion, tok, cost = found.get(i, (0, 0, None, None, None, None))
        out.append(
            {
                "t_ns": since_ns + i * bucket_ns,
                "responses": n,
                "errors": err or 0,
                "prompt_tokens": prompt or 0,
                "completion_tokens": completion or 0,
                "tokens": tok or 0,
                "cost_usd": cost,
            }
        )
    return out


def latency_mean(store: EventStore, flt: EventFilter) -> float | None:
    """Mean response latency in ms (the reports give percentiles; the overview shows both)."""
    where, params = flt.where()
    with store.errors():
        value = store.conn.execute(
            f"SELECT avg(latency_ms) FROM events WHERE {_RESPONSE} AND {where}", params
        ).fetchone()[0]
    return float(value) if value is not None else None


def facets(store: EventStore) -> dict[str, list[str]]:
    """The distinct values the filters can take (indexed columns only: cheap)."""
    out: dict[str, list[str]] = {}
    with store.errors():
        for key, column in (
            ("types", "event_type"),
            ("providers", "provider"),
            ("models", "model"),
            ("processes", "process_name"),
        ):
            rows = store.conn.execute(
                f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL "
                f"ORDER BY {column} COLLATE NOCASE LIMIT {_FACET_LIMIT}"
            ).fetchall()
            out[key] = [str(r[0]) for r in rows]
    return out


def process_matrix(store: EventStore, flt: EventFilter) -> list[dict[str, Any]]:
    """Which programs talk to which providers: calls, errors, tokens and spend per pair.

    One row per process name (with its app, executables and pids), each with the
    providers it called, most expensive first. Calls are counted by response, as in
    `analyze --report processes`; requests still without a response are `unanswered`.
    """
    where, params = flt.where()
    proc = f"coalesce(process_name, '{UNKNOWN}')"
    prov = f"coalesce(provider, '{UNKNOWN}')"
    with store.errors():
        rows = store.conn.execute(
            f"""SELECT {proc} AS p, {prov} AS v,
                    sum({_RESPONSE}) AS calls,
                    sum(event_type = 'ai.request') AS requests,
                    sum({_RESPONSE} AND success = 0),
                    sum(CASE WHEN {_RESPONSE} THEN {TOKENS_SQL} END),
                    sum(CASE WHEN {_RESPONSE} THEN cost_usd END),
                    group_concat(DISTINCT CASE WHEN {_RESPONSE} THEN model END),
                    count(DISTINCT pid), max(ts_ns), max(app)
                FROM events
                WHERE event_type IN ('ai.request', 'ai.response') AND {where}
                GROUP BY p, v""",
            params,
        ).fetchall()
        processes: dict[str, dict[str, Any]] = {}
        for p, v, calls, requests, errors, tokens, cost, models, pids, last, app in rows:
            entry = processes.setdefault(
                p,
                {
                    "process": p,
                    "app": None,
                    "pids": 0,
                    "calls": 0,
                    "unanswered": 0,
                    "errors": 0,
                    "total_tokens": None,
                    "cost_usd": None,
                    "last_seen": 0,
                    "providers": [],
                },
            )
            entry["app"] = entry["app"] or app
            entry["pids"] = max(entry["pids"], pids)
            entry["calls"] += calls
            entry["unanswered"] += max(0, requests - calls)
            entry["errors"] += errors
            entry["total_tokens"] = _add(entry["total_tokens"], tokens)
            entry["cost_usd"] = _add(entry["cost_usd"], cost)
            entry["last_seen"] = max(entry["last_seen"], last)
            entry["providers"].append(
                {
                    "provider": v,
                    "calls": calls,
                    "errors": errors,
                    "total_tokens": tokens,
                    "cost_usd": cost,
                    "models": sorted(set((models or "").split(",")) - {""}),
                }
            )
        for entry in processes.values():
            entry["providers"].sort(key=lambda r: (-(r["cost_usd"] or 0), -r["calls"]))
            entry["exes"] = _executables(store, entry["process"])
    return sorted(processes.values(), key=lambda r: (-(r["cost_usd"] or 0), -r["calls"]))


def _executables(store: EventStore, process: str) -> list[str]:
    """The executable paths seen for a process name, from its most recent AI events."""
    if process == UNKNOWN:
        return []
    rows = store.conn.execute(
        """SELECT DISTINCT json_extract(b.body, '$.process.exe') FROM bodies b
           WHERE b.id IN (SELECT id FROM events WHERE process_name = ? COLLATE NOCASE
                          AND event_type = 'ai.request' ORDER BY id DESC LIMIT 50)""",
        [process],
    ).fetchall()
    return sorted(str(r[0]) for r in rows if r[0])


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else a + b
