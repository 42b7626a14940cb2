"""The OISP envelope: wire form, round trip, flags, ids."""

from __future__ import annotations

import re
import time

import orjson
import pytest

from oisp_sensor.events import Event, EventType, provider_label, rfc3339
from oisp_sensor.events.ulid import new_ulid
from tests.conformance import assert_valid_events

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def test_rfc3339_is_utc_with_microseconds() -> None:
    assert rfc3339(T0) == "2026-01-01T00:00:00.000000Z"
    assert rfc3339(T0 + 123_456_789) == "2026-01-01T00:00:00.123456Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"


def test_ulid_time_part_is_the_capture_time() -> None:
    a, b = new_ulid(T0), new_ulid(T0 + 1_000_000)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", a)
    assert a[:10] < b[:10]  # ordered by millisecond
    assert new_ulid(T0)[:10] == a[:10] and new_ulid(T0) != a  # random part differs


def test_minimal_event_is_valid_and_round_trips() -> None:
    event = Event(event_type=EventType.NETWORK_CONNECT, ts_ns=T0, data={"dest": {"port": 443}})
    wire = event.to_dict()
    assert list(wire)[:4] == ["oisp_version", "event_id", "event_type", "ts"]
    assert wire["source"]["collector"] == "oisp-sensor"
    assert "attrs" not in wire and "related_events" not in wire and "process" not in wire
    assert_valid_events([wire])
    back = Event.from_dict(wire)
    assert back.to_dict() == wire


def test_round_trip_keeps_every_part() -> None:
    event = Event(
        event_type=EventType.AI_REQUEST,
        ts_ns=T0 + 987_654_000,
        data={"request_id": "req_1", "request_type": "chat"},
        ts_mono=42,
        host={"hostname": "box"},
        actor={"uid": 1000},
        process={"pid": 7, "name": "python3"},
        web_context={"origin": "https://example.com"},
        capture_method="mitm_proxy",
        capture_point="ssl_write",
        attrs={"api": "openai.chat"},
    )
    event.relate("01ARZ3NDEKTSV4RRFFQ69G5FAV", "parent")
    wire = event.to_dict()
    assert_valid_events([wire])
    assert Event.from_dict(wire).to_dict() == wire


def test_mark_partial_collects_distinct_reasons_and_missing_parts() -> None:
    event = Event(event_type=EventType.AI_RESPONSE, ts_ns=T0, data={})
    event.mark_partial("connection closed", missing="response_body")
    event.mark_partial("connection closed", missing="response_body")
    event.mark_partial("decode error")
    assert event.confidence == {
        "level": "high",
        "completeness": "partial",
        "limitations": ["connection closed", "decode error"],
        "missing": ["response_body"],
    }
    assert_valid_events([event.to_dict()])


def test_provider_label_prefers_our_id_over_the_spec_enum() -> None:
    event = Event(
        event_type=EventType.AI_REQUEST,
        ts_ns=T0,
        data={"provider": {"name": "other"}},
        attrs={"provider_id": "deepseek"},
    )
    assert provider_label(event) == "deepseek"
    assert provider_label({"data": {"provider": {"name": "openai"}}}) == "openai"
    assert provider_label({"data": {}}) is None


def _reference_ulid(ts_ns: int, random80: int) -> str:
    """The ULID spec's encoding, digit by digit (what `new_ulid` must give)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = ((ts_ns // 1_000_000) & ((1 << 48) - 1)) << 80 | random80
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_ulid_matches_the_reference_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import oisp_sensor.events.ulid as ulid

    for ts, rnd in [(0, 0), (T0, 1), (2**63 - 1, 2**80 - 1), (T0 + 123_456_789, 0xDEADBEEF << 40)]:
        monkeypatch.setattr(ulid, "_random", iter([rnd]))
        assert new_ulid(ts) == _reference_ulid(ts, rnd)


def test_ulid_random_parts_are_fresh_across_refills() -> None:
    """The pre-drawn randomness runs out and is refilled without repeating a value."""
    ids = [new_ulid(T0) for _ in range(3 * 512 + 7)]
    assert len(set(ids)) == len(ids)


def test_rfc3339_is_right_across_second_boundaries() -> None:
    """The formatted second is reused within a second, never across one."""
    stamps = [T0 + 999_999_999, T0 + 1_000_000_000, T0 - 1, T0, 86_400 * 10**9 * 365]
    for ts in stamps + stamps[::-1]:
        secs, ns = divmod(ts, 10**9)
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"
        assert rfc3339(ts) == expected


def test_a_sealed_event_shares_one_encoding() -> None:
    event = Event(
        event_type=EventType.AI_REQUEST,
        ts_ns=T0,
        data={"request_id": "req_1", "messages": [{"role": "user", "content": "héllo \u2028"}]},
        attrs={"api": "openai.chat"},
    )
    assert not event.sealed
    assert event.json_bytes() == orjson.dumps(event.to_dict())  # unsealed: built on demand
    encoded = event.seal()
    assert event.sealed and event.json_bytes() is encoded
    assert encoded == orjson.dumps(event.to_dict())
    assert event.wire() == event.to_dict() and event.wire() is event.wire()
    assert_valid_events([orjson.loads(encoded)])
    # Equality and repr are about the event, not whether it was encoded yet.
    twin = Event.from_dict(event.to_dict())
    assert twin == event and "_json" not in repr(event)
