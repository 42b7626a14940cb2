"""The HTTP API under /api/. The dashboard page uses nothing else (plus /api/live).

Reads go to the SQLite store through the same queries and reports as the CLI
(`show`, `analyze`), on a worker thread with a connection of its own, so the page
and `oisp-sensor analyze` can never disagree and a slow query never blocks capture.
Every event served has been redacted before it was stored.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import orjson
from aiohttp import web

from oisp_sensor import __version__
from oisp_sensor.config import Config
from oisp_sensor.errors import StoreError
from oisp_sensor.events import rfc3339
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.store import EventFilter, EventStore
from oisp_sensor.store.query import select_events
from oisp_sensor.store.reports import REPORT_NAMES, run_report
from oisp_sensor.store.timeseries import (
    WINDOWS,
    call_detail,
    facets,
    latency_mean,
    page_events,
    process_matrix,
    timeseries,
)
from oisp_sensor.store.timespec import parse_when
from oisp_sensor.web.live import LiveFeed
from oisp_sensor.web.settings import Settings, SettingsError

T = TypeVar("T")
_S = 1_000_000_000


@dataclass
class WebContext:
    """What the API reads and controls. `pipeline` is None when only browsing a store."""

    config: Config
    db_path: Path | None
    live: LiveFeed
    pipeline: Pipeline | None = None
    settings: Settings | None = None
    ca_status: Callable[[], dict[str, Any]] | None = None
    started_at: float = field(default_factory=time.time)
    extra_status: Callable[[], dict[str, Any]] | None = None  # proxy/socket addresses
    on_capture_change: Callable[[bool], None] | None = None  # e.g. publish runtime state


CONTEXT = web.AppKey("context", WebContext)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _bad(message: str, status: int = 400, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


def _abort(message: str, status: int = 400) -> NoReturn:
    """Stop a handler with a JSON error (from helpers that return values, not responses)."""
    error = web.HTTPServiceUnavailable if status == 503 else web.HTTPBadRequest
    raise error(text=orjson.dumps({"error": message}).decode(), content_type="application/json")


async def _in_store(ctx: WebContext, work: Callable[[EventStore], T]) -> T:
    """Run `work` on a worker thread with its own connection to the store."""
    if ctx.db_path is None:
        _abort("no event store (the sensor runs with --no-db)", 503)
    path = ctx.db_path

    def run() -> T:
        with EventStore(path, create=False) as store:
            return work(store)

    try:
        return await asyncio.to_thread(run)
    except StoreError as e:
        _abort(str(e), 503)


def _filter(request: web.Request) -> EventFilter:
    """The query string's filters (repeatable or comma-separated), as the CLI's EventFilter."""
    q = request.query

    def many(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for raw in q.getall(name, []) for v in raw.split(",") if v.strip())

    try:
        since = parse_when(q["since"]) if q.get("since") else None
        until = parse_when(q["until"]) if q.get("until") else None
    except ValueError as e:
        _abort(str(e))
    return EventFilter(
        types=many("type"),
        processes=many("process"),
        providers=many("provider"),
        models=many("model"),
        since_ns=since,
        until_ns=until,
    )


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        _abort(f"{name} must be a whole number")
    return max(lo, min(hi, int(raw)))


def _window(request: web.Request) -> tuple[str, int, int]:
    """(name, since_ns, until_ns) for ?window=1h|24h|7d, on whole seconds.

    Whole seconds, because `analyze --since/--until` take RFC 3339 times: the page
    shows the command that reproduces its numbers, and it must reproduce them exactly.
    """
    window = request.query.get("window", "24h")
    if window not in WINDOWS:
        _abort(f"window must be one of {', '.join(WINDOWS)}")
    until = (time.time_ns() // _S + 1) * _S
    return window, until - WINDOWS[window][0], until


# --- handlers -------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    counters = ctx.pipeline.counters.snapshot() if ctx.pipeline else {}
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - ctx.started_at, 1),
        "capturing": ctx.pipeline is not None,
        "paused": bool(ctx.pipeline and ctx.pipeline.paused),
        "live_clients": ctx.live.clients,
        "store": str(ctx.db_path) if ctx.db_path else None,
        "redaction_mode": ctx.settings.config.redaction.mode
        if ctx.settings
        else ctx.config.redaction.mode,
        "counters": counters,
    }
    if ctx.extra_status:
        body.update(ctx.extra_status())
    return _json(body)


def _capture_body(ctx: WebContext) -> dict[str, Any]:
    return {
        "capturing": ctx.pipeline is not None,
        "paused": bool(ctx.pipeline and ctx.pipeline.paused),
        "paused_dropped": ctx.pipeline.counters.get("events.paused_dropped") if ctx.pipeline else 0,
    }


async def capture_state(request: web.Request) -> web.Response:
    """GET: is capture paused? POST {"paused": bool}: pause or resume recording.

    Paused, traffic still flows through the proxy and is still decoded (so a call in
    flight when capture resumes is whole), but no event reaches any sink.
    """
    ctx = request.app[CONTEXT]
    if request.method == "POST":
        if ctx.pipeline is None:
            return _bad("this server is not capturing (read-only view of a store)", 409)
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _bad('expected a JSON body like {"paused": true}')
        if not isinstance(body, dict) or not isinstance(body.get("paused"), bool):
            return _bad('expected a JSON body like {"paused": true}', key="paused")
        changed = ctx.pipeline.paused != body["paused"]
        ctx.pipeline.paused = body["paused"]
        if changed:
            ctx.live.broadcast(orjson.dumps({"type": "capture", "paused": ctx.pipeline.paused}))
            if ctx.on_capture_change is not None:
                ctx.on_capture_change(ctx.pipeline.paused)
    return _json(_capture_body(ctx))


async def events(request: web.Request) -> web.Response:
    """Newest first, `limit` per page; `before` (a store id) continues from the last page."""
    ctx = request.app[CONTEXT]
    flt = _filter(request)
    limit = _int(request, "limit", 100, 1, 1000)
    before = _int(request, "before", 0, 0, 2**62) or None
    status = request.query.get("status") or None
    if status not in (None, "ok", "error"):
        return _bad("status must be ok or error", key="status")
    page = await _in_store(ctx, lambda s: page_events(s, flt, limit, before, status))
    return _json(page)


async def event(request: web.Request) -> web.Response:
    """An event with its whole call: request, response, tool calls and their results."""
    ctx = request.app[CONTEXT]
    event_id = request.match_info["event_id"]
    detail = await _in_store(ctx, lambda s: call_detail(s, event_id))
    if detail is None:
        return _bad("no such event", 404)
    return _json(detail)


async def stats(request: web.Request) -> web.Response:
    """Overview numbers for a window (1h, 24h, 7d): the `summary` report plus a time series
    and the providers/models/processes/tools reports — exactly what `analyze` gives for the
    same --since/--until (returned as `analyze_args`)."""
    ctx = request.app[CONTEXT]
    window, since, until = _window(request)
    flt = EventFilter(since_ns=since, until_ns=until)

    def work(store: EventStore) -> dict[str, Any]:
        summary = run_report("summary", store, flt)
        return {
            "window": window,
            "since_ns": since,
            "until_ns": until,
            "analyze_args": ["--since", rfc3339(since), "--until", rfc3339(until)],
            "summary": {r["metric"]: r["value"] for r in summary.rows},
            "latency_mean_ms": latency_mean(store, flt),
            "notes": summary.notes,
            "bucket_ns": WINDOWS[window][1],
            "series": timeseries(store, since, until, WINDOWS[window][1]),
            "providers": run_report("providers", store, flt).rows,
            "models": run_report("models", store, flt).rows,
            "processes": run_report("processes", store, flt).rows,
            "tools": run_report("tools", store, flt).rows,
        }

    return _json(await _in_store(ctx, work))


async def processes(request: web.Request) -> web.Response:
    """Which programs talk to which providers, with calls and spend, for a window."""
    ctx = request.app[CONTEXT]
    window, since, until = _window(request)
    flt = EventFilter(since_ns=since, until_ns=until)
    rows = await _in_store(ctx, lambda s: process_matrix(s, flt))
    return _json({"window": window, "since_ns": since, "until_ns": until, "processes": rows})


async def facet_values(request: web.Request) -> web.Response:
    """The values each filter can take, for the filter menus."""
    ctx = request.app[CONTEXT]
    return _json(await _in_store(ctx, facets))


async def report(request: web.Request) -> web.Response:
    """Any `oisp-sensor analyze` report, as JSON, with the same filters as /api/events."""
    ctx = request.app[CONTEXT]
    name = request.match_info["name"]
    if name not in REPORT_NAMES:
        return _bad(f"unknown report; expected one of {', '.join(REPORT_NAMES)}", 404)
    flt = _filter(request)

    def work(store: EventStore) -> dict[str, Any]:
        rep = run_report(name, store, flt)
        return {
            "name": rep.name,
            "title": rep.title,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in rep.columns],
            "rows": rep.rows,
            "totals": rep.totals,
            "notes": rep.notes,
        }

    return _json(await _in_store(ctx, work))


async def recent(request: web.Request) -> web.Response:
    """The last N events in time order: what a client starts from before the live feed."""
    ctx = request.app[CONTEXT]
    limit = _int(request, "limit", 200, 1, 1000)
    rows = await _in_store(ctx, lambda s: select_events(s, EventFilter(), limit=limit))
    return _json({"events": [r.event for r in rows]})


async def ca(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if ctx.ca_status is None:
        return _json({"present": False, "trusted": False, "commands": []})
    return _json(await asyncio.to_thread(ctx.ca_status))


async def settings(request: web.Request) -> web.Response:
    """GET the editable settings; PUT a subset of them (written to the config file)."""
    ctx = request.app[CONTEXT]
    if ctx.settings is None:
        return _bad("settings are not available here", 409)
    if request.method == "PUT":
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _bad("expected a JSON object")
        try:
            applied = ctx.settings.update(body)
        except SettingsError as e:
            return _bad(str(e), key=e.key)
        return _json(applied)
    return _json(ctx.settings.current())


def routes(live: LiveFeed) -> list[web.RouteDef]:
    return [
        web.get("/api/health", health),
        web.get("/api/capture", capture_state),
        web.post("/api/capture", capture_state),
        web.get("/api/events", events),
        web.get("/api/events/recent", recent),
        web.get("/api/events/{event_id}", event),
        web.get("/api/stats", stats),
        web.get("/api/processes", processes),
        web.get("/api/facets", facet_values),
        web.get("/api/reports/{name}", report),
        web.get("/api/ca", ca),
        web.get("/api/settings", settings),
        web.put("/api/settings", settings),
        web.get("/api/live", live.handle),
    ]
