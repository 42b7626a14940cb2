"""Retention: events older than `retention.days` are deleted, at start and periodically.

The clock is injectable so tests can move time instead of waiting for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from oisp_sensor.store.db import EventStore, Progress

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # Unix seconds, like time.time


class Retention:
    def __init__(self, days: float, *, clock: Clock = time.time) -> None:
        if days <= 0:
            raise ValueError("retention days must be positive")
        self.days = days
        self.clock = clock

    def cutoff_ns(self) -> int:
        return int((self.clock() - self.days * 86_400) * 1e9)

    def prune(self, store: EventStore, *, progress: Progress | None = None) -> int:
        """Delete events older than the window; returns how many went."""
        removed = store.delete_where("ts_ns < ?", [self.cutoff_ns()], progress=progress)
        if removed:
            store.release_free_pages()
            log.info(
                "retention: removed %d events older than %g days from %s",
                removed,
                self.days,
                store.name,
            )
        return removed
