"""The OTLP exporter against real OTLP/HTTP receivers.

Most tests use a real aiohttp server that decodes what arrives with
opentelemetry-proto (and can be scripted to fail); one sends through Rotel, a real
OpenTelemetry collector from PyPI, which parses and re-exports what we send. The
official collector binaries on PyPI/npm/Debian have no OTLP receiver built in
(see docs/exporters.md), so Rotel is the collector in the loop.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import ssl
from pathlib import Path

import orjson
import pytest
import trustme
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.sinks.delivery import DeliveryPolicy
from oisp_sensor.sinks.otlp import OtlpSettings, OtlpSink
from oisp_sensor.sinks.otlp_semconv import trace_ids
from tests.conformance import assert_valid_events
from tests.unit.sinks.receivers import (
    FAST,
    Exported,
    Reply,
    attributes,
    bundled_binary,
    exported,
    free_port,
    http_receiver,
    server_process,
)
from tests.unit.store.traffic import run_through, sample_captures, sample_events

RESPONSES = 5  # the sample traffic: five calls (one rate-limited), twelve events in all
EVENTS = 12


def sink_for(url: str, counters: Counters | None = None, **settings: object) -> OtlpSink:
    policy = settings.pop("policy", FAST)
    sleep = settings.pop("sleep", None)
    return OtlpSink(
        OtlpSettings(endpoint=url, **settings),  # type: ignore[arg-type]
        counters=counters or Counters(),
        policy=policy,  # type: ignore[arg-type]
        sleep=sleep,  # type: ignore[arg-type]
    )


async def export_sample(sink: OtlpSink) -> list[Event]:
    """The sample traffic through a real pipeline into `sink`; stopping flushes it."""
    pipeline = await run_through(sample_captures(), [sink])
    assert pipeline.counters.get("sink.otlp.written") == EVENTS
    return sample_events()


def check_sample(out: Exported) -> None:
    """What the sample traffic must look like in OpenTelemetry terms (semconv GenAI)."""
    assert len(out.spans) == RESPONSES
    assert len(out.logs) == EVENTS
    ok = out.span(**{"gen_ai.usage.input_tokens": 50})
    attrs = attributes(ok.attributes)
    assert ok.name == "chat gpt-4o-mini"
    assert ok.kind == Span.SPAN_KIND_CLIENT
    assert ok.status.code == Status.STATUS_CODE_UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == "chatcmpl-x"
    assert attrs["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attrs["gen_ai.usage.output_tokens"] == 10
    assert attrs["server.address"] == "api.openai.com" and attrs["server.port"] == 443
    assert attrs["gen_ai.conversation.id"].startswith("conv_")
    assert attrs["oisp.cost.total_usd"] == pytest.approx(1.35e-05)
    assert ok.end_time_unix_nano - ok.start_time_unix_nano == 40_000_000  # request to response

    failed = out.span(**{"http.response.status_code": 429})
    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert failed.status.message == "Rate limit reached"
    assert attributes(failed.attributes)["error.type"] == "rate_limit_error"

    claude = out.span(**{"gen_ai.provider.name": "anthropic"})
    attrs = attributes(claude.attributes)
    assert claude.name == "chat claude-sonnet-4-5"
    assert attrs["gen_ai.request.max_tokens"] == 200
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (12, 17)
    assert attrs["gen_ai.response.id"] == "msg_1"

    resources = {r["process.pid"]: r for r, _ in out.spans}
    assert resources[1001]["service.name"] == "python3"
    assert resources[1001]["process.executable.path"] == "/usr/bin/python3"
    assert resources[2002]["service.name"] == "node"
    assert all("host.name" in r and r["os.type"] == "linux" for r in resources.values())

    # Every event, whole, as a log record whose body is its OISP JSON.
    bodies = [orjson.loads(record.body.string_value) for _, record in out.logs]
    assert_valid_events(bodies)
    assert sorted(b["event_type"] for b in bodies) == sorted(e.event_type for e in sample_events())
    for (_, record), body in zip(out.logs, bodies, strict=True):
        assert record.event_name == body["event_type"]
        assert record.time_unix_nano > 0 and record.observed_time_unix_nano > 0
        request_id = body["data"].get("request_id") or body.get("attrs", {}).get("request_id")
        if request_id:  # the log points at its call's span
            assert (record.trace_id, record.span_id) == trace_ids(request_id)
    span_ids = {s.span_id for _, s in out.spans}
    assert all(r.span_id in span_ids for _, r in out.logs if r.span_id)
    errors = [r for _, r in out.logs if r.severity_text == "ERROR"]
    assert [orjson.loads(r.body.string_value)["data"]["status_code"] for r in errors] == [429]


@pytest.mark.parametrize("protocol", ["protobuf", "json"])
async def test_spans_and_logs_reach_the_receiver(protocol: str) -> None:
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, protocol=protocol)
        await export_sample(sink)
        paths = {r.path for r in receiver.requests}
        assert paths == {"/v1/traces", "/v1/logs"}
        want = {"protobuf": "application/x-protobuf", "json": "application/json"}[protocol]
        assert {r.headers["Content-Type"] for r in receiver.requests} == {want}
        assert {r.content_encoding for r in receiver.requests} == {"gzip"}
        check_sample(exported(receiver))
        assert sink.counters.get("sink.otlp.sent_spans") == RESPONSES
        assert sink.counters.get("sink.otlp.sent_logs") == EVENTS


async def test_a_real_collector_accepts_and_forwards_both_encodings(tmp_path: Path) -> None:
    """sensor -> Rotel (OTLP/HTTP receiver, protobuf and JSON) -> Rotel's exporter -> us.

    Rotel answers 400 to a malformed body (it rejects base64 ids in OTLP/JSON, for
    one), so getting the data out the far side proves the encoding is right.
    """
    binary = bundled_binary("rotel", "rotel-agent")
    async with http_receiver() as downstream:
        port = free_port()
        args = [
            str(binary),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{free_port()}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            downstream.url,
            "--otlp-exporter-protocol",
            "http",
            "--batch-timeout",
            "50ms",
            "--log-file",
            str(tmp_path / "rotel-agent.log"),
            "--pid-file",
            str(tmp_path / "rotel-agent.pid"),
        ]
        with server_process(args, port, tmp_path / "rotel.out"):
            for protocol in ("protobuf", "json"):
                downstream.requests.clear()
                counters = Counters()
                await export_sample(
                    sink_for(f"http://127.0.0.1:{port}", counters, protocol=protocol)
                )
                assert counters.get("sink.otlp.rejected_spans") == 0
                assert counters.get("sink.otlp.rejected_logs") == 0
                await downstream.wait(
                    lambda _: (
                        len((o := exported(downstream)).spans) >= RESPONSES
                        and len(o.logs) >= EVENTS
                    )
                )
                check_sample(exported(downstream))
                assert all("Rotel" in r.headers["User-Agent"] for r in downstream.requests)


async def test_only_the_configured_signals_are_sent() -> None:
    async with http_receiver() as receiver:
        await export_sample(sink_for(receiver.url, signals=("logs",), compression="none"))
        assert {r.path for r in receiver.requests} == {"/v1/logs"}
        assert {r.content_encoding for r in receiver.requests} == {""}
        out = exported(receiver)
        assert len(out.logs) == EVENTS
        assert all(not record.trace_id for _, record in out.logs)  # no span to point at
    async with http_receiver() as receiver:
        await export_sample(sink_for(receiver.url, signals=("traces",)))
        assert {r.path for r in receiver.requests} == {"/v1/traces"}
        assert len(exported(receiver).spans) == RESPONSES


async def test_headers_and_resource_attributes_from_config_are_sent_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "hny-team-key-Zx81pQ"
    async with http_receiver() as receiver:
        receiver.script.extend([Reply(status=401, content_type="text/plain", body=b"bad key")] * 2)
        sink = sink_for(
            f"{receiver.url}/otlp/",
            headers={"x-honeycomb-team": secret},
            resource_attributes={"deployment.environment": "prod", "service.name": "ai-fleet"},
        )
        await export_sample(sink)
        assert {r.path for r in receiver.requests} == {"/otlp/v1/traces", "/otlp/v1/logs"}
        assert all(r.headers["x-honeycomb-team"] == secret for r in receiver.requests)
        assert all(r.headers["User-Agent"].startswith("oisp-sensor/") for r in receiver.requests)
        # The first two requests were refused (401): dropped and counted, not retried.
        assert sink.counters.get("sink.otlp.rejected_spans") == RESPONSES
        assert sink.counters.get("sink.otlp.rejected_logs") == EVENTS
        assert sink.counters.get("sink.otlp.retries") == 0
    assert "HTTP 401: bad key" in caplog.text
    assert secret not in caplog.text


async def test_resource_attributes_from_config_win() -> None:
    async with http_receiver() as receiver:
        await export_sample(
            sink_for(
                receiver.url,
                resource_attributes={"deployment.environment": "prod", "service.name": "ai-fleet"},
            )
        )
        resources = [r for r, _ in exported(receiver).spans + exported(receiver).logs]
        assert resources and all(r["service.name"] == "ai-fleet" for r in resources)
        assert all(r["deployment.environment"] == "prod" for r in resources)


async def test_429_and_503_are_retried_honouring_retry_after() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    async with http_receiver() as receiver:
        receiver.script.extend(
            [
                Reply(status=503, headers={"Retry-After": "7"}),
                Reply(status=429),  # no Retry-After: exponential backoff
                Reply(status=502),
            ]
        )
        sink = sink_for(receiver.url, signals=("traces",), sleep=sleep)
        await export_sample(sink)
        assert slept[0] == 7.0
        assert all(0 < s <= FAST.max_backoff_s for s in slept[1:]) and len(slept) == 3
        assert sink.counters.get("sink.otlp.retries") == 3
        assert sink.counters.get("sink.otlp.sent_spans") == RESPONSES
        bodies = receiver.bodies("/v1/traces")
        assert len(bodies) == 4 and len(set(bodies)) == 1  # the same request, resent


async def test_a_batch_is_dropped_and_counted_when_retries_run_out() -> None:
    policy = DeliveryPolicy(
        linger_s=0.01, initial_backoff_s=0.01, max_backoff_s=0.01, max_retry_s=0.2
    )
    async with http_receiver() as receiver:
        receiver.script.extend([Reply(status=503)] * 1000)
        sink = sink_for(receiver.url, signals=("traces",), policy=policy)
        await export_sample(sink)
        assert sink.counters.get("sink.otlp.gave_up_spans") == RESPONSES
        assert sink.counters.get("sink.otlp.sent_spans") == 0
        assert sink.counters.get("sink.otlp.retries") >= 3


async def test_the_buffer_is_bounded_while_the_collector_is_stuck() -> None:
    """A collector that never answers: memory stays bounded, drops are counted, and
    close() gives up after shutdown_s instead of hanging the sensor's exit."""
    policy = DeliveryPolicy(buffer=20, max_batch=5, linger_s=0.01, shutdown_s=0.3)
    events = sample_events() * 10  # 120 events
    async with http_receiver() as receiver:
        receiver.script.extend([Reply(hang=True)] * 100)
        sink = sink_for(receiver.url, signals=("logs",), policy=policy, timeout_s=60.0)
        await sink.start()
        await sink.write(events[:5])
        await receiver.wait(lambda r: len(r) == 1)  # the first batch is stuck in flight
        for i in range(5, len(events), 5):
            await sink.write(events[i : i + 5])
            assert len(sink.outbox) <= policy.buffer
        await sink.close()
        counters = sink.counters
        assert counters.get("sink.otlp.buffer_full") == len(events) - 5 - policy.buffer
        assert counters.get("sink.otlp.unsent_at_exit_logs") == 5  # the batch in flight
        assert counters.get("sink.otlp.unsent_at_exit_events") == policy.buffer
        assert counters.get("sink.otlp.sent_logs") == 0


