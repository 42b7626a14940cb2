"""Filters (one SQL implementation for every reader) and human time bounds."""

from __future__ import annotations

from datetime import datetime

import pytest

from oisp_sensor.events import Event
from oisp_sensor.store import EventFilter, EventStore, select_events, select_new
from oisp_sensor.store.query import count_matching
from oisp_sensor.store.timespec import parse_duration, parse_when
from tests.helpers import T0


@pytest.fixture
def store(events: list[Event]) -> EventStore:
    s = EventStore.memory()
    s.write(events)
    return s


def _types(store: EventStore, flt: EventFilter) -> list[str]:
    return [s.event["event_type"] for s in select_events(store, flt)]


def test_no_filter_gives_every_event_in_time_order(store: EventStore, events: list[Event]) -> None:
    got = select_events(store, EventFilter())
    assert [s.event["event_id"] for s in got] == [e.event_id for e in events]
    assert [s.event["ts"] for s in got] == sorted(s.event["ts"] for s in got)


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (("ai.response",), {"ai.response"}),
        (("agent",), {"agent.tool_call", "agent.tool_result"}),
        (("agent.*",), {"agent.tool_call", "agent.tool_result"}),
        (("ai.request", "agent.tool_call"), {"ai.request", "agent.tool_call"}),
        (("ai.respon",), set()),  # a prefix is a whole dotted segment, not any text
    ],
)
def test_type_filter(store: EventStore, types: tuple[str, ...], expected: set[str]) -> None:
    assert set(_types(store, EventFilter(types=types))) == expected


def test_process_filter_by_name_wildcard_and_pid(store: EventStore) -> None:
    names = {
        s.event["process"]["name"]
        for s in select_events(store, EventFilter(processes=("PYTHON3",)))
    }
    assert names == {"python3"}
    assert count_matching(store, EventFilter(processes=("py*",))) == count_matching(
        store, EventFilter(processes=("1001",))
    )
    assert count_matching(store, EventFilter(processes=("node", "curl"))) == 4


def test_provider_and_model_filters(store: EventStore) -> None:
    anthropic = select_events(store, EventFilter(providers=("Anthropic",)))
    assert {s.event["data"]["provider"]["name"] for s in anthropic} == {"anthropic"}
    dated = select_events(store, EventFilter(models=("gpt-4o-mini-2*",)))
    assert dated and all(s.event["data"]["model"]["id"].startswith("gpt-4o-mini-2") for s in dated)
    assert count_matching(store, EventFilter(models=("gpt_4o*",))) == 0  # _ is not a wildcard


def test_time_bounds_are_inclusive_then_exclusive(store: EventStore) -> None:
    second = 1_000_000_000
    during = select_events(store, EventFilter(since_ns=T0 + 5 * second, until_ns=T0 + 9 * second))
    assert {s.event["process"]["name"] for s in during} == {"node"}


def test_limit_gives_the_most_recent_in_time_order(store: EventStore, events: list[Event]) -> None:
    got = select_events(store, EventFilter(), limit=3)
    assert [s.event["event_id"] for s in got] == [e.event_id for e in events[-3:]]


def test_select_new_reads_an_id_range(store: EventStore, events: list[Event]) -> None:
    newest = store.max_id()
    assert select_new(store, EventFilter(), newest, newest) == []
    tail = select_new(store, EventFilter(types=("ai.response",)), newest - 4, newest)
    assert all(s.id > newest - 4 for s in tail)
    assert {s.event["event_type"] for s in tail} == {"ai.response"}


def test_filter_values_are_parameters_not_sql(store: EventStore) -> None:
    evil = "x' OR '1'='1"
    assert count_matching(store, EventFilter(processes=(evil,), providers=(evil,))) == 0


# --- time forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("7", 604_800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_says_what_works() -> None:
    with pytest.raises(ValueError, match="30m, 1h, 7d"):
        parse_duration("soon")


def test_points_in_time() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert parse_when("1h", now=now) == int((now - 3600) * 1e9)
    assert parse_when("2026-01-01T00:00:00Z", now=now) == int(now * 1e9)
    assert parse_when("2025-12-31T23:00:00+00:00") == int((now - 3600) * 1e9)
    local_midnight = datetime(2026, 1, 1).astimezone()
    assert parse_when("2026-01-01") == int(local_midnight.timestamp()) * 1_000_000_000
    today = parse_when("today", now=now)
    assert parse_when("yesterday", now=now) == today - 86_400 * 1_000_000_000
    assert parse_when("now", now=now) == int(now * 1e9)


def test_bad_time_says_what_works() -> None:
    with pytest.raises(ValueError, match="1h, 30m, 2d"):
        parse_when("last tuesday")
