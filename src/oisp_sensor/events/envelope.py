"""The OISP v0.1 event envelope (schema/v0.1/envelope.schema.json).

`data` holds the event-type payload as a plain dict whose keys are the spec's field
names (see `data.py` for their typed shapes); keeping it a dict makes redaction,
JSON encoding and storage one code path for every event type.

After redaction the pipeline `seal()`s each event: its wire form is built and
encoded once, and every sink (JSONL line, store body, live feed, exporters) shares
those bytes instead of serialising the same event again.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from oisp_sensor import __version__
from oisp_sensor.events.ulid import new_ulid

OISP_VERSION = "0.1"
COLLECTOR = "oisp-sensor"


class EventType(StrEnum):
    AI_REQUEST = "ai.request"
    AI_RESPONSE = "ai.response"
    AI_STREAMING_CHUNK = "ai.streaming_chunk"
    AGENT_TOOL_CALL = "agent.tool_call"
    AGENT_TOOL_RESULT = "agent.tool_result"
    NETWORK_CONNECT = "network.connect"


class CaptureMethod(StrEnum):
    """The spec's `source.capture_method` values that our sources produce."""

    MITM_PROXY = "mitm_proxy"
    TLS_BOUNDARY = "tls_boundary"
    EBPF_UPROBE = "ebpf_uprobe"
    OTHER = "other"


# (second, its formatted date and time): events come in bursts within the same second.
_last_second: tuple[int, str] = (-1, "")


def rfc3339(ts_ns: int) -> str:
    """`2025-12-22T14:30:16.345678Z` — RFC 3339, UTC, microsecond precision."""
    global _last_second
    secs, ns = divmod(ts_ns, 1_000_000_000)
    second, text = _last_second  # one read: another thread may replace it meanwhile
    if second != secs:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _last_second = (secs, text)
    return f"{text}.{ns // 1000:06d}Z"


@dataclass(slots=True, kw_only=True)
class Event:
    """One OISP event. Mutable only until it leaves the pipeline's redaction step."""

    event_type: str
    ts_ns: int
    data: dict[str, Any]
    event_id: str = ""
    ts_mono: int | None = None
    host: dict[str, Any] | None = None
    actor: dict[str, Any] | None = None
    process: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    web_context: dict[str, Any] | None = None
    capture_method: str = CaptureMethod.OTHER
    capture_point: str | None = None
    confidence: dict[str, Any] = field(
        default_factory=lambda: {"level": "high", "completeness": "full"}
    )
    attrs: dict[str, Any] = field(default_factory=dict)
    related_events: list[dict[str, str]] = field(default_factory=list)
    # The wire form and its JSON, frozen by `seal()`; None until then.
    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.event_id:
            self.event_id = new_ulid(self.ts_ns)

    def relate(self, event_id: str, relationship: str) -> None:
        self.related_events.append({"event_id": event_id, "relationship": relationship})

    def mark_partial(self, reason: str, *, missing: str | None = None) -> None:
        """Flag that we know only part of what happened, and say why."""
        self.confidence["completeness"] = "partial"
        reasons = self.confidence.setdefault("limitations", [])
        if reason not in reasons:
            reasons.append(reason)
        if missing:
            gaps = self.confidence.setdefault("missing", [])
            if missing not in gaps:
                gaps.append(missing)

    def to_dict(self) -> dict[str, Any]:
        """The wire form, keys in the spec's order, optional parts left out when empty."""
        out: dict[str, Any] = {
            "oisp_version": OISP_VERSION,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "ts": rfc3339(self.ts_ns),
        }
        if self.ts_mono is not None:
            out["ts_mono"] = self.ts_mono
        for key in ("host", "actor", "process", "app", "web_context"):
            value = getattr(self, key)
            if value:
                out[key] = value
        source: dict[str, Any] = {
            "collector": COLLECTOR,
            "collector_version": __version__,
            "capture_method": self.capture_method,
        }
        if self.capture_point:
            source["capture_point"] = self.capture_point
        out["source"] = source
        out["confidence"] = self.confidence
        out["data"] = self.data
        if self.attrs:
            out["attrs"] = self.attrs
        if self.related_events:
            out["related_events"] = self.related_events
        return out

    def seal(self) -> bytes:
        """Build and encode the wire form once, for every sink to share; returns the JSON.

        Called by the pipeline after redaction, when the event stops changing. A change
        made after sealing would not show in `wire()`/`json()`, so nothing makes one.
        """
        wire = self.to_dict()
        self._wire = wire
        # A copy of exact size: orjson's own buffer has several times the capacity it
        # fills (8 KiB for 1 KiB of JSON), and sealed events may wait in sink queues.
        self._json = memoryview(orjson.dumps(wire)).tobytes()
        return self._json

    @property
    def sealed(self) -> bool:
        return self._json is not None

    def wire(self) -> dict[str, Any]:
        """The wire form: the sealed one, or built now for an event not sealed yet."""
        return self._wire if self._wire is not None else self.to_dict()

    def json_bytes(self) -> bytes:
        """The wire form as compact JSON (orjson), the bytes a JSONL line holds."""
        return self._json if self._json is not None else orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        """Inverse of `to_dict`, for events read back from JSONL or the store."""
        ts = datetime.fromisoformat(raw["ts"].replace("Z", "+00:00"))
        source = raw.get("source") or {}
        return cls(
            event_type=raw["event_type"],
            ts_ns=calendar.timegm(ts.utctimetuple()) * 1_000_000_000 + ts.microsecond * 1000,
            data=raw.get("data") or {},
            event_id=raw["event_id"],
            ts_mono=raw.get("ts_mono"),
            host=raw.get("host"),
            actor=raw.get("actor"),
            process=raw.get("process"),
            app=raw.get("app"),
            web_context=raw.get("web_context"),
            capture_method=source.get("capture_method", CaptureMethod.OTHER),
            capture_point=source.get("capture_point"),
            confidence=raw.get("confidence") or {"level": "high", "completeness": "full"},
            attrs=raw.get("attrs") or {},
            related_events=raw.get("related_events") or [],
        )


def provider_label(event: Event | dict[str, Any]) -> str | None:
    """The provider name users see: our id (e.g. `deepseek`) where the spec says `other`."""
    data = event.data if isinstance(event, Event) else event.get("data") or {}
    attrs = event.attrs if isinstance(event, Event) else event.get("attrs") or {}
    provider = data.get("provider")
    label = attrs.get("provider_id")
    if label:
        return str(label)
    if isinstance(provider, dict) and provider.get("name"):
        return str(provider["name"])
    return None
