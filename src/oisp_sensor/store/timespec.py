"""Human time bounds for filters: `1h`, `30m`, `2d`, `1w`, `today`, `2026-01-01`, RFC 3339.

Relative forms count back from `now`; a date without a time is local midnight,
like a user reading a calendar would mean it. Times are Unix nanoseconds.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|weeks?)?\s*$"
)


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `1h`, `7d`, `2w` (a bare number is days, as in retention) -> seconds."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"expected a duration such as 30m, 1h, 7d or 2w, got {text!r}")
    value, unit = float(match.group(1)), (match.group(2) or "d")[0]
    return value * _UNITS[unit]


def parse_when(text: str, *, now: float | None = None) -> int:
    """A point in time from a human form; raises ValueError saying which forms work."""
    now = time.time() if now is None else now
    lowered = text.strip().lower()
    if lowered == "now":
        return int(now * 1e9)
    if lowered in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if lowered == "yesterday":
            midnight -= timedelta(days=1)
        return int(midnight.timestamp()) * 1_000_000_000
    if re.match(r"^\d+(\.\d+)?\s*[a-z]+$", lowered):
        try:
            return int((now - parse_duration(lowered)) * 1e9)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ValueError(
            f"expected a time such as 1h, 30m, 2d (ago), today, 2026-01-01 or "
            f"2026-01-01T12:00:00Z, got {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time, as the user typed it
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000