async def test_a_timeout_is_retried() -> None:
    async with http_receiver() as receiver:
        receiver.script.append(Reply(hang=True))
        sink = sink_for(receiver.url, signals=("traces",), timeout_s=0.2)
        await export_sample(sink)
        assert sink.counters.get("sink.otlp.retries") == 1
        assert sink.counters.get("sink.otlp.sent_spans") == RESPONSES
        receiver.release()


async def test_close_flushes_what_was_written() -> None:
    policy = DeliveryPolicy(linger_s=30.0, shutdown_s=5.0)  # only close() can send this batch
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, policy=policy)
        await sink.start()
        await sink.write(sample_events())
        await asyncio.sleep(0.05)
        assert receiver.requests == []
        await sink.close()
        out = exported(receiver)
        assert (len(out.spans), len(out.logs)) == (RESPONSES, EVENTS)


async def test_tls_with_the_configured_ca_file(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "collector-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with http_receiver(server_context) as receiver:
        assert receiver.url.startswith("https://")
        trusted = sink_for(receiver.url, ca_file=str(ca_file))
        await export_sample(trusted)
        assert len(exported(receiver).spans) == RESPONSES

        untrusted = sink_for(receiver.url)  # public roots only: our private CA is refused
        await export_sample(untrusted)
        assert untrusted.counters.get("sink.otlp.rejected_spans") == RESPONSES
        assert untrusted.counters.get("sink.otlp.sent_spans") == 0


async def test_partial_success_is_counted() -> None:
    partial = ExportLogsServiceResponse()
    partial.partial_success.rejected_log_records = 2
    partial.partial_success.error_message = "2 records too large"
    async with http_receiver() as receiver:
        receiver.script.append(Reply(body=partial.SerializeToString()))
        sink = sink_for(receiver.url, signals=("logs",))
        await export_sample(sink)
        assert sink.counters.get("sink.otlp.partially_rejected_logs") == 2
        assert sink.counters.get("sink.otlp.sent_logs") == EVENTS


async def test_a_response_whose_request_was_never_seen_still_makes_a_span() -> None:
    """Started mid-call, or the request was dropped: the span is rebuilt from the response."""
    responses = [e for e in sample_events() if e.event_type == "ai.response"]
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, signals=("traces",))
        await sink.start()
        await sink.write(responses)
        await sink.close()
        out = exported(receiver)
        assert len(out.spans) == RESPONSES
        span = out.span(**{"gen_ai.usage.input_tokens": 50})
        assert span.name == "chat gpt-4o-mini-2024-07-18"
        assert span.end_time_unix_nano - span.start_time_unix_nano == 40_000_000  # latency_ms
        assert "gen_ai.request.model" not in attributes(span.attributes)


