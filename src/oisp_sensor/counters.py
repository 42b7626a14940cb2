"""Named counters shared by every layer: drops, decode errors, bytes seen.

Bad input is never fatal, so counting it is how a user finds out it happened
(`oisp-sensor status`, the dashboard and the logs all read these).
"""

from __future__ import annotations

from collections import Counter


class Counters:
    """A plain, single-threaded bag of monotonically increasing integers."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        self._values[name] += n

    def get(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        """A copy, sorted by name, safe to serialise or hand to another task."""
        return dict(sorted(self._values.items()))
