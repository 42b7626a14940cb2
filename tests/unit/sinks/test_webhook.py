"""The webhook sink against a real local aiohttp server, including stuck and failing ones."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from oisp_sensor.cli.main import cli
from oisp_sensor.counters import Counters
from oisp_sensor.sinks.delivery import DeliveryPolicy
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TypeFilter,
    WebhookSettings,
    WebhookSink,
    sign,
    verify_signature,
)
from tests.conformance import assert_valid_events, assert_valid_file
from tests.unit.sinks.receivers import FAST, Reply, free_port, http_receiver
from tests.unit.store.traffic import pipeline, run_through, sample_captures, sample_events

EVENTS = 12
SECRET = "whsec-3b1c9e0f-shared"


def sink_for(url: str, counters: Counters | None = None, **settings: object) -> WebhookSink:
    policy = settings.pop("policy", FAST)
    clock = settings.pop("clock", None)
    extra = {"clock": clock} if clock else {}
    return WebhookSink(
        WebhookSettings(url=url, **settings),  # type: ignore[arg-type]
        counters=counters or Counters(),
        policy=policy,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def posted_events(bodies: list[bytes], ndjson: bool = False) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for body in bodies:
        if ndjson:
            out += [orjson.loads(line) for line in body.splitlines()]
        else:
            batch = orjson.loads(body)
            assert isinstance(batch, list)
            out += batch
    return out


async def test_events_are_posted_as_a_json_array() -> None:
    async with http_receiver() as receiver:
        sink = sink_for(f"{receiver.url}/hooks/oisp?token=abc")
        await run_through(sample_captures(), [sink])
        events = posted_events(receiver.bodies("/hooks/oisp"))
        assert_valid_events(events)
        assert [e["event_type"] for e in events] == [e.event_type for e in sample_events()]
        for request in receiver.requests:
            assert request.headers["Content-Type"] == "application/json"
            assert len(request.headers[DELIVERY_HEADER]) == 26  # a ULID per batch
            assert SIGNATURE_HEADER not in request.headers  # no secret, no signature
        assert sink.counters.get("sink.webhook.sent_events") == EVENTS


async def test_ndjson_format() -> None:
    async with http_receiver() as receiver:
        await run_through(sample_captures(), [sink_for(receiver.url, format="ndjson")])
        assert {r.headers["Content-Type"] for r in receiver.requests} == {"application/x-ndjson"}
        events = posted_events(receiver.bodies("/"), ndjson=True)
        assert len(events) == EVENTS
        assert_valid_events(events)


async def test_requests_are_signed_and_the_receiver_can_verify_them() -> None:
    async with http_receiver() as receiver:
        await run_through(sample_captures(), [sink_for(receiver.url, secret=SECRET)])
        assert receiver.requests
        for request in receiver.requests:
            signature = request.headers[SIGNATURE_HEADER]
            timestamp = request.headers[TIMESTAMP_HEADER]
            assert signature.startswith("sha256=") and len(signature) == 7 + 64
            assert verify_signature(SECRET, request.body, signature, timestamp)
            assert not verify_signature("other-secret", request.body, signature, timestamp)
            assert not verify_signature(SECRET, request.body + b" ", signature, timestamp)
            # Replayed ten minutes later: refused, and a fresh timestamp breaks the signature.
            later = int(timestamp) + 600
            assert not verify_signature(SECRET, request.body, signature, timestamp, now=later)
            assert not verify_signature(SECRET, request.body, signature, str(later), now=later)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The documented contract, computed independently of the sink's code."""
    import hashlib
    import hmac

    body = b'[{"event_type":"ai.request"}]'
    expected = hmac.new(SECRET.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1767225600, body) == f"sha256={expected}"
    assert verify_signature(SECRET, body, f"sha256={expected}", "1767225600", now=1767225700)
    assert not verify_signature(SECRET, body, None, "1767225600", now=1767225600)
    assert not verify_signature(SECRET, body, f"sha256={expected}", "soon", now=1767225600)


async def test_only_the_wanted_types_are_sent() -> None:
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, types=("ai.response", "agent.*"))
        await run_through(sample_captures(), [sink])
        types = sorted(e["event_type"] for e in posted_events(receiver.bodies("/")))
        assert types == ["agent.tool_call", "agent.tool_result"] + ["ai.response"] * 5


def test_type_filter() -> None:
    wanted = TypeFilter(["ai.response", "agent.*"])
    assert wanted("ai.response") and wanted("agent.tool_call")
    assert not wanted("ai.request") and not wanted("agentx.y")
    assert TypeFilter([])("network.connect")