async def test_large_log_batches_are_split_below_the_request_limit() -> None:
    big = sample_events()[0]
    big.data["messages"][0]["content"] = "x" * 900_000
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, signals=("logs",), compression="none")
        await sink.start()
        await sink.write([big] * 10)
        await sink.close()
        bodies = receiver.bodies("/v1/logs")
        assert len(bodies) >= 3 and all(len(b) <= 4 * 1024 * 1024 + 64 * 1024 for b in bodies)
        assert len(exported(receiver).logs) == 10


def test_otlp_json_ids_are_hex_and_the_body_is_gzip() -> None:
    sink = sink_for("http://127.0.0.1:4318", protocol="json")
    requests = sink.prepare(sample_events())
    traces = next(r for r in requests if r.tag == "traces")
    tree = orjson.loads(gzip.decompress(traces.body))
    span = tree["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
    int(span["traceId"], 16)
    assert span["kind"] == 3  # enums are integers in OTLP/JSON
    assert tree["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"] == "oisp-sensor"


async def test_unanswered_requests_are_bounded() -> None:
    """Requests wait for their response in a bounded map; the oldest are forgotten, counted."""
    requests = [e for e in sample_events() if e.event_type == "ai.request"]
    assert len(requests) == RESPONSES
    async with http_receiver() as receiver:
        sink = sink_for(receiver.url, signals=("traces",))
        sink.pairer.limit = 3
        await sink.start()
        await sink.write(requests)
        await sink.close()
    assert len(sink.pairer._pending) == 3
    assert sink.counters.get("sink.otlp.unanswered_requests") == RESPONSES - 3
