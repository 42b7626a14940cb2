"""Fixtures: a store filled by the real pipeline, and the dashboard app served by its own
server on a real socket in front of it (optionally with a running pipeline to pause and
feed), talked to by a real HTTP client (aiohttp's)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sensor import build_pipeline
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.web.api import WebContext
from oisp_sensor.web.app import create_app
from oisp_sensor.web.live import LiveFeed
from oisp_sensor.web.security import AccessPolicy
from oisp_sensor.web.server import App, WebServer
from oisp_sensor.web.settings import Settings
from tests.conformance import assert_valid_file
from tests.helpers import HASHER
from tests.unit.store.traffic import run_through, sample_captures

MINUTE = 60 * 1_000_000_000


def recent_t0() -> int:
    """Ten minutes ago, on a whole second: inside every dashboard window."""
    return (time.time_ns() // 1_000_000_000) * 1_000_000_000 - 10 * MINUTE


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Any]:
    """The sample traffic (3 processes, 2 providers, a tool round trip, a 429, an
    unpriced model) recorded ten minutes ago by the real pipeline into a store."""
    db = tmp_path / "events.db"
    jsonl = tmp_path / "events.jsonl"
    asyncio.run(run_through(sample_captures(recent_t0()), [StoreSink(db), JsonlSink(jsonl)]))
    return {"db": db, "events": assert_valid_file(jsonl)}


class LocalClient:
    """An HTTP client bound to one served app: `get("/api/health")`, `ws_connect(...)`.

    Responses are released when the client closes, so a test may leave a body unread.
    """

    def __init__(self, server: WebServer) -> None:
        self.server = server
        self.port = server.port
        self.session = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}")
        self._responses: list[aiohttp.ClientResponse] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        response = await self.session.request(method, path, **kwargs)
        self._responses.append(response)
        return response

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("PUT", path, **kwargs)

    def ws_connect(self, path: str, **kwargs: Any) -> Any:
        return self.session.ws_connect(path, **kwargs)

    async def close(self) -> None:
        for response in self._responses:
            response.release()
        await self.session.close()
        await self.server.close()


@dataclass
class Served:
    client: LocalClient
    ctx: WebContext
    policy: AccessPolicy
    pipeline: Pipeline | None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.client.port}"

    async def get_json(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status == 200, await response.text()
        return await response.json()


async def serve(ctx: WebContext, policy: AccessPolicy | None = None) -> LocalClient:
    """The app, as the sensor builds it, served on 127.0.0.1:<any free port>."""
    policy = policy or AccessPolicy("127.0.0.1", 0)
    server = WebServer(create_app(ctx, policy), "127.0.0.1", 0)
    await server.start()
    policy.set_port(server.port)
    return LocalClient(server)


@pytest.fixture
async def api(recorded: dict[str, Any], tmp_path: Path) -> AsyncIterator[Served]:
    """The API over the recorded store, read-only (no pipeline), with settings."""
    config = Config()
    ctx = WebContext(
        config=config,
        db_path=recorded["db"],
        live=LiveFeed(Counters()),
        settings=Settings(config, tmp_path / "config.toml"),
    )
    policy = AccessPolicy("127.0.0.1", 0)
    client = await serve(ctx, policy)
    try:
        yield Served(client, ctx, policy, None)
    finally:
        await client.close()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Served]:
    """A running pipeline (store + live feed sinks) behind the API, for pause and WebSocket."""
    counters = Counters()
    feed = LiveFeed(counters, client_queue=8)
    db = tmp_path / "live.db"
    pipeline = build_pipeline(
        Config(), sinks=[StoreSink(db), feed], counters=counters, hasher=HASHER
    )
    await pipeline.start()
    ctx = WebContext(config=Config(), db_path=db, live=feed, pipeline=pipeline)
    policy = AccessPolicy("127.0.0.1", 0)
    client = await serve(ctx, policy)
    try:
        yield Served(client, ctx, policy, pipeline)
    finally:
        await client.close()
        await pipeline.stop()


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (async work finishing elsewhere)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def route_table(app: App) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app serves (HEAD comes with GET)."""
    return {(route.method, route.path) for route in app.routes}
