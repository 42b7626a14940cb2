"""Events for enricher tests: the shapes the decoder emits, built directly or from bytes."""

from __future__ import annotations

import calendar
import dataclasses
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.events import Event, RawCapture
from tests.helpers import HASHER

OISP_NAMES = {"deepseek": "other", "xai": "other", "openrouter": "other", "perplexity": "other"}


def at(iso: str) -> int:
    """`2025-05-01T12:00:00` (UTC) as nanoseconds."""
    return calendar.timegm(datetime.fromisoformat(iso).utctimetuple()) * 1_000_000_000


def response_event(
    provider: str,
    model: str | None,
    usage: dict[str, int] | None,
    *,
    ts_ns: int | None = None,
    attrs: dict[str, Any] | None = None,
    process: dict[str, Any] | None = None,
) -> Event:
    """An ai.response as the decoder builds it: `provider` is our id (registry.py)."""
    data: dict[str, Any] = {
        "request_id": "req-1",
        "provider": {"name": OISP_NAMES.get(provider, provider)},
        "success": True,
        "status_code": 200,
    }
    if model is not None:
        data["model"] = {"id": model}
    if usage is not None:
        data["usage"] = dict(usage)
    event = Event(
        event_type="ai.response",
        ts_ns=ts_ns if ts_ns is not None else time.time_ns(),
        data=data,
        process=process,
    )
    if OISP_NAMES.get(provider) == "other":
        event.attrs["provider_id"] = provider
    event.attrs.update(attrs or {})
    return event


def decode_events(raws: Sequence[RawCapture], *, now: bool = False) -> list[Event]:
    """Decode captures into Event objects; `now` shifts their timestamps to the present
    (live enrichment only trusts the OS for recent events)."""
    if now and raws:
        shift = time.time_ns() - raws[-1].timestamp_ns
        raws = [dataclasses.replace(r, timestamp_ns=r.timestamp_ns + shift) for r in raws]
    decoder = Decoder(hasher=HASHER, counters=Counters())
    events: list[Event] = []
    for raw in raws:
        events += decoder.feed(raw)
    events += decoder.close_all()
    return events
