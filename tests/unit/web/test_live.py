"""The live WebSocket feed and pause/resume, with a real pipeline behind the API."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import aiohttp
import orjson

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.store import EventStore
from oisp_sensor.web.live import DROPPED, LiveFeed
from tests.conformance import assert_valid_events
from tests.helpers import T0, captures, http_request, http_response
from tests.unit.store.traffic import sample_captures, sample_events
from tests.unit.web.conftest import Served, eventually, recent_t0, serve

SECOND = 1_000_000_000


async def receive_events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        body = json.loads(msg.data)
        if body["type"] == "events":
            got += body["events"]
    return got


def stored_ids(live: Served) -> set[str]:
    assert live.ctx.db_path is not None
    if not live.ctx.db_path.exists():
        return set()
    with EventStore(live.ctx.db_path) as store:
        return {r[0] for r in store.conn.execute("SELECT event_id FROM events")}


async def test_websocket_receives_events_as_they_are_decoded(live: Served) -> None:
    assert live.pipeline is not None
    async with live.client.ws_connect("/api/live", headers={"Origin": live.origin}) as ws:
        await eventually(lambda: live.ctx.live.clients == 1)
        captures = sample_captures(recent_t0())
        for raw in captures:
            assert live.pipeline.submit(raw)
        expected = len(sample_events(recent_t0()))
        received = await receive_events(ws, expected)
    assert len(received) == expected
    assert_valid_events(received)
    types = {e["event_type"] for e in received}
    assert {"ai.request", "ai.response", "agent.tool_call", "agent.tool_result"} <= types
    # The same events, redacted the same way, reach the store.
    await eventually(lambda: stored_ids(live) == {e["event_id"] for e in received})


async def test_pause_stops_recording_and_resume_restarts_it(live: Served) -> None:
    assert live.pipeline is not None
    pipeline = live.pipeline
    headers = {"Origin": live.origin}
    async with live.client.ws_connect("/api/live", headers=headers) as ws:
        await eventually(lambda: live.ctx.live.clients == 1)
        response = await live.client.post("/api/capture", json={"paused": True}, headers=headers)
        assert response.status == 200
        assert (await response.json())["paused"] is True
        assert pipeline.paused
        told = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert told == {"type": "capture", "paused": True}
        assert (await live.get_json("/api/capture"))["paused"] is True
        assert (await live.get_json("/api/health"))["paused"] is True

        while_paused = sample_captures(recent_t0())
        for raw in while_paused:
            assert pipeline.submit(raw)
        await eventually(lambda: pipeline.queue.empty())

        response = await live.client.post("/api/capture", json={"paused": False}, headers=headers)
        assert (await response.json())["paused"] is False
        told = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
        assert told == {"type": "capture", "paused": False}

        after = sample_captures(recent_t0() + 60 * SECOND)
        for raw in after:
            assert pipeline.submit(raw)
        received = await receive_events(ws, len(sample_events()))
    # Only what came after resuming was shown and stored; the pipeline is FIFO, so
    # once the later events are stored the paused ones have been dropped for good.
    await eventually(lambda: stored_ids(live) == {e["event_id"] for e in received})
    assert all(e["ts"] >= received[0]["ts"] for e in received)
    assert pipeline.counters.get("events.paused_dropped") == len(sample_events())
    state = await live.get_json("/api/capture")
    assert state["paused_dropped"] == len(sample_events())


async def test_bad_capture_requests(live: Served) -> None:
    headers = {"Origin": live.origin}
    for body in ({"paused": "yes"}, {}, [True]):
        response = await live.client.post("/api/capture", json=body, headers=headers)
        assert response.status == 400
    response = await live.client.post("/api/capture", data=b"{not json", headers=headers)
    assert response.status == 400


async def test_pausing_a_read_only_view_is_refused(api: Served) -> None:
    response = await api.client.post(
        "/api/capture", json={"paused": True}, headers={"Origin": api.origin}
    )
    assert response.status == 409


# --- slow tabs ---------------------------------------------------------------------------------


def big_batch(n: int = 20) -> list[Event]:
    """Events with a large prompt, so a few messages fill a socket's buffers."""
    events = sample_events(recent_t0())[:n]
    for e in events:
        if e.event_type == "ai.request":
            e.data["messages"][0]["content"] = "x" * 200_000
    return events


