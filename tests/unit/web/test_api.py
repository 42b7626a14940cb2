"""The HTTP API over a store the real pipeline wrote: filters, paging, call detail,
stats that match `oisp-sensor analyze`, processes, reports, the OpenAPI description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from oisp_sensor.cli.analyze import machine_value
from oisp_sensor.cli.main import cli
from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.store.reports import REPORT_NAMES
from oisp_sensor.web.api import WebContext
from oisp_sensor.web.app import OPENAPI
from oisp_sensor.web.live import LiveFeed
from tests.conformance import assert_valid_events
from tests.unit.store.traffic import CANARY
from tests.unit.web.conftest import Served, route_table, serve


def by_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


async def test_health_says_what_is_running(api: Served) -> None:
    body = await api.get_json("/api/health")
    assert body["status"] == "ok"
    assert body["capturing"] is False  # no pipeline: a read-only view
    assert body["paused"] is False
    assert body["store"] == str(api.ctx.db_path)
    assert body["redaction_mode"] == "safe"


async def test_events_newest_first_and_every_event_served_is_valid(
    api: Served, recorded: dict[str, Any]
) -> None:
    page = await api.get_json("/api/events", limit="1000")
    served = page["events"]
    assert page["next_before"] is None
    assert [e["event_id"] for e in served] == [e["event_id"] for e in reversed(recorded["events"])]
    assert_valid_events(served)


def _provider(e: dict[str, Any]) -> str | None:
    return (e["data"].get("provider") or {}).get("name")


def _model(e: dict[str, Any]) -> str:
    return str((e["data"].get("model") or {}).get("id", ""))


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"type": "ai.response"}, lambda e: e["event_type"] == "ai.response"),
        ({"type": "agent"}, lambda e: e["event_type"].startswith("agent.")),
        ({"provider": "anthropic"}, lambda e: _provider(e) == "anthropic"),
        ({"provider": "OpenAI"}, lambda e: _provider(e) == "openai"),
        ({"model": "corp-llama-*"}, lambda e: _model(e).startswith("corp-llama")),
        ({"process": "node"}, lambda e: e["process"]["name"] == "node"),
        ({"process": "1001"}, lambda e: e["process"]["pid"] == 1001),
        ({"status": "error"}, lambda e: e["data"].get("success") is False),
        (
            {"status": "ok", "type": "ai.response"},
            lambda e: e["event_type"] == "ai.response" and e["data"]["success"],
        ),
        (
            {"provider": "openai,anthropic", "type": "ai.request"},
            lambda e: e["event_type"] == "ai.request" and _provider(e) in ("openai", "anthropic"),
        ),
    ],
)
async def test_filters(
    api: Served, recorded: dict[str, Any], params: dict[str, str], expect: Any
) -> None:
    served = (await api.get_json("/api/events", limit="1000", **params))["events"]
    expected = [e["event_id"] for e in reversed(recorded["events"]) if expect(e)]
    assert expected, params
    assert [e["event_id"] for e in served] == expected, params


async def test_time_filters(api: Served, recorded: dict[str, Any]) -> None:
    events = recorded["events"]
    middle = events[len(events) // 2]["ts"]
    newer = (await api.get_json("/api/events", since=middle, limit="1000"))["events"]
    older = (await api.get_json("/api/events", until=middle, limit="1000"))["events"]
    assert newer and older
    assert all(e["ts"] >= middle for e in newer)
    assert all(e["ts"] < middle for e in older)
    assert len(newer) + len(older) == len(events)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "maybe"}, "status"),
        ({"since": "last tuesday-ish"}, "expected a time"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-3"}, "before"),
    ],
)
async def test_bad_query_is_a_400_that_says_why(
    api: Served, params: dict[str, str], named: str
) -> None:
    response = await api.client.get("/api/events", params=params)
    assert response.status == 400
    assert named in (await response.json())["error"]


async def test_paging_walks_every_event_once(api: Served, recorded: dict[str, Any]) -> None:
    seen: list[str] = []
    before: int | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"before": str(before)} if before else {})}
        page = await api.get_json("/api/events", **params)
        pages += 1
        assert len(page["events"]) <= 3
        seen += [e["event_id"] for e in page["events"]]
        before = page["next_before"]
        if before is None:
            break
    assert pages == -(-len(recorded["events"]) // 3)
    assert seen == [e["event_id"] for e in reversed(recorded["events"])]


async def test_recent_is_in_time_order(api: Served, recorded: dict[str, Any]) -> None:
    served = (await api.get_json("/api/events/recent", limit="4"))["events"]
    assert [e["event_id"] for e in served] == [e["event_id"] for e in recorded["events"][-4:]]


# --- call detail ------------------------------------------------------------------------------


async def test_call_detail_of_a_tool_calling_response(
    api: Served, recorded: dict[str, Any]
) -> None:
    events = recorded["events"]
    first_response = by_type(events, "ai.response")[0]
    detail = await api.get_json(f"/api/events/{first_response['event_id']}")
    assert detail["event"]["event_id"] == first_response["event_id"]
    assert detail["request"]["data"]["messages"][0]["content"] == "What's the weather in Paris?"
    assert detail["response"]["data"]["finish_reason"] == "tool_calls"
    assert [c["data"]["tool"]["name"] for c in detail["tool_calls"]] == ["get_weather"]
    assert detail["tool_calls"][0]["data"]["arguments"] == {"city": "Paris"}
    (result,) = detail["tool_results"]
    assert result["data"]["result"] == "18C sunny"
    # The result came back with the second request, which the page links to.
    second_request = by_type(events, "ai.request")[1]
    assert detail["carried_by"] == {result["event_id"]: second_request["event_id"]}
    assert detail["response"]["attrs"]["cost_source"] == "computed"
    assert detail["response"]["attrs"]["price_source"]


async def test_call_detail_from_any_event_of_the_call(
    api: Served, recorded: dict[str, Any]
) -> None:
    events = recorded["events"]
    request = by_type(events, "ai.request")[0]
    tool_call = by_type(events, "agent.tool_call")[0]
    tool_result = by_type(events, "agent.tool_result")[0]
    ids = set()
    for event in (request, tool_call, tool_result):
        detail = await api.get_json(f"/api/events/{event['event_id']}")
        ids.add(detail["request_id"])
        assert detail["event"]["event_id"] == event["event_id"]
    assert ids == {request["data"]["request_id"]}


async def test_call_detail_shows_results_a_request_carried(
    api: Served, recorded: dict[str, Any]
) -> None:
    second_request = by_type(recorded["events"], "ai.request")[1]
    detail = await api.get_json(f"/api/events/{second_request['event_id']}")
    assert [r["data"]["call_id"] for r in detail["carried_results"]] == ["call_weather_1"]
    assert detail["response"]["data"]["choices"][0]["message"]["content"].startswith("It is 18C")


async def test_unknown_event_is_404(api: Served) -> None:
    response = await api.client.get("/api/events/01NOTANEVENT")
    assert response.status == 404


# --- stats: the same numbers as `oisp-sensor analyze` ---------------------------------------------


def analyze_json(db: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["analyze", "--db", str(db), "--format", "json", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.mark.parametrize("window", ["1h", "24h", "7d"])
async def test_stats_match_analyze(api: Served, recorded: dict[str, Any], window: str) -> None:
    stats = await api.get_json("/api/stats", window=window)
    report = analyze_json(recorded["db"], *stats["analyze_args"])
    rows = {r["metric"]: r for r in report["rows"]}
    kinds = {
        r["metric"]: r.get("kind") for r in (await api.get_json("/api/reports/summary"))["rows"]
    }
    assert set(stats["summary"]) == set(rows)
    for metric, value in stats["summary"].items():
        assert machine_value(kinds[metric] or "int", value) == rows[metric]["value"], metric
    summary = stats["summary"]
    assert summary["requests"] == 5 and summary["responses"] == 5 and summary["errors"] == 1
    assert summary["cost_usd"] > 0 and summary["unpriced_responses"] == 1
    for name in ("providers", "models", "processes", "tools"):
        other = analyze_json(recorded["db"], "--report", name, *stats["analyze_args"])
        assert len(stats[name]) == len(other["rows"]), name
        assert [r.get("calls") for r in stats[name]] == [r.get("calls") for r in other["rows"]]


async def test_series_adds_up_to_the_summary(api: Served) -> None:
    stats = await api.get_json("/api/stats", window="1h")
    series = stats["series"]
    assert len(series) == 60
    assert series[0]["t_ns"] == stats["since_ns"]
    summary = stats["summary"]
    assert sum(p["responses"] for p in series) == summary["responses"]
    assert sum(p["errors"] for p in series) == summary["errors"]
    assert sum(p["tokens"] for p in series) == summary["total_tokens"]
    assert sum(p["prompt_tokens"] for p in series) == summary["prompt_tokens"]
    cost = sum(p["cost_usd"] or 0 for p in series)
    assert cost == pytest.approx(summary["cost_usd"])
    assert stats["latency_mean_ms"] is not None
    assert summary["latency_p50_ms"] <= summary["latency_p95_ms"]


async def test_stats_window_must_be_known(api: Served) -> None:
    response = await api.client.get("/api/stats", params={"window": "3y"})
    assert response.status == 400
    assert "window" in (await response.json())["error"]


async def test_processes_say_who_talks_to_whom(api: Served) -> None:
    body = await api.get_json("/api/processes", window="1h")
    rows = {r["process"]: r for r in body["processes"]}
    assert set(rows) == {"python3", "node", "curl"}
    python = rows["python3"]
    assert python["calls"] == 3 and python["errors"] == 1
    assert python["exes"] == ["/usr/bin/python3"]
    assert [p["provider"] for p in python["providers"]] == ["openai"]
    assert python["providers"][0]["models"] == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"]
    assert rows["node"]["providers"][0]["provider"] == "anthropic"
    assert rows["node"]["cost_usd"] > 0
    assert rows["curl"]["cost_usd"] is None  # an unpriced model is unknown, not $0
    costs = [r["cost_usd"] or 0 for r in body["processes"]]
    assert costs == sorted(costs, reverse=True)


async def test_facets_list_filter_values(api: Served) -> None:
    facets = await api.get_json("/api/facets")
    assert facets["providers"] == ["anthropic", "openai"]
    assert set(facets["processes"]) == {"python3", "node", "curl"}
    assert "ai.response" in facets["types"] and "agent.tool_result" in facets["types"]
    assert "claude-sonnet-4-5-20250929" in facets["models"]


@pytest.mark.parametrize("name", REPORT_NAMES)
async def test_every_analyze_report_is_served(
    api: Served, recorded: dict[str, Any], name: str
) -> None:
    body = await api.get_json(f"/api/reports/{name}")
    assert body["name"] == name
    assert len(body["rows"]) == len(analyze_json(recorded["db"], "--report", name)["rows"])


async def test_unknown_report_is_404(api: Served) -> None:
    assert (await api.client.get("/api/reports/everything")).status == 404


async def test_content_is_served_as_recorded_json_never_html(api: Served) -> None:
    """Prompts are data: served as JSON with nosniff, so no browser renders them."""
    response = await api.client.get("/api/events", params={"process": "node"})
    assert response.content_type == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert CANARY in await response.text()


async def test_without_a_store_the_api_says_so(tmp_path: Path) -> None:
    ctx = WebContext(config=Config(), db_path=None, live=LiveFeed(Counters()))
    client = await serve(ctx)
    try:
        response = await client.get("/api/events")
        assert response.status == 503
        assert "--no-db" in (await response.json())["error"]
    finally:
        await client.close()


# --- the OpenAPI description --------------------------------------------------------------------


def test_openapi_describes_every_route_and_nothing_else() -> None:
    from tests.unit.web.conftest import create_app  # the real app, as the sensor builds it

    spec = orjson.loads(OPENAPI.read_bytes())
    assert spec["openapi"].startswith("3.1")
    described = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete", "patch")
    }
    ctx = WebContext(config=Config(), db_path=None, live=LiveFeed(Counters()))
    from oisp_sensor.web.security import AccessPolicy

    served = {
        (m, p)
        for m, p in route_table(create_app(ctx, AccessPolicy("127.0.0.1", 7777)))
        if p.startswith("/api/")
    }
    assert described == served
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            assert "200" in op["responses"] or "101" in op["responses"], f"{method} {path}"