async def test_server_errors_are_retried_with_the_same_delivery_id() -> None:
    async with http_receiver() as receiver:
        receiver.script.extend(
            [Reply(status=500), Reply(status=429, headers={"Retry-After": "0"}), Reply()]
        )
        sink = sink_for(receiver.url, secret=SECRET, policy=FAST)
        await sink.start()
        await sink.write(sample_events())
        await sink.close()
        assert len(receiver.requests) == 3
        assert len({r.headers[DELIVERY_HEADER] for r in receiver.requests}) == 1
        assert len({r.body for r in receiver.requests}) == 1
        assert sink.counters.get("sink.webhook.retries") == 2
        assert sink.counters.get("sink.webhook.sent_events") == EVENTS


async def test_a_client_error_is_not_retried() -> None:
    async with http_receiver() as receiver:
        receiver.script.append(Reply(status=404, content_type="text/plain", body=b"no such hook"))
        sink = sink_for(receiver.url)
        await sink.start()
        await sink.write(sample_events())
        await sink.close()
        assert len(receiver.requests) == 1
        assert sink.counters.get("sink.webhook.rejected_events") == EVENTS


@pytest.mark.parametrize("failure", ["stuck", "refused"])
async def test_a_stuck_or_dead_webhook_never_slows_capture(tmp_path: Path, failure: str) -> None:
    """While the webhook hangs (or refuses connections) the pipeline keeps decoding and the
    other sinks keep writing; the webhook's backlog is bounded and counted."""
    jsonl = tmp_path / "events.jsonl"
    captures = sample_captures()
    async with http_receiver() as receiver:
        receiver.script.extend([Reply(hang=True)] * 10)
        url = receiver.url if failure == "stuck" else f"http://127.0.0.1:{free_port()}"
        policy = DeliveryPolicy(
            linger_s=0.01, initial_backoff_s=0.01, max_backoff_s=0.05, shutdown_s=2.0
        )
        webhook = sink_for(url, policy=policy, timeout_s=60.0)
        p = pipeline([webhook, JsonlSink(jsonl)])
        await p.start()
        for round_ in range(20):  # 20 x the sample traffic, shifted so each is distinct
            for raw in sample_captures(captures[0].timestamp_ns + round_ * 60_000_000_000):
                assert p.submit(raw)
            await asyncio.sleep(0)
        async with asyncio.timeout(10):
            while p.counters.get("sink.jsonl.written") < 20 * EVENTS:
                await asyncio.sleep(0.01)
        if failure == "stuck":
            assert receiver.answered == 0 and len(receiver.requests) == 1
        assert p.counters.get("events.total") == 20 * EVENTS
        assert p.counters.get("sink.webhook.written") == 20 * EVENTS  # handed over, not waited on
        assert p.counters.get("capture.dropped") == 0
        receiver.release()
        await p.stop()
    assert len(assert_valid_file(jsonl)) == 20 * EVENTS
    c = webhook.counters
    if failure == "stuck":
        assert c.get("sink.webhook.sent_events") == 20 * EVENTS  # released in time: all sent
    else:
        lost = c.get("sink.webhook.unsent_at_exit_events") + c.get("sink.webhook.gave_up_events")
        assert lost == 20 * EVENTS and c.get("sink.webhook.retries") > 0


async def test_https_webhook_with_a_private_ca(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with http_receiver(context) as receiver:
        sink = sink_for(receiver.url, ca_file=str(ca_file))
        await run_through(sample_captures(), [sink])
        assert len(posted_events(receiver.bodies("/"))) == EVENTS


def test_config_show_masks_exporter_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        """
[sinks]
otlp = true
otlp_headers = ["authorization=Basic dXNlcjpwYXNz", "x-honeycomb-team=hny_abc123"]
webhook_url = "https://hooks.example.com/oisp?token=tok-998877"
webhook_secret = "whsec-very-secret"
webhook_headers = ["x-api-key=k-123456"]
kafka_brokers = ["kafka-1:9092"]
"""
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "config", "show"])
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in ("dXNlcjpwYXNz", "hny_abc123", "whsec-very-secret", "k-123456", "tok-998877"):
        assert secret not in out
    assert '"authorization=********"' in out and '"x-honeycomb-team=********"' in out
    assert 'webhook_url = "https://hooks.example.com/oisp?********"' in out
    assert 'kafka_brokers = ["kafka-1:9092"]' in out
    reparsed = tomllib.loads(out)  # still valid TOML
    assert reparsed["sinks"]["otlp"] is True