async def test_a_slow_tab_loses_messages_not_capture_time() -> None:
    """A tab that stops reading fills its own queue; writes to the feed never wait for
    it, its losses are counted, and a tab that keeps reading gets everything."""
    counters = Counters()
    feed = LiveFeed(counters, client_queue=4)
    from oisp_sensor.config import Config
    from oisp_sensor.web.api import WebContext

    client = await serve(WebContext(config=Config(), db_path=None, live=feed))
    try:
        slow = await client.ws_connect("/api/live")  # never reads from here on
        fast = await client.ws_connect("/api/live")
        await eventually(lambda: feed.clients == 2)
        batch = big_batch()
        received: list[dict[str, Any]] = []

        async def read_fast() -> None:
            while True:
                msg = await fast.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                body = orjson.loads(msg.data)
                if body["type"] == "events":
                    received.extend(body["events"])

        reader = asyncio.create_task(read_fast())
        writes = 60
        for _ in range(writes):
            # write() only queues: it must finish at once, whatever the slow tab does.
            await asyncio.wait_for(feed.write(batch), timeout=0.5)
            await asyncio.sleep(0.01)  # let the senders run, as the pipeline would
        await eventually(lambda: counters.get(DROPPED) > 0)
        await eventually(lambda: len(received) == writes * len(batch), timeout=20)
        dropped = counters.get(DROPPED)
        assert dropped % len(batch) == 0  # counted in events, whole batches at a time
        assert dropped <= (writes - 4) * len(batch)

        # The slow tab reads again: what it got, then a note of how much it missed.
        seen, missed = 0, 0
        while seen + missed < writes * len(batch):
            body = orjson.loads((await asyncio.wait_for(slow.receive(), 10)).data)
            if body["type"] == "events":
                seen += len(body["events"])
            elif body["type"] == "gap":
                missed += body["missed"]
        assert missed == dropped and seen == writes * len(batch) - dropped
        reader.cancel()
        await slow.close()
        await fast.close()
    finally:
        await client.close()


def big_call(t0: int, fd: int) -> list[Any]:
    """One chat call whose prompt is 200 KB, as captured on the wire."""
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "y" * 200_000}]},
    )
    response = http_response(
        {
            "id": "chatcmpl-big",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50_000, "completion_tokens": 1, "total_tokens": 50_001},
        }
    )
    raws = captures([(request, response)], fd=fd)
    return [dataclasses.replace(r, timestamp_ns=r.timestamp_ns - T0 + t0) for r in raws]


async def test_a_stalled_tab_does_not_slow_the_pipeline(live: Served) -> None:
    """With one tab that never reads, every event still reaches the store; the tab's
    losses are counted, the pipeline's sinks lose nothing."""
    assert live.pipeline is not None
    pipeline = live.pipeline
    stalled = await live.client.ws_connect("/api/live", headers={"Origin": live.origin})
    try:
        await eventually(lambda: live.ctx.live.clients == 1)
        for i in range(60):
            for raw in big_call(recent_t0() + i * SECOND, fd=100 + i):
                assert pipeline.submit(raw)
            # One call at a time, as traffic arrives: each is its own message to the tab.
            await eventually(lambda: pipeline.queue.empty(), timeout=30)
            await asyncio.sleep(0.005)
        total = pipeline.counters.get("events.total")
        assert total >= 120
        await eventually(lambda: len(stored_ids(live)) == total, timeout=30)
        assert pipeline.counters.get(DROPPED) > 0  # the tab really fell behind
        assert pipeline.counters.get("sink.store.dropped") == 0
        assert pipeline.counters.get("sink.live.dropped") == 0
        assert pipeline.counters.get("capture.dropped") == 0
    finally:
        await stalled.close()


async def test_a_tab_receives_the_events_as_sealed_in_one_message_per_batch() -> None:
    """The message is built from the JSON each event was sealed with (what JSONL and the
    store hold), byte for byte what encoding the whole message would give."""
    counters = Counters()
    feed = LiveFeed(counters)
    from oisp_sensor.config import Config
    from oisp_sensor.web.api import WebContext

    events = sample_events(recent_t0())
    for e in events:
        e.seal()
    await feed.write(events)  # no tab open: nothing to send, nothing fails
    client = await serve(WebContext(config=Config(), db_path=None, live=feed))
    try:
        async with client.ws_connect("/api/live") as ws:
            await eventually(lambda: feed.clients == 1)
            await feed.write(events)
            msg = await asyncio.wait_for(ws.receive(), 10)
    finally:
        await client.close()
    assert msg.type == aiohttp.WSMsgType.TEXT
    expected = {"type": "events", "events": [e.to_dict() for e in events]}
    assert msg.data.encode() == orjson.dumps(expected)
    assert_valid_events(expected["events"])
