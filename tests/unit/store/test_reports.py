"""analyze reports: numbers that follow from the events, absent values kept absent."""

from __future__ import annotations

from typing import Any

import pytest

from oisp_sensor.events import Event
from oisp_sensor.store import EventFilter, EventStore
from oisp_sensor.store.reports import REPORT_NAMES, run_report
from tests.conformance import assert_valid_events
from tests.helpers import T0


@pytest.fixture
def store(events: list[Event]) -> EventStore:
    s = EventStore.memory()
    s.write(events)
    return s


def _responses(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event_type == "ai.response"]


def _summary(store: EventStore, flt: EventFilter | None = None) -> dict[str, Any]:
    return {r["metric"]: r["value"] for r in run_report("summary", store, flt).rows}


def test_summary_adds_up(store: EventStore, events: list[Event]) -> None:
    summary = _summary(store)
    responses = _responses(events)
    usages = [r["usage"] for r in responses if "usage" in r]
    assert summary["events"] == len(events)
    assert summary["responses"] == len(responses)
    assert summary["errors"] == sum(1 for r in responses if r["success"] is False)
    assert summary["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert summary["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert summary["cost_usd"] == pytest.approx(
        sum(u["total_cost_usd"] for u in usages if "total_cost_usd" in u)
    )
    # corp-llama-70b has tokens but no price; the rate-limited call has neither.
    assert summary["unpriced_responses"] == 1
    assert summary["processes"] == 3 and summary["providers"] == 2
    assert summary["tool_calls"] == 1 and summary["tool_results"] == 1
    assert summary[f"events.{events[0].event_type}"] >= 1


def test_summary_of_nothing_is_absent_not_zero() -> None:
    summary = _summary(EventStore.memory())
    assert summary["events"] == 0
    assert summary["cost_usd"] is None and summary["prompt_tokens"] is None
    assert summary["latency_p50_ms"] is None and summary["first_event"] is None


def test_costs_keep_unknown_prices_unknown(store: EventStore) -> None:
    report = run_report("costs", store)
    rows = {r["model"]: r for r in report.rows}
    assert rows["corp-llama-70b"]["cost_usd"] is None
    assert rows["corp-llama-70b"]["unpriced"] == 1
    priced = [r for r in report.rows if r["cost_usd"] is not None]
    assert sum(r["share"] for r in priced) == pytest.approx(1.0)
    assert report.totals is not None
    assert report.totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in priced))
    assert report.rows[0]["cost_usd"] == max(r["cost_usd"] for r in priced)  # biggest first
    assert any("not counted as $0" in n for n in report.notes)


def test_models_count_each_call_once_under_the_model_that_answered(
    store: EventStore, events: list[Event]
) -> None:
    rows = run_report("models", store).rows
    assert sum(r["calls"] for r in rows) == len(_responses(events))
    answered = {r["model"]: r for r in rows}
    assert answered["gpt-4o-mini-2024-07-18"]["calls"] == 2
    # The rate-limited call has only the model it asked for.
    assert answered["gpt-4o-mini"]["errors"] == 1
    assert answered["gpt-4o-mini"]["error_rate"] == 1.0


def test_a_request_without_response_is_counted_apart() -> None:
    store = EventStore.memory()
    orphan = Event(
        event_type="ai.request",
        ts_ns=T0,
        data={
            "request_id": "req_lost",
            "provider": {"name": "openai"},
            "model": {"id": "gpt-4o"},
            "messages_count": 1,
        },
    )
    assert_valid_events([orphan.to_dict()])
    store.write([orphan])
    (row,) = run_report("providers", store).rows
    assert row["provider"] == "openai" and row["calls"] == 0 and row["unanswered"] == 1


def test_processes(store: EventStore, events: list[Event]) -> None:
    rows = {r["process"]: r for r in run_report("processes", store).rows}
    assert set(rows) == {"python3", "node", "curl"}
    assert rows["python3"]["events"] == sum(
        1 for e in events if (e.process or {}).get("name") == "python3"
    )
    assert rows["node"]["providers"] == "anthropic"


def _tool_traffic() -> list[Event]:
    ms = 1_000_000
    shell = {"name": "run_shell", "type": "shell"}
    out = [
        Event(event_type="agent.tool_call", ts_ns=T0, data={"tool": shell, "call_id": "c1"}),
        Event(
            event_type="agent.tool_result",
            ts_ns=T0 + 300 * ms,
            data={"call_id": "c1", "success": False, "duration_ms": 300},
        ),
        Event(
            event_type="agent.tool_call",
            ts_ns=T0 + 1000 * ms,
            data={"tool": shell, "call_id": "c2"},
        ),
        Event(
            event_type="agent.tool_result",
            ts_ns=T0 + 1100 * ms,
            data={"call_id": "c2", "tool": shell, "success": True},  # no duration: from ts
        ),
        Event(
            event_type="agent.tool_call",
            ts_ns=T0 + 2000 * ms,
            data={"tool": shell, "call_id": "c3"},
        ),
    ]
    assert_valid_events([e.to_dict() for e in out])
    return out


def test_tools_report_failures_and_round_trips() -> None:
    store = EventStore.memory()
    store.write(_tool_traffic())
    (row,) = run_report("tools", store).rows
    assert row["tool"] == "run_shell"
    assert (row["calls"], row["results"], row["failures"], row["unanswered"]) == (3, 2, 1, 1)
    assert row["failure_rate"] == 0.5
    assert (row["rt_p50_ms"], row["rt_p95_ms"]) == (100.0, 300.0)
    assert row["rt_mean_ms"] == 200.0


def test_conversations_most_recent_first(store: EventStore) -> None:
    rows = run_report("conversations", store).rows
    assert [r["last_seen"] for r in rows] == sorted((r["last_seen"] for r in rows), reverse=True)
    assert sum(r["calls"] for r in rows) == 5


def test_filters_and_limits_apply_to_reports(store: EventStore) -> None:
    only_node = _summary(store, EventFilter(processes=("node",)))
    assert only_node["processes"] == 1 and only_node["responses"] == 1
    limited = run_report("conversations", store, limit=2)
    assert len(limited.rows) == 2 and limited.total_rows == 4
    assert "showing 2 of 4" in limited.notes[-1]


@pytest.mark.parametrize("name", REPORT_NAMES)
def test_every_report_runs_on_an_empty_store(name: str) -> None:
    report = run_report(name, EventStore.memory())
    assert report.name == name
    assert report.columns


def test_unknown_report_names_the_choices() -> None:
    with pytest.raises(ValueError, match="summary, costs"):
        run_report("bogus", EventStore.memory())
