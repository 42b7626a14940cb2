"""The relay on its own event loop in its own thread, handing captures to the main loop.

Why: decoding, enrichment, redaction and the sinks run on the sensor's main loop.
Sharing that loop, a relayed chunk waits for whatever decode work is queued ahead of
it (measured: ~0.8 ms added per keep-alive request against ~0.1 ms for the relay
alone). On its own loop the relay forwards bytes as soon as the GIL lets it; the
sensor lowers the interpreter's switch interval so that is never long.

Captures cross threads through a deque, collected every `HANDOFF_S`: the first capture
after a quiet spell wakes the main loop, which from then on takes whatever has
accumulated every `HANDOFF_S` and hands it to `deliver` (the pipeline's `submit`) in
order, until a round finds nothing. Why not at once: two threads share one GIL, and
every time the decoder wakes in the middle of an exchange the relay waits for it. On
a schedule, the decoder works in batches (cheaper per event: one store transaction,
one JSONL write, one live-feed message each) and the relay has the GIL to itself in
between: measured on back-to-back keep-alive requests, the median added latency fell
from 0.75 to ~0.2 ms, while the mean stayed about the same (the decoder's work still
has to happen) and the slowest 1 % of requests, which meet a batch, wait longer
(see BENCHMARKS.md). Events reach the sinks at most `HANDOFF_S` later.

The deque is bounded; past the bound a capture is dropped and counted, and the
connection's next delivered capture is flagged `gap_before`, the same contract as a
full pipeline queue.

Under sustained overload (the relay accepting requests faster than the pipeline can
record them), the relay slows down instead of losing events: while the pipeline's
capture queue is more than half full, each hand-off pauses the relay's thread for
`BACKOFF_S`. Bursts up to that mark pass at full speed; past it the applications
see the speed at which the sensor records, the way a full TCP window slows a sender.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from oisp_sensor.capture.relay import Relay, Submit
from oisp_sensor.events import ConnKey, RawCapture

log = logging.getLogger(__name__)

# Measured (bench/run.py, 100k-request soak at the relay's full speed): without it,
# 4,952 captures (~0.9 % of the requests) were dropped; with it, none.
BACKOFF_S = 0.001
HANDOFF_S = 0.004


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class RelayThread:
    """Runs a Relay on a private loop; `start`/`close` are called from the main loop."""

    def __init__(
        self,
        make_relay: Callable[[Submit], Relay],
        deliver: Submit,
        *,
        limit: int = 50_000,
        on_drop: Callable[[int], None] | None = None,
        backlogged: Callable[[], bool] | None = None,
        on_backoff: Callable[[], None] | None = None,
        handoff_s: float = HANDOFF_S,
    ) -> None:
        self._make_relay = make_relay
        self.handoff_s = handoff_s
        self._deliver = deliver
        self._limit = limit
        self._on_drop = on_drop
        self._backlogged = backlogged
        self._on_backoff = on_backoff
        self._queue: collections.deque[RawCapture] = collections.deque()
        self._scheduled = False
        # Each written by one thread only, so no increment is lost between them.
        self._dropped = 0  # by the relay thread: captures dropped so far
        self._reported = 0  # by the main loop: how many of them `on_drop` was told about
        self._gaps: set[ConnKey] = set()
        self._main: asyncio.AbstractEventLoop | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.relay: Relay | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> Relay:
        self._main = asyncio.get_running_loop()
        ready: concurrent.futures.Future[Relay] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="oisp-relay", daemon=True
        )
        self._thread.start()
        self.relay = await asyncio.wrap_future(ready)
        return self.relay

    def _run(self, ready: concurrent.futures.Future[Relay]) -> None:
        loop = new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            relay = self._make_relay(self._handoff)
            loop.run_until_complete(relay.start())
        except BaseException as e:
            ready.set_exception(e)
            loop.close()
            return
        ready.set_result(relay)
        try:
            loop.run_forever()
        finally:
            loop.close()

    # --- relay thread ------------------------------------------------------------------------

    def _handoff(self, raw: RawCapture) -> bool:
        gaps = self._gaps
        if len(self._queue) >= self._limit:
            self._dropped += 1
            gaps.add(raw.connection_key)
            self._wake()
            return False
        if gaps and raw.connection_key in gaps:
            # Flag the first capture *after* the lost ones, not one queued before them.
            gaps.discard(raw.connection_key)
            raw = dataclasses.replace(raw, gap_before=True)
        self._queue.append(raw)
        self._wake()
        if self._backlogged is not None and (
            len(self._queue) > self._limit // 2 or self._backlogged()
        ):
            # The bytes are already forwarded; this delays reading the next ones.
            time.sleep(BACKOFF_S)
            if self._on_backoff is not None:
                self._on_backoff()
        return True

    def _wake(self) -> None:
        if not self._scheduled and self._main is not None:
            self._scheduled = True
            try:
                self._main.call_soon_threadsafe(self._collect_later)
            except RuntimeError:  # the main loop is gone (interpreter shutdown)
                self._scheduled = False

    # --- main loop ---------------------------------------------------------------------------

    def _collect_later(self) -> None:
        assert self._main is not None
        self._main.call_later(self.handoff_s, self._collect)

    def _collect(self) -> None:
        """One round of the schedule: deliver what accumulated; go quiet if nothing did."""
        if self._queue or self._dropped != self._reported:
            self._drain()
            self._collect_later()
            return
        # Cleared before looking again: an append racing with us either is seen below or
        # wakes us, never neither (at worst both, and one round finds nothing).
        self._scheduled = False
        if self._queue:
            self._scheduled = True
            self._collect_later()

    def _drain(self) -> None:
        if dropped := self._dropped - self._reported:
            self._reported += dropped
            if self._on_drop is not None:
                self._on_drop(dropped)
        queue, deliver = self._queue, self._deliver
        while queue:
            deliver(queue.popleft())

    async def close(self, grace_s: float = 1.0) -> None:
        """Close the relay on its loop (every connection emits ConnClose), then deliver all."""
        loop, relay = self.loop, self.relay
        if loop is not None and relay is not None and not loop.is_closed():
            done = asyncio.run_coroutine_threadsafe(relay.close(grace_s), loop)
            try:
                await asyncio.wrap_future(done)
            except Exception:
                log.exception("relay did not close cleanly")
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None
        self._drain()
