"""The only place that wires layers: capture → decode → enrich → redact → sinks.

Capture sources call `submit(raw)`, which never blocks: a full queue drops the
chunk, counts it, and marks its connection so the exchange it belonged to is
flagged incomplete rather than silently mis-decoded. `submit` runs on the pipeline's
loop: the relay, on a thread of its own, hands its captures over through
capture/relay_thread.py. One consumer task decodes, enriches and redacts, then
offers each event to every sink's own bounded queue.

Redaction happens here, before any sink and identically for every source, so no
sink can see what redaction removed. Right after it each event is sealed
(`Event.seal`): encoded to JSON once, and every sink shares those bytes.

The consumer works in slices: it decodes whatever is queued for up to `slice_s`,
then hands the slice's events to the sinks in one go and yields to the loop. Sinks
then write batches (one JSONL write, one store transaction, one live-feed message)
instead of paying their per-write cost for every event. While the store (whose
writer thread needs the GIL this loop holds) is more than a batch behind, the consumer
waits for it between slices, so a burst waits in the capture queue, not in the store's
(`PACE_S`), as long as the capture queue is under 3/4 full; a store stalled for a
second is no longer waited for.

Both the capture queue and the sinks' queues are bounded in bytes as well as in
items, so a burst is absorbed and caught up with afterwards (instead of dropped),
while the memory a backlog can hold stays bounded whatever the payload sizes:
`queue_bytes` of captured plaintext (~1.2x that in memory) plus, per sink,
`sink_queue_bytes` of encoded events (2-4x that in memory, the events being shared
between sinks, so the fullest queue is what counts). Defaults: 64 + 32 MiB, i.e.
~200 MB at most, reached only while the sensor is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.events import ConnKey, Event, EventType, RawCapture
from oisp_sensor.sinks.base import QUEUE_BYTES, QUEUE_EVENTS, Sink, SinkRunner

log = logging.getLogger(__name__)


class Enricher(Protocol):
    """Adds context (process tree, host, app, cost) to an event before redaction."""

    def enrich(self, event: Event) -> None: ...


class Redactor(Protocol):
    def redact(self, event: Event) -> Event: ...


EventListener = Callable[[Event], None]

# A queued capture holds ~1.2x its plaintext: ~80 MB when full. At the relay's measured
# 3,800 requests/s with the decoder at a third of that, ~10 s of burst fit.
CAPTURE_QUEUE = 100_000  # captures
CAPTURE_QUEUE_BYTES = 64 * 1024 * 1024  # of captured plaintext
SLICE_S = 0.005
# After a slice, while a sink whose thread needs the GIL is more than a batch behind, the
# consumer idles in steps of this: a CPU-bound loop otherwise starves that thread (every
# SQLite call releases the GIL, and getting it back waits on the busy loop) and its queue
# overflows. Measured (bench/pipeline_throughput.py, 3,800 requests/s for 10 s): the
# store dropped 62,008 of 76,010 events without this, none with it; the backlog waits in
# the capture queue instead and is caught up with after the burst.
PACE_S = 0.001


class Pipeline:
    def __init__(
        self,
        *,
        decoder: Decoder,
        sinks: Sequence[Sink] = (),
        enrichers: Sequence[Enricher] = (),
        redactor: Redactor | None = None,
        counters: Counters | None = None,
        queue_size: int = CAPTURE_QUEUE,
        queue_bytes: int = CAPTURE_QUEUE_BYTES,
        sink_queue_size: int = QUEUE_EVENTS,
        sink_queue_bytes: int = QUEUE_BYTES,
        idle_timeout_s: float = 300.0,
        slice_s: float = SLICE_S,
    ) -> None:
        self.decoder = decoder
        self.counters = counters or decoder.counters
        self.enrichers = list(enrichers)
        self.redactor = redactor
        self.runners = [
            SinkRunner(s, self.counters, queue_size=sink_queue_size, queue_bytes=sink_queue_bytes)
            for s in sinks
        ]
        self._pacers = [r for r in self.runners if getattr(r.sink, "paces_pipeline", False)]
        self.queue: asyncio.Queue[RawCapture | None] = asyncio.Queue(queue_size)
        self.queue_bytes = queue_bytes
        self.queued_bytes = 0  # plaintext bytes in `queue`
        self.slice_s = slice_s
        self.idle_timeout_ns = int(idle_timeout_s * 1e9)
        self.paused = False
        self._listeners: list[EventListener] = []
        self._gaps: set[ConnKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- capture side ---------------------------------------------------------------------

    def submit(self, raw: RawCapture) -> bool:
        """Hand over one capture; False (and counted) when the queue is full.

        After a drop, the connection's next accepted capture carries `gap_before`: the
        gap is where the lost bytes were, not at whichever of its captures (maybe one
        queued before the drop) the consumer happens to reach first.
        """
        key = raw.connection_key
        gap = key in self._gaps
        size = len(raw.data)
        try:
            # Full once at the bound (one capture may cross it): `has_room` then agrees
            # exactly, so a source that asks first is never refused.
            if self.queued_bytes >= self.queue_bytes:
                raise asyncio.QueueFull
            self.queue.put_nowait(dataclasses.replace(raw, gap_before=True) if gap else raw)
        except asyncio.QueueFull:
            self.counters.inc("capture.dropped")
            if key not in self._gaps:  # a connection starts losing bytes (it may again later)
                self.counters.inc("capture.gap_connections")
            self._gaps.add(key)
            return False
        self.queued_bytes += size
        if gap:
            self._gaps.discard(key)
        return True

    def has_room(self) -> bool:
        """Whether `submit` would accept now: sources that can wait (the bridge) ask first,
        because a refused submit marks the connection as having lost bytes."""
        return not self.queue.full() and self.queued_bytes < self.queue_bytes

    def backlogged(self) -> bool:
        """Half the capture queue is in use: a source that can slow down should (the relay).

        Called from the relay's thread: two integer reads, exact enough for a threshold.
        """
        return (
            self.queue.qsize() > self.queue.maxsize // 2
            or self.queued_bytes > self.queue_bytes // 2
        )

    def _can_wait(self) -> bool:
        """The capture queue is under 3/4 full: a backlog can wait there, not be lost.

        Past that, waiting would only move the loss from the store (which JSONL and the
        live feed do not share) to the capture queue (which every sink does)."""
        return (
            self.queue.qsize() < self.queue.maxsize * 3 // 4
            and self.queued_bytes < self.queue_bytes * 3 // 4
        )

    def add_listener(self, listener: EventListener) -> None:
        """Called with every event that reaches the sinks (e.g. the `run` summary)."""
        self._listeners.append(listener)

    # --- processing -----------------------------------------------------------------------

    def process(self, raw: RawCapture) -> list[Event]:
        """Decode, enrich and redact one capture. Synchronous, so replay uses it directly."""
        events: list[Event] = []
        if raw.gap_before:
            events = self.decoder.mark_gap(raw.connection_key, raw.timestamp_ns)
            if events:
                # What "N chunks dropped" costs the user: calls recorded incomplete.
                self.counters.inc(
                    "capture.incomplete_exchanges",
                    sum(1 for e in events if e.event_type == EventType.AI_RESPONSE),
                )
        try:
            events += self.decoder.feed(raw)
        except Exception:
            # Decoders raise only DecodeError, which they handle; this is a bug. It is
            # logged loudly, the connection is dropped, and nothing else is affected.
            key = raw.connection_key  # the decoder computes it itself on the normal path
            self.counters.inc("decode.internal_errors")
            log.exception("internal error decoding connection %s; dropping it", key)
            self.decoder.drop(key)
        return self.finish(events)

    def finish(self, events: Iterable[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            for enricher in self.enrichers:
                try:
                    enricher.enrich(event)
                except Exception:
                    self.counters.inc("enrich.errors")
                    log.exception("enricher %s failed", type(enricher).__name__)
            if self.redactor is not None:
                event = self.redactor.redact(event)
            out.append(event)
        return out

    def publish(self, events: Iterable[Event]) -> None:
        """Seal the events and offer them to every sink, then to the listeners."""
        batch = events if isinstance(events, list) else list(events)
        if not batch:
            return
        if self.paused:
            self.counters.inc("events.paused_dropped", len(batch))
            return
        for event in batch:
            event.seal()
        self.counters.inc("events.total", len(batch))
        for runner in self.runners:
            runner.offer_many(batch)
        for listener in self._listeners:
            for event in batch:
                listener(event)

    async def wait_for_sinks(self) -> None:
        """For sources that can wait (replay): let every sink's queue drain below half.

        `publish` never blocks, so a producer that never awaits would fill the sink
        queues and lose events to their overflow counters.
        """
        for runner in self.runners:
            while runner.over_half():
                await asyncio.sleep(0.001)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for runner in self.runners:
            await runner.start()
        self._task = asyncio.create_task(self._run(), name="pipeline")
        self._sweeper = asyncio.create_task(self._sweep(), name="pipeline-sweeper")

    async def _run(self) -> None:
        queue, clock = self.queue, time.perf_counter
        while True:
            raw: RawCapture | None = await queue.get()
            deadline = clock() + self.slice_s
            events: list[Event] = []
            while raw is not None:
                self.queued_bytes -= len(raw.data)
                events += self.process(raw)
                if queue.empty() or clock() >= deadline:
                    break
                raw = queue.get_nowait()
            self.publish(events)
            if raw is None:
                return
            # `get()` on a non-empty queue does not yield: without this a backlog would
            # be decoded in one go while the sinks, the web API and the bridge wait.
            await asyncio.sleep(0)
            while self._can_wait() and any(r.behind() for r in self._pacers):
                await asyncio.sleep(PACE_S)

    async def _sweep(self) -> None:
        """Sources that never say ConnClose (e.g. a dying agent) must not leak connections."""
        while True:
            await asyncio.sleep(min(30.0, self.idle_timeout_ns / 1e9))
            now = time.time_ns()
            self.publish(self.finish(self.decoder.expire_idle(now, self.idle_timeout_ns)))

    async def stop(self) -> None:
        """Decode everything submitted, emit what is in flight, flush and close every sink."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._task is not None:
            await self.queue.put(None)
            await self._task
            self._task = None
        self.publish(self.finish(self.decoder.close_all()))
        for runner in self.runners:
            await runner.close()
