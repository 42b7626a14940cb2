"""Produce events to a Kafka topic (aiokafka), one JSON message per OISP event.

The message key is the conversation id, else the request id, so every event of one
conversation lands on one partition, in order; events with neither (network.connect)
are spread by the partitioner. Headers carry `content-type` and `oisp-event-type`
so consumers can route without parsing. Delivery is at-least-once: a batch the
broker half-acknowledged is retried whole-minus-acknowledged, never silently lost
(idempotent producers are off: not every Kafka-protocol broker supports them).

A broker that is down when the sensor starts does not stop the sensor: the
producer is (re)started by the sender task, with the shared `Outbox`'s backoff,
while events wait in its bounded buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka import codec as kafka_codec
from aiokafka.errors import KafkaError, KafkaTimeoutError  # type: ignore[import-untyped]

from oisp_sensor import __version__
from oisp_sensor.config import SinksConfig
from oisp_sensor.counters import Counters
from oisp_sensor.errors import SinkError
from oisp_sensor.events import Event
from oisp_sensor.sinks.delivery import (
    DeliveryPolicy,
    Outbox,
    RejectedError,
    RetryableError,
    Sleep,
)

log = logging.getLogger(__name__)

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers
_CODECS = {
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    brokers: tuple[str, ...]
    topic: str = "oisp-events"
    acks: str = "all"  # "all", "1" or "0"
    compression: str = "gzip"  # none | gzip | snappy | lz4 | zstd
    request_timeout_s: float = 30.0

    @classmethod
    def from_config(cls, sinks: SinksConfig) -> KafkaSettings:
        return cls(
            brokers=sinks.kafka_brokers,
            topic=sinks.kafka_topic,
            acks=sinks.kafka_acks,
            compression=sinks.kafka_compression,
        )


@dataclass(slots=True)
class Batch:
    """Messages retried as a unit; on a partial failure only the failed ones remain."""

    records: list[Record]
    unit: str = "events"
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.count = len(self.records)


def message_key(event: Event) -> bytes | None:
    for source in (event.data, event.attrs):
        for name in ("conversation_id", "request_id"):
            value = source.get(name)
            if isinstance(value, str) and value:
                return value.encode()
    return None


def to_record(event: Event) -> Record:
    headers = [
        ("content-type", b"application/json"),
        ("oisp-event-type", str(event.event_type).encode()),
    ]
    return message_key(event), event.json_bytes(), headers


class KafkaSink:
    name = "kafka"

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        counters: Counters | None = None,
        policy: DeliveryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = settings
        self.counters = counters or Counters()
        self._producer: Any = None
        self.outbox: Outbox[Event, Batch] = Outbox(
            self.name,
            prepare=self.prepare,
            send=self.send,
            counters=self.counters,
            policy=policy or DeliveryPolicy(),
            sleep=sleep,
        )

    async def start(self) -> None:
        codec = self.settings.compression
        if codec != "none" and not _CODECS[codec]():
            raise SinkError(
                f"kafka: compression {codec!r} needs the cramjam package "
                '(pip install cramjam), or set sinks.kafka_compression = "gzip"'
            )
        # Connecting is the sender's job: a broker that is slow or down must not hold up
        # the sensor's start, and it is retried with backoff like any failed send.
        await self.outbox.start()

    async def write(self, batch: Sequence[Event]) -> None:
        self.outbox.put(batch)

    async def close(self) -> None:
        try:
            await self.outbox.close()
        finally:
            await self._disconnect()

    def prepare(self, batch: list[Event]) -> list[Batch]:
        return [Batch([to_record(e) for e in batch])]

    async def _connect(self) -> None:
        if self._producer is not None:
            return
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=list(s.brokers),
            client_id=f"oisp-sensor/{__version__}@{socket.gethostname()}",
            acks="all" if s.acks == "all" else int(s.acks),
            compression_type=None if s.compression == "none" else s.compression,
            enable_idempotence=False,
            request_timeout_ms=int(s.request_timeout_s * 1000),
        )
        try:
            await producer.start()
        except BaseException as e:  # also when cancelled at exit: never leak a producer
            with contextlib.suppress(Exception):
                await producer.stop()
            if isinstance(e, KafkaError):
                raise RetryableError(f"cannot reach {', '.join(s.brokers)}: {e}") from e
            raise
        self._producer = producer
        log.info("kafka: connected to %s, producing to %r", ", ".join(s.brokers), s.topic)

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.outbox.policy.shutdown_s)

    async def send(self, batch: Batch) -> None:
        await self._connect()
        futures: list[asyncio.Future[Any]] = []
        failed: list[Record] = []
        errors: list[BaseException] = []
        for record in batch.records:
            key, value, headers = record
            try:
                futures.append(
                    await self._producer.send(
                        self.settings.topic, value=value, key=key, headers=headers
                    )
                )
            except KafkaError as e:  # refused before sending: too large, buffer full, ...
                futures.append(_failed(e))
        results = await asyncio.gather(*futures, return_exceptions=True)
        for record, result in zip(batch.records, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(record)
                errors.append(result)
        if not failed:
            return
        sent = len(batch.records) - len(failed)
        if sent:
            self.counters.inc("sink.kafka.sent_events", sent)
        batch.records, batch.count = failed, len(failed)
        first = errors[0]
        message = f"{len(failed)} of {sent + len(failed)} messages failed: {first!r}"
        if all(_retriable(e) for e in errors):
            raise RetryableError(message)
        raise RejectedError(message)


def _failed(error: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


def _retriable(error: BaseException) -> bool:
    """aiokafka's own flag, plus timeouts: a broker that is down times out, it does not refuse."""
    return bool(getattr(error, "retriable", False)) or isinstance(
        error, (KafkaTimeoutError, asyncio.TimeoutError)
    )
