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
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import orjson

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
from oisp_sensor.web.server import HttpError, Request, Response, Route
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


_json = Response.json


def _bad(message: str, status: int = 400, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


def _abort(message: str, status: int = 400) -> NoReturn:
    """Stop a handler with a JSON error (from helpers that return values, not responses)."""
    raise HttpError(status, message)


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


def _filter(request: Request) -> EventFilter:
    """The query string's filters (repeatable or comma-separated), as the CLI's EventFilter."""
    q = request.query

    def many(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for raw in q.getall(name) for v in raw.split(",") if v.strip())

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


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        _abort(f"{name} must be a whole number")
    return max(lo, min(hi, int(raw)))


def _window(request: Request) -> tuple[str, int, int]:
    """(name, since_ns, until_ns) for ?window=1h|24h|7d, on whole seconds.

    Whole seconds, because `analyze --since/--until` take RFC 3339 times: the page
    shows the command that reproduces its numbers, and it must reproduce them exactly.
    """
    window = request.query.get("window") or "24h"
    if window not in WINDOWS:
        _abort(f"window must be one of {', '.join(WINDOWS)}")
    until = (time.time_ns() // _S + 1) * _S
    return window, until - WINDOWS[window][0], until


# --- handlers -------------------------------------------------------------------------------


async def health(ctx: WebContext, request: Request) -> Response:
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


async def capture_state(ctx: WebContext, request: Request) -> Response:
    """GET: is capture paused? POST {"paused": bool}: pause or resume recording.

    Paused, traffic still flows through the proxy and is still decoded (so a call in
    flight when capture resumes is whole), but no event reaches any sink.
    """
    if request.method == "POST":
        if ctx.pipeline is None:
            return _bad("this server is not capturing (read-only view of a store)", 409)
        try:
            body = request.json()
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


async def events(ctx: WebContext, request: Request) -> Response:
    """Newest first, `limit` per page; `before` (a store id) continues from the last page."""
    flt = _filter(request)
    limit = _int(request, "limit", 100, 1, 1000)
    before = _int(request, "before", 0, 0, 2**62) or None
    status = request.query.get("status") or None
    if status not in (None, "ok", "error"):
        return _bad("status must be ok or error", key="status")
    page = await _in_store(ctx, lambda s: page_events(s, flt, limit, before, status))
    return _json(page)


async def event(ctx: WebContext, request: Request) -> Response:
    """An event with its whole call: request, response, tool calls and their results."""
    event_id = request.match_info["event_id"]
    detail = await _in_store(ctx, lambda s: call_detail(s, event_id))
    if detail is None:
        return _bad("no such event", 404)
    return _json(detail)


async def stats(ctx: WebContext, request: Request) -> Response:
    """Overview numbers for a window (1h, 24h, 7d): the `summary` report plus a time series
    and the providers/models/processes/tools reports — exactly what `analyze` gives for the
    same --since/--until (returned as `analyze_args`)."""
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


async def processes(ctx: WebContext, request: Request) -> Response:
    """Which programs talk to which providers, with calls and spend, for a window."""
    window, since, until = _window(request)
    flt = EventFilter(since_ns=since, until_ns=until)
    rows = await _in_store(ctx, lambda s: process_matrix(s, flt))
    return _json({"window": window, "since_ns": since, "until_ns": until, "processes": rows})


async def facet_values(ctx: WebContext, request: Request) -> Response:
    """The values each filter can take, for the filter menus."""
    return _json(await _in_store(ctx, facets))


async def report(ctx: WebContext, request: Request) -> Response:
    """Any `oisp-sensor analyze` report, as JSON, with the same filters as /api/events."""
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


async def recent(ctx: WebContext, request: Request) -> Response:
    """The last N events in time order: what a client starts from before the live feed."""
    limit = _int(request, "limit", 200, 1, 1000)
    rows = await _in_store(ctx, lambda s: select_events(s, EventFilter(), limit=limit))
    return _json({"events": [r.event for r in rows]})


async def ca(ctx: WebContext, request: Request) -> Response:
    if ctx.ca_status is None:
        return _json({"present": False, "trusted": False, "commands": []})
    return _json(await asyncio.to_thread(ctx.ca_status))


async def settings(ctx: WebContext, request: Request) -> Response:
    """GET the editable settings; PUT a subset of them (written to the config file)."""
    if ctx.settings is None:
        return _bad("settings are not available here", 409)
    if request.method == "PUT":
        try:
            body = request.json()
        except ValueError:
            return _bad("expected a JSON object")
        try:
            applied = ctx.settings.update(body)
        except SettingsError as e:
            return _bad(str(e), key=e.key)
        return _json(applied)
    return _json(ctx.settings.current())


def routes(ctx: WebContext) -> list[Route]:
    return [
        Route("GET", "/api/health", partial(health, ctx)),
        Route("GET", "/api/capture", partial(capture_state, ctx)),
        Route("POST", "/api/capture", partial(capture_state, ctx)),
        Route("GET", "/api/events", partial(events, ctx)),
        Route("GET", "/api/events/recent", partial(recent, ctx)),
        Route("GET", "/api/events/{event_id}", partial(event, ctx)),
        Route("GET", "/api/stats", partial(stats, ctx)),
        Route("GET", "/api/processes", partial(processes, ctx)),
        Route("GET", "/api/facets", partial(facet_values, ctx)),
        Route("GET", "/api/reports/{name}", partial(report, ctx)),
        Route("GET", "/api/ca", partial(ca, ctx)),
        Route("GET", "/api/settings", partial(settings, ctx)),
        Route("PUT", "/api/settings", partial(settings, ctx)),
        Route("GET", "/api/live", ctx.live.handle),
    ]
