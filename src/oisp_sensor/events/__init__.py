"""OISP v0.1 event models and RawCapture. Pure data: imports nothing else of ours."""

from oisp_sensor.events.envelope import (
    CaptureMethod,
    Event,
    EventType,
    provider_label,
    rfc3339,
)
from oisp_sensor.events.raw import CaptureKind, ConnKey, RawCapture

__all__ = [
    "CaptureKind",
    "CaptureMethod",
    "ConnKey",
    "Event",
    "EventType",
    "RawCapture",
    "provider_label",
    "rfc3339",
]
