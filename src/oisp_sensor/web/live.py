"""The live feed: events pushed to every open dashboard tab over a WebSocket.

A sink like any other, fed by the pipeline after redaction. Each tab has its own
bounded queue and sender task; a tab that cannot keep up loses messages (counted as
`web.live_dropped`, in events), never slows capture or the other tabs. Once it has
room again it is told how many events it missed (`{"type": "gap"}`), so the page can
reload them from the store instead of silently showing a hole. A batch is one
message, built once for all tabs from the JSON the pipeline sealed each event with,
and nothing is encoded at all while no tab is open.

Messages (JSON text frames):
    {"type": "events", "events": [<OISP event>, ...]}
    {"type": "capture", "paused": true}            capture paused or resumed
    {"type": "gap", "missed": 12}                  events this tab did not receive
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import orjson

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.web.server import Request, Response
from oisp_sensor.web.websocket import WebSocket

log = logging.getLogger(__name__)

DROPPED = "web.live_dropped"


class _Client:
    def __init__(self, ws: WebSocket, size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(size)
        self.missed = 0
        self.task: asyncio.Task[None] | None = None

    async def send_loop(self) -> None:
        while (message := await self.queue.get()) is not None:
            try:
                await self.ws.send(message)
                if self.missed:
                    missed, self.missed = self.missed, 0
                    await self.ws.send(orjson.dumps({"type": "gap", "missed": missed}))
            except (ConnectionError, RuntimeError):
                return


class LiveFeed:
    """Sink that broadcasts batches of events to WebSocket clients."""

    name = "live"

    def __init__(self, counters: Counters, *, client_queue: int = 256) -> None:
        self.counters = counters
        self.client_queue = client_queue
        self._clients: set[_Client] = set()

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        if not self._clients or not batch:
            return
        # Byte for byte what orjson.dumps({"type": "events", "events": [...]}) gives.
        events = b",".join([e.json_bytes() for e in batch])
        self.broadcast(b'{"type":"events","events":[' + events + b"]}", events=len(batch))

    def broadcast(self, message: bytes, *, events: int = 0) -> None:
        """Queue `message` for every tab; a full tab loses it (and is told later)."""
        for client in self._clients:
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                client.missed += events
                self.counters.inc(DROPPED, events)

    async def close(self) -> None:
        # All at once: a tab that does not answer its close frame holds up only itself.
        closing = [c.ws.close(code=1001, reason=b"sensor stopping") for c in self._clients]
        await asyncio.gather(*closing, return_exceptions=True)

    async def handle(self, request: Request) -> Response:
        """GET /api/live: upgrade, then stream until the tab goes away."""
        ws = WebSocket(heartbeat=30, max_size=64 * 1024)
        await ws.accept(request)
        client = _Client(ws, self.client_queue)
        client.task = asyncio.create_task(client.send_loop(), name="live-client")
        self._clients.add(client)
        try:
            async for _ in ws:  # the page sends nothing we act on; this waits for close
                pass
        finally:
            self._clients.discard(client)
            client.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.task
        return Response(101)  # the connection was the WebSocket's; nothing more is sent
