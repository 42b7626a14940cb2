"""What the exporters share: config validation, building them from config, HTTP helpers."""

from __future__ import annotations

import email.utils

import pytest

from oisp_sensor import config
from oisp_sensor.cli.status import check_drops
from oisp_sensor.counters import Counters
from oisp_sensor.errors import ConfigError
from oisp_sensor.sinks.delivery import (
    DeliveryPolicy,
    parse_headers,
    redacted_url,
    retry_after_seconds,
)
from oisp_sensor.sinks.exporters import exporter_sinks
from oisp_sensor.sinks.kafka import KafkaSink
from oisp_sensor.sinks.otlp import OtlpSink
from oisp_sensor.sinks.webhook import WebhookSink


def test_exporters_are_off_by_default() -> None:
    assert exporter_sinks(config.loads("").sinks, Counters()) == []


def test_config_builds_each_exporter() -> None:
    sinks = config.loads(
        """
[sinks]
otlp = true
otlp_protocol = "json"
otlp_signals = ["traces"]
otlp_headers = ["authorization=Bearer abc=="]
webhook_url = "https://hooks.example.com/x"
webhook_types = ["ai.response", "agent.*"]
kafka_brokers = ["127.0.0.1:9092"]
kafka_acks = "1"
export_buffer = 50
export_retry_s = 12.5
"""
    ).sinks
    built = exporter_sinks(sinks, Counters())
    assert [s.name for s in built] == ["otlp", "webhook", "kafka"]
    otlp, webhook, kafka = built
    assert isinstance(otlp, OtlpSink) and isinstance(webhook, WebhookSink)
    assert isinstance(kafka, KafkaSink)
    assert otlp.settings.protocol == "json" and otlp.traces and not otlp.logs
    assert otlp.settings.headers == {"authorization": "Bearer abc=="}  # "=" inside a value
    assert otlp.settings.url("traces") == "http://127.0.0.1:4318/v1/traces"  # the default
    assert webhook.wanted("agent.tool_call") and not webhook.wanted("ai.request")
    assert kafka.settings.acks == "1" and kafka.settings.topic == "oisp-events"
    for sink in built:
        assert sink.outbox.policy.buffer == 50
        assert sink.outbox.policy.max_retry_s == 12.5


def test_exporters_from_the_environment() -> None:
    loaded = config.load(
        environ={
            "OISP_SINKS_OTLP": "true",
            "OISP_SINKS_OTLP_ENDPOINT": "https://otel.example.com:4318/",
            "OISP_SINKS_OTLP_HEADERS": "x-team=abc,authorization=Bearer t",
            "OISP_SINKS_KAFKA_BROKERS": "k1:9092,k2:9092",
        }
    )
    assert loaded.sinks.otlp
    assert loaded.sinks.otlp_headers == ("x-team=abc", "authorization=Bearer t")
    assert loaded.sinks.kafka_brokers == ("k1:9092", "k2:9092")
    (otlp, _) = exporter_sinks(loaded.sinks, Counters())
    assert otlp.settings.url("logs") == "https://otel.example.com:4318/v1/logs"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('otlp_protocol = "grpc"', "sinks.otlp_protocol: expected one of protobuf, json"),
        ('otlp_signals = ["metrics"]', "sinks.otlp_signals: expected traces and/or logs"),
        ('otlp_compression = "br"', "sinks.otlp_compression"),
        ('otlp_endpoint = "127.0.0.1:4318"', "sinks.otlp_endpoint: expected an http:// or"),
        ('webhook_url = "ftp://x/y"', "sinks.webhook_url"),
        ('webhook_format = "xml"', "sinks.webhook_format"),
        ('webhook_types = ["AI.Response"]', "sinks.webhook_types"),
        ('kafka_brokers = ["kafka-1"]', "sinks.kafka_brokers: expected host:port"),
        ('kafka_acks = "-1"', "sinks.kafka_acks"),
        ('kafka_compression = "brotli"', "sinks.kafka_compression"),
        ('otlp_ca_file = "/nonexistent/ca.pem"', "sinks.otlp_ca_file: no such file"),
        ("otlp_timeout_s = 0", "sinks.otlp_timeout_s: expected a positive number"),
        ("export_buffer = 0", "sinks.export_buffer"),
        ('otlp_resource_attributes = ["novalue"]', "sinks.otlp_resource_attributes[0]"),
    ],
)
def test_invalid_exporter_settings_name_the_key(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.loads(f"[sinks]\n{setting}\n")


def test_a_malformed_header_is_not_echoed() -> None:
    """A header without "=" is most likely a pasted credential: the error must not print it."""
    with pytest.raises(ConfigError) as raised:
        config.loads('[sinks]\notlp_headers = ["Bearer sk-live-1234567890"]\n')
    assert "sk-live" not in str(raised.value)
    assert "sinks.otlp_headers[0]" in str(raised.value)


def test_parse_headers_keeps_equals_signs_in_values() -> None:
    assert parse_headers(["a = b=c", "X-Key=v"]) == {"a": "b=c", "X-Key": "v"}


def test_redacted_url_drops_credentials_and_query() -> None:
    assert (
        redacted_url("https://user:pw@hooks.example.com:8443/p/x?token=secret")
        == "https://hooks.example.com:8443/p/x"
    )
    assert redacted_url("http://[::1]:4318/v1/logs") == "http://[::1]:4318/v1/logs"


def test_retry_after_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds(date, now=1_000_000) == pytest.approx(30.0)
    assert retry_after_seconds(date, now=2_000_000) == 0.0  # already past


def test_backoff_grows_and_is_capped() -> None:
    policy = DeliveryPolicy(initial_backoff_s=1.0, max_backoff_s=30.0)
    assert 0.5 <= policy.backoff(0) <= 1.0
    assert 4.0 <= policy.backoff(3) <= 8.0
    assert 15.0 <= policy.backoff(20) <= 30.0


def test_status_reports_what_an_exporter_lost() -> None:
    checks = check_drops(
        {
            "events.total": 100,
            "sink.otlp.buffer_full": 3,
            "sink.webhook.rejected_events": 4,
            "sink.kafka.gave_up_events": 5,
            "sink.otlp.sent_spans": 50,
        }
    )
    details = " ".join(c.detail for c in checks)
    assert not any(c.ok for c in checks)
    for name in ("sink.otlp.buffer_full", "sink.webhook.rejected_events", "sink.kafka.gave_up"):
        assert name in details
    assert "sent_spans" not in details
