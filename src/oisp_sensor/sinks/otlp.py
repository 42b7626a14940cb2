"""Export to an OpenTelemetry collector or backend over OTLP/HTTP.

Each ai.request/ai.response pair becomes a GenAI client span and every event a log
record whose body is the OISP JSON (mapping: `otlp_semconv.py`). Requests go to
`{endpoint}/v1/traces` and `{endpoint}/v1/logs` (OTLP/HTTP, opentelemetry.io/docs/
specs/otlp), binary protobuf by default or OTLP/JSON, gzip-compressed, through the
shared `Outbox` (bounded buffer, batching, retries on 429/502/503/504 honouring
Retry-After). Built from opentelemetry-proto's generated classes: no OTel SDK, so
the sensor's own process is not instrumented by accident.
"""

from __future__ import annotations

import base64
import gzip
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from oisp_sensor import __version__
from oisp_sensor.config import SinksConfig
from oisp_sensor.counters import Counters
from oisp_sensor.events import Event, EventType
from oisp_sensor.sinks.delivery import (
    DeliveryPolicy,
    HttpPoster,
    Outbox,
    Request,
    Sleep,
    parse_headers,
    redacted_url,
)
from oisp_sensor.sinks.otlp_semconv import (
    Attributes,
    AttrValue,
    LogData,
    SpanData,
    SpanPairer,
    log_data,
    resource_attributes,
)

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope(name="oisp-sensor", version=__version__)
CONTENT_TYPES = {"protobuf": "application/x-protobuf", "json": "application/json"}
OTLP_RETRYABLE = frozenset({429, 502, 503, 504})  # OTLP/HTTP spec, "Retryable Response Codes"
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # below common receiver limits (gRPC's default is 4 MiB)


@dataclass(frozen=True, slots=True, kw_only=True)
class OtlpSettings:
    endpoint: str = "http://127.0.0.1:4318"
    protocol: str = "protobuf"  # or "json"
    signals: tuple[str, ...] = ("traces", "logs")
    headers: Mapping[str, str] = field(default_factory=dict)
    compression: str = "gzip"  # or "none"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    ca_file: str = ""
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, sinks: SinksConfig) -> OtlpSettings:
        return cls(
            endpoint=sinks.otlp_endpoint,
            protocol=sinks.otlp_protocol,
            signals=sinks.otlp_signals,
            headers=parse_headers(sinks.otlp_headers),
            compression=sinks.otlp_compression,
            resource_attributes=parse_headers(sinks.otlp_resource_attributes),
            ca_file=sinks.otlp_ca_file,
            timeout_s=sinks.otlp_timeout_s,
        )

    def url(self, signal: str) -> str:
        """OTLP/HTTP's base-URL rule: the signal path is appended to the endpoint."""
        return f"{self.endpoint.rstrip('/')}/v1/{signal}"


# --- encoding --------------------------------------------------------------------------------


def any_value(value: AttrValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple):
        out = AnyValue()
        out.array_value.values.extend(AnyValue(string_value=v) for v in value)
        return out
    return AnyValue(string_value=value)


def key_values(attributes: Attributes) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def _scope_of(resources: Any, scopes: str, resource: Attributes, groups: dict[int, Any]) -> Any:
    """The sensor's scope inside the entry of `resources` (resource_spans or resource_logs)
    for `resource`, added on first use: one entry per observed program. Records of one
    program share one resource dict (`OtlpSink._resource` caches them), so its id is the key.
    """
    scope = groups.get(id(resource))
    if scope is None:
        entry = resources.add()
        entry.resource.attributes.extend(key_values(resource))
        scope = getattr(entry, scopes).add()
        scope.scope.CopyFrom(SCOPE)
        groups[id(resource)] = scope
    return scope


def encode_spans(spans: Sequence[SpanData]) -> ExportTraceServiceRequest:
    """One ResourceSpans per observed program, one scope (the sensor) in each."""
    request = ExportTraceServiceRequest()
    groups: dict[int, Any] = {}
    for span in spans:
        scope_spans = _scope_of(request.resource_spans, "scope_spans", span.resource, groups)
        out = scope_spans.spans.add()
        out.trace_id = span.trace_id
        out.span_id = span.span_id
        out.name = span.name
        out.kind = Span.SPAN_KIND_CLIENT
        out.start_time_unix_nano = span.start_ns
        out.end_time_unix_nano = span.end_ns
        out.attributes.extend(key_values(span.attributes))
        if span.error is not None:
            out.status.code = Status.STATUS_CODE_ERROR
            out.status.message = span.error
    return request


def encode_logs(records: Sequence[LogData], observed_ns: int) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    groups: dict[int, Any] = {}
    for record in records:
        scope_logs = _scope_of(request.resource_logs, "scope_logs", record.resource, groups)
        out = scope_logs.log_records.add()
        out.time_unix_nano = record.time_ns
        out.observed_time_unix_nano = observed_ns
        out.severity_number = record.severity[0]
        out.severity_text = record.severity[1]
        out.event_name = record.event_name
        out.body.string_value = record.body
        out.attributes.extend(key_values(record.attributes))
        if record.trace_id:
            out.trace_id = record.trace_id
            out.span_id = record.span_id
    return request


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def to_otlp_json(message: Message) -> bytes:
    """OTLP/JSON: proto3 JSON mapping, except that trace and span ids are hex, not base64,
    and enums are integers (OTLP spec, "JSON Protobuf Encoding")."""
    tree = json_format.MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(tree)
    return orjson.dumps(tree)


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = _b64_to_hex(value)
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


