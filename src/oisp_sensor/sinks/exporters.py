"""The fleet exporters a config turns on: OTLP, webhook, Kafka (docs/exporters.md).

One place that reads `[sinks]` for them, so `record`, `run` and `demo` export alike.
"""

from __future__ import annotations

from oisp_sensor.config import SinksConfig
from oisp_sensor.counters import Counters
from oisp_sensor.sinks.base import Sink
from oisp_sensor.sinks.delivery import DeliveryPolicy


def exporter_sinks(sinks: SinksConfig, counters: Counters) -> list[Sink]:
    """The configured exporters, not yet started (the pipeline starts its sinks)."""
    out: list[Sink] = []
    if sinks.otlp:
        from oisp_sensor.sinks.otlp import OtlpSettings, OtlpSink

        out.append(
            OtlpSink(OtlpSettings.from_config(sinks), counters=counters, policy=_policy(sinks, 512))
        )
    if sinks.webhook_url:
        from oisp_sensor.sinks.webhook import WebhookSettings, WebhookSink

        out.append(
            WebhookSink(
                WebhookSettings.from_config(sinks), counters=counters, policy=_policy(sinks, 100)
            )
        )
    if sinks.kafka_brokers:
        from oisp_sensor.sinks.kafka import KafkaSettings, KafkaSink

        out.append(
            KafkaSink(
                KafkaSettings.from_config(sinks), counters=counters, policy=_policy(sinks, 512)
            )
        )
    return out


def _policy(sinks: SinksConfig, max_batch: int) -> DeliveryPolicy:
    return DeliveryPolicy(
        buffer=sinks.export_buffer,
        max_batch=max_batch,
        max_retry_s=sinks.export_retry_s,
    )
