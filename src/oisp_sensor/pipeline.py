"""The only place that wires layers: capture → decode → enrich → redact → sinks.

Capture sources call `submit(raw)`, which never blocks: a full queue drops the
chunk, counts it, and marks its connection so the exchange it belonged to is
flagged incomplete rather than silently mis-decoded. One consumer task decodes,
enriches and redacts, then offers each event to every sink's own bounded queue.

Redaction happens here, before any sink and identically for every source, so no
sink can see what redaction removed.
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
from oisp_sensor.events import ConnKey, Event, RawCapture
from oisp_sensor.sinks.base import Sink, SinkRunner

log = logging.getLogger(__name__)


class Enricher(Protocol):
    """Adds context (process tree, host, app, cost) to an event before redaction."""

    def enrich(self, event: Event) -> None: ...


class Redactor(Protocol):
    def redact(self, event: Event) -> Event: ...


EventListener = Callable[[Event], None]


class Pipeline:
    def __init__(
        self,
        *,
        decoder: Decoder,
        sinks: Sequence[Sink] = (),
        enrichers: Sequence[Enricher] = (),
        redactor: Redactor | None = None,
        counters: Counters | None = None,
        queue_size: int = 50_000,
        sink_queue_size: int = 10_000,
        idle_timeout_s: float = 300.0,
    ) -> None:
        self.decoder = decoder
        self.counters = counters or decoder.counters
        self.enrichers = list(enrichers)
        self.redactor = redactor
        self.runners = [SinkRunner(s, self.counters, queue_size=sink_queue_size) for s in sinks]
        self.queue: asyncio.Queue[RawCapture | None] = asyncio.Queue(queue_size)
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
        try:
            self.queue.put_nowait(dataclasses.replace(raw, gap_before=True) if gap else raw)
        except asyncio.QueueFull:
            self.counters.inc("capture.dropped")
            self._gaps.add(key)
            return False
        if gap:
            self._gaps.discard(key)
        return True

    def has_room(self) -> bool:
        """Whether `submit` would accept now: sources that can wait (the bridge) ask first,
        because a refused submit marks the connection as having lost bytes."""
        return not self.queue.full()

    def add_listener(self, listener: EventListener) -> None:
        """Called with every event that reaches the sinks (e.g. the `run` summary)."""
        self._listeners.append(listener)

    # --- processing -----------------------------------------------------------------------

    def process(self, raw: RawCapture) -> list[Event]:
        """Decode, enrich and redact one capture. Synchronous, so replay uses it directly."""
        key = raw.connection_key
        events = self.decoder.mark_gap(key, raw.timestamp_ns) if raw.gap_before else []
        try:
            events += self.decoder.feed(raw)
        except Exception:
            # Decoders raise only DecodeError, which they handle; this is a bug. It is
            # logged loudly, the connection is dropped, and nothing else is affected.
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
        for event in events:
            if self.paused:
                self.counters.inc("events.paused_dropped")
                continue
            self.counters.inc("events.total")
            for runner in self.runners:
                runner.offer(event)
            for listener in self._listeners:
                listener(event)

    async def wait_for_sinks(self) -> None:
        """For sources that can wait (replay): let every sink's queue drain below half.

        `publish` never blocks, so a producer that never awaits would fill the sink
        queues and lose events to their overflow counters.
        """
        for runner in self.runners:
            while runner.queue.qsize() > runner.queue.maxsize // 2:
                await asyncio.sleep(0.001)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for runner in self.runners:
            await runner.start()
        self._task = asyncio.create_task(self._run(), name="pipeline")
        self._sweeper = asyncio.create_task(self._sweep(), name="pipeline-sweeper")

    async def _run(self) -> None:
        queue = self.queue
        while True:
            raw = await queue.get()
            if raw is None:
                return
            self.publish(self.process(raw))

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
