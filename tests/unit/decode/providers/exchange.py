"""Shared steps of the API-shape tests: decode exchanges, validate, compare splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.conformance import assert_valid_events
from tests.helpers import captures, decode, of_type, stable

Events = list[dict[str, Any]]

_TIMING = ("latency_ms", "time_to_first_token_ms", "duration_ms")


def run(
    exchanges: Sequence[tuple[bytes, bytes]],
    *,
    host: str = "api.openai.com",
    port: int = 443,
    splits: Sequence[int] | None = None,
) -> Events:
    """Events of exchanges on one connection, checked against the OISP schemas."""
    events = decode(captures(exchanges, host=host, port=port, splits=splits))
    assert_valid_events(events)
    return events


def one(events: Events, event_type: str) -> dict[str, Any]:
    found = of_type(events, event_type)
    assert len(found) == 1, [e["event_type"] for e in events]
    return found[0]


def comparable(events: Events) -> Events:
    """Events without ids and capture timing, which differ with how bytes were split."""
    out = stable(events)
    for e in out:
        e.pop("ts")
        for key in _TIMING:
            e["data"].pop(key, None)
        e["attrs"].pop("conversation_id", None)
    return out
