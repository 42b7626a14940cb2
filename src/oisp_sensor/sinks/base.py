"""The one interface every sink implements, and the runner that isolates each sink.

Each sink gets its own bounded queue and task (mitmproxy's broadcaster pattern):
capture never waits for a sink, a slow sink drops and counts instead of stalling
the others, and a failing sink logs and counts instead of stopping the sensor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    name: str

    async def start(self) -> None: ...
    async def write(self, batch: Sequence[Event]) -> None: ...
    async def close(self) -> None: ...  # flush what is queued


class SinkRunner:
    """Feeds one sink from its own bounded queue, in batches."""

    def __init__(
        self, sink: Sink, counters: Counters, *, queue_size: int = 10_000, max_batch: int = 500
    ) -> None:
        self.sink = sink
        self.counters = counters
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(queue_size)
        self.max_batch = max_batch
        self._task: asyncio.Task[None] | None = None
        self._prefix = f"sink.{sink.name}"

    async def start(self) -> None:
        await self.sink.start()
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.sink.name}")

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.counters.inc(f"{self._prefix}.dropped")

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch: list[Event] = []
            done = first is None
            if first is not None:
                batch.append(first)
            while not done and len(batch) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                try:
                    await self.sink.write(batch)
                    self.counters.inc(f"{self._prefix}.written", len(batch))
                except Exception:  # a sink's failure must not end the sensor
                    self.counters.inc(f"{self._prefix}.errors")
                    log.exception("sink %s failed to write %d events", self.sink.name, len(batch))
            if done:
                return

    async def close(self) -> None:
        """Write everything queued, then close the sink."""
        if self._task is not None:
            await self.queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.sink.close()
        except Exception:
            log.exception("sink %s failed to close", self.sink.name)
