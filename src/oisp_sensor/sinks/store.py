"""The SQLite store sink: the default place events go.

All SQLite work happens on one dedicated writer thread that owns the connection,
so a slow disk or a long retention pass never blocks the event loop (capture,
relay, web). Retention runs at start and then every `prune_every_s`, one short
chunk per job, so writes queued behind it wait milliseconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from oisp_sensor.counters import Counters
from oisp_sensor.errors import SinkError
from oisp_sensor.events import Event
from oisp_sensor.store import EventStore, Retention
from oisp_sensor.store.db import DELETE_CHUNK

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreSink:
    name = "store"
    paces_pipeline = True  # its writer thread competes for the GIL (pipeline.PACE_S)

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float = 7.0,
        prune_every_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5_000,
        counters: Counters | None = None,
    ) -> None:
        self.path = path
        self.retention = Retention(retention_days, clock=clock)
        self.prune_every_s = prune_every_s
        self.busy_timeout_ms = busy_timeout_ms
        self.counters = counters
        self._store: EventStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._pruned_once = asyncio.Event()

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise SinkError("store sink used before start()")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="oisp-store")
        try:
            await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._pruner = asyncio.create_task(self._prune_loop(), name="store-retention")

    def _open(self) -> None:
        self._store = EventStore(self.path, busy_timeout_ms=self.busy_timeout_ms)

    async def write(self, batch: Sequence[Event]) -> None:
        await self._call(self._write, list(batch))

    def _write(self, batch: list[Event]) -> int:
        assert self._store is not None
        return self._store.write(batch)

    # --- retention -------------------------------------------------------------------------

    async def prune_now(self) -> int:
        """Run one full retention pass in short chunks; returns how many events went."""
        total = 0
        while True:
            removed = await self._call(self._prune_chunk)
            total += removed
            if removed < DELETE_CHUNK:
                break
        if total:
            await self._call(self._release)
            if self.counters is not None:
                self.counters.inc("store.pruned", total)
            log.info(
                "retention: removed %d events older than %g days from %s",
                total,
                self.retention.days,
                self.path,
            )
        return total

    def _prune_chunk(self) -> int:
        assert self._store is not None
        cutoff = self.retention.cutoff_ns()
        return self._store.delete_chunk("ts_ns < ?", [cutoff])

    def _release(self) -> None:
        assert self._store is not None
        self._store.release_free_pages()

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass is retried next period; writing goes on
                if self.counters is not None:
                    self.counters.inc("store.prune_errors")
                log.exception("retention pass over %s failed", self.path)
            self._pruned_once.set()
            await asyncio.sleep(self.prune_every_s)

    async def wait_pruned(self) -> None:
        """Until the pass made at start has finished (tests, `demo`)."""
        await self._pruned_once.wait()

    # --- facts and shutdown ----------------------------------------------------------------

    async def size_bytes(self) -> int:
        return await self._call(self._size)

    def _size(self) -> int:
        return self._store.size_bytes() if self._store else 0

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self._executor is not None:
            with contextlib.suppress(Exception):
                await self._call(self._close)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