# --- the sink ------------------------------------------------------------------------------


class OtlpSink:
    """GenAI spans and OISP log records to an OTLP/HTTP endpoint."""

    name = "otlp"

    def __init__(
        self,
        settings: OtlpSettings,
        *,
        counters: Counters | None = None,
        policy: DeliveryPolicy | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.counters = counters or Counters()
        self.traces = "traces" in settings.signals
        self.logs = "logs" in settings.signals
        self.pairer = SpanPairer()
        self._evictions_counted = 0
        self._clock = clock
        self._http = HttpPoster(
            timeout_s=settings.timeout_s,
            headers=settings.headers,
            ca_file=settings.ca_file,
            retry_status=OTLP_RETRYABLE,
        )
        self._content_type = CONTENT_TYPES[settings.protocol]
        self.outbox: Outbox[Event, Request] = Outbox(
            self.name,
            prepare=self.prepare,
            send=self.send,
            counters=self.counters,
            policy=policy or DeliveryPolicy(),
            offload=True,  # ~80 µs per event (bench/exporters.py): off the event loop
            sleep=sleep,
        )

    async def start(self) -> None:
        await self._http.start()
        await self.outbox.start()
        log.info(
            "otlp: exporting %s to %s (%s)",
            " and ".join(self.settings.signals),
            redacted_url(self.settings.endpoint),
            self.settings.protocol,
        )

    async def write(self, batch: Sequence[Event]) -> None:
        self._count_evictions()
        self.outbox.put(batch)

    async def close(self) -> None:
        try:
            await self.outbox.close()
        finally:
            await self._http.close()
            self._count_evictions()

    def _count_evictions(self) -> None:
        """Counted on the loop, not in prepare(): that runs in a worker thread, and
        Counters belong to the loop."""
        evicted = self.pairer.evicted  # only the sender thread raises it; we only read it
        if evicted > self._evictions_counted:
            self.counters.inc("sink.otlp.unanswered_requests", evicted - self._evictions_counted)
            self._evictions_counted = evicted

    # --- encoding a batch (runs in the sender task, in event order) ----------------------------

    def prepare(self, batch: list[Event]) -> list[Request]:
        spans: list[SpanData] = []
        records: list[LogData] = []
        resources: dict[tuple[Any, ...], Attributes] = {}
        for event in batch:
            resource = self._resource(event, resources)
            if self.traces:
                if event.event_type == EventType.AI_REQUEST:
                    self.pairer.request(event)
                elif event.event_type == EventType.AI_RESPONSE:
                    span = self.pairer.response(event, resource)
                    if span is not None:
                        spans.append(span)
            if self.logs:
                body = event.json_bytes().decode()
                records.append(log_data(event, body, resource, with_trace=self.traces))
        requests: list[Request] = []
        if spans:
            requests.append(self._request(encode_spans(spans), len(spans), "spans", "traces"))
        for chunk in _chunks_by_size(records, MAX_REQUEST_BYTES):
            message = encode_logs(chunk, self._clock())
            requests.append(self._request(message, len(chunk), "logs", "logs"))
        return requests

    def _resource(self, event: Event, cache: dict[tuple[Any, ...], Attributes]) -> Attributes:
        process = event.process or {}
        key = (
            process.get("pid"),
            process.get("exe"),
            (event.app or {}).get("name"),
            (event.host or {}).get("hostname"),
        )
        resource = cache.get(key)
        if resource is None:
            resource = cache[key] = resource_attributes(event, self.settings.resource_attributes)
        return resource

    def _request(self, message: Message, count: int, unit: str, signal: str) -> Request:
        if self.settings.protocol == "json":
            body = to_otlp_json(message)
        else:
            body = message.SerializeToString()
        if self.settings.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)
        return Request(body=body, count=count, unit=unit, tag=signal)

    # --- sending one request ---------------------------------------------------------------

    async def send(self, request: Request) -> None:
        self._count_evictions()
        headers = {"Content-Type": self._content_type}
        if self.settings.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        payload = await self._http.post(self.settings.url(request.tag), request.body, headers)
        self._check_partial_success(request, payload)

    def _check_partial_success(self, request: Request, payload: bytes) -> None:
        """A 200 can still reject part of a request (OTLP "partial success"): count it."""
        if not payload:
            return
        response: ExportTraceServiceResponse | ExportLogsServiceResponse
        if request.tag == "traces":
            response = ExportTraceServiceResponse()
        else:
            response = ExportLogsServiceResponse()
        try:
            if payload.lstrip()[:1] == b"{":
                json_format.Parse(payload, response, ignore_unknown_fields=True)
            else:
                response.ParseFromString(payload)
        except (DecodeError, json_format.ParseError):
            return  # the request was accepted; an unreadable answer is not our problem
        partial = response.partial_success
        rejected = int(
            getattr(partial, "rejected_spans", 0) or getattr(partial, "rejected_log_records", 0)
        )
        if rejected:
            self.counters.inc(f"sink.otlp.partially_rejected_{request.unit}", rejected)
            log.warning(
                "otlp: the collector rejected %d of %d %s: %s",
                rejected,
                request.count,
                request.unit,
                partial.error_message or "no reason given",
            )


def _chunks_by_size(records: list[LogData], limit: int) -> list[list[LogData]]:
    """Split log records so no request body (before compression) grows past `limit`."""
    chunks: list[list[LogData]] = []
    current: list[LogData] = []
    size = 0
    for record in records:
        length = len(record.body) + 512  # the body dominates; 512 covers the rest
        if current and size + length > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += length
    if current:
        chunks.append(current)
    return chunks
