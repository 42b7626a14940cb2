"""The one interface every sink implements, and the runner that isolates each sink.

Each sink gets its own bounded queue and task (mitmproxy's broadcaster pattern):
capture never waits for a sink, a slow sink drops and counts instead of stalling
the others, and a failing sink logs and counts instead of stopping the sensor.

The queue is bounded in bytes as well as in events: a sink that falls behind during
a burst keeps up to `queue_bytes` of encoded events (the JSON the pipeline sealed)
and catches up afterwards, whatever the events' sizes; only past that bound does it
drop. The events in a queue are shared with the other sinks' queues, so the memory
they hold is that of the fullest queue, not the sum.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event

log = logging.getLogger(__name__)

# Measured: a queued event holds 2-4x its JSON in memory (the JSON itself included), so
# a full queue costs ~100 MB at most, and only a sink that is falling behind fills one.
QUEUE_EVENTS = 100_000
QUEUE_BYTES = 32 * 1024 * 1024
BATCH_EVENTS = 2_000
BATCH_BYTES = 4 * 1024 * 1024
# A write in flight longer than this is a stuck sink (a locked database, a full disk):
# nothing waits for it any more, its queue fills and drops instead.
STALL_S = 1.0


@runtime_checkable
class Sink(Protocol):
    name: str

    async def start(self) -> None: ...
    async def write(self, batch: Sequence[Event]) -> None: ...
    async def close(self) -> None: ...  # flush what is queued


def event_size(event: Event) -> int:
    """What an event weighs in a queue: its encoded JSON (sealed events: free to ask)."""
    return len(event.json_bytes())


class SinkRunner:
    """Feeds one sink from its own bounded queue, in batches of whatever has arrived.

    One batch per wake-up: while the sink writes one batch the next one gathers, so a
    busy sink writes large batches (one transaction, one write call) and an idle one
    writes each event at once.
    """

    def __init__(
        self,
        sink: Sink,
        counters: Counters,
        *,
        queue_size: int = QUEUE_EVENTS,
        queue_bytes: int = QUEUE_BYTES,
        max_batch: int = BATCH_EVENTS,
        max_batch_bytes: int = BATCH_BYTES,
        stall_s: float = STALL_S,
    ) -> None:
        self.sink = sink
        self.counters = counters
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.stall_s = stall_s
        self._writing_since: float | None = None  # monotonic time the current write began
        self._pending: collections.deque[tuple[Event, int]] = collections.deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._prefix = f"sink.{sink.name}"
        self._dropped = f"{self._prefix}.dropped"

    @property
    def backlog(self) -> int:
        """Events queued and not yet handed to the sink."""
        return len(self._pending)

    @property
    def backlog_bytes(self) -> int:
        return self._pending_bytes

    def behind(self) -> bool:
        """More than one batch waiting, and the sink still making progress (not stalled)."""
        if len(self._pending) <= min(self.max_batch, self.queue_size // 4) and (
            self._pending_bytes <= min(self.max_batch_bytes, self.queue_bytes // 4)
        ):
            return False
        if self._task is None or self._task.done():
            return False  # nothing will drain it
        since = self._writing_since
        return since is None or time.monotonic() - since < self.stall_s

    def over_half(self) -> bool:
        """Past half of either bound: a producer that can wait should (replay)."""
        return (
            len(self._pending) > self.queue_size // 2 or self._pending_bytes > self.queue_bytes // 2
        )

    async def start(self) -> None:
        await self.sink.start()
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.sink.name}")

    def offer(self, event: Event) -> bool:
        """Queue one event; False (and counted) when the queue is full."""
        return self.offer_many((event,)) == 1

    def offer_many(self, events: Sequence[Event]) -> int:
        """Queue events in order; past either bound the rest are dropped and counted."""
        pending, size = self._pending, self._pending_bytes
        room = self.queue_size - len(pending)
        accepted = 0
        for event in events:
            n = event_size(event)
            if accepted >= room or (size + n > self.queue_bytes and pending):
                break
            pending.append((event, n))
            size += n
            accepted += 1
        self._pending_bytes = size
        if accepted < len(events):
            self.counters.inc(self._dropped, len(events) - accepted)
        if accepted:
            self._wake.set()
        return accepted

    def _take(self) -> list[Event]:
        pending = self._pending
        batch: list[Event] = []
        size = 0
        while pending and len(batch) < self.max_batch:
            event, n = pending[0]
            if batch and size + n > self.max_batch_bytes:
                break
            pending.popleft()
            batch.append(event)
            size += n
        self._pending_bytes -= size
        return batch

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._take()
            self._writing_since = time.monotonic()
            try:
                await self.sink.write(batch)
                self.counters.inc(f"{self._prefix}.written", len(batch))
            except Exception:  # a sink's failure must not end the sensor
                self.counters.inc(f"{self._prefix}.errors", len(batch))
                log.exception("sink %s failed to write %d events", self.sink.name, len(batch))
            finally:
                self._writing_since = None
            # A sink whose write never awaits (JSONL) must still let the pipeline run.
            await asyncio.sleep(0)

    async def close(self) -> None:
        """Write everything queued, then close the sink."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.sink.close()
        except Exception:
            log.exception("sink %s failed to close", self.sink.name)
