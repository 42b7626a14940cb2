"""The indexed columns of a stored event, derived from its wire form.

The event itself is kept whole as JSON; these columns exist so filters and
reports never parse JSON. One function derives them for every way an event
arrives (live from the pipeline, imported from JSONL), so the store and a JSONL
file answer the same question the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from oisp_sensor.events import provider_label

# Order matters: it is the INSERT column order.
COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts_ns",
    "event_type",
    "provider",
    "model",
    "request_id",
    "conversation_id",
    "pid",
    "process_name",
    "app",
    "success",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "input_cost_usd",
    "output_cost_usd",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "tool_name",
    "call_id",
    "duration_ms",
)

Row = tuple[Any, ...]


class NotAnEvent(ValueError):
    """A JSON object that lacks what every OISP event has (event_id, event_type, ts)."""


def parse_ts_ns(ts: str) -> int:
    """RFC 3339 (`2026-01-01T00:00:00.123456Z`, any offset) -> Unix nanoseconds."""
    parsed = datetime.fromisoformat(ts)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {ts!r}")
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def row_from_dict(event: dict[str, Any], ts_ns: int | None = None) -> Row:
    """The column values of one event in wire form; raises NotAnEvent when it is not one.

    Values of the wrong type (a hand-edited file) become NULL rather than errors:
    a report over a slightly odd file should still run.
    """
    event_id = event.get("event_id")
    event_type = event.get("event_type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise NotAnEvent("not an OISP event (needs event_id, event_type and ts)")
    if ts_ns is None:
        ts = event.get("ts")
        if not isinstance(ts, str):
            raise NotAnEvent("not an OISP event (needs event_id, event_type and ts)")
        try:
            ts_ns = parse_ts_ns(ts)
        except ValueError as e:
            raise NotAnEvent(f"bad ts {ts!r}: {e}") from e
    data = _dict(event.get("data"))
    process = _dict(event.get("process"))
    app = _dict(event.get("app"))
    usage = _dict(data.get("usage"))
    model = _dict(data.get("model"))
    tool = _dict(data.get("tool"))
    success = data.get("success")
    return (
        event_id,
        ts_ns,
        event_type,
        provider_label(event),
        _str(model.get("id")) or _str(model.get("name")),
        _str(data.get("request_id")),
        _str(data.get("conversation_id")),
        _int(process.get("pid")),
        _str(process.get("name")),
        _str(app.get("name")) or _str(app.get("app_id")),
        int(success) if isinstance(success, bool) else None,
        _int(data.get("status_code")),
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(usage.get("total_tokens")),
        _int(usage.get("cached_tokens")),
        _int(usage.get("reasoning_tokens")),
        _num(usage.get("input_cost_usd")),
        _num(usage.get("output_cost_usd")),
        _num(usage.get("total_cost_usd")),
        _num(data.get("latency_ms")),
        _num(data.get("time_to_first_token_ms")),
        _str(tool.get("name")),
        _str(data.get("call_id")),
        _num(data.get("duration_ms")),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    return value if isinstance(value, (int, float)) else None
