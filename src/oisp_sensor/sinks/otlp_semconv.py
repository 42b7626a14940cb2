"""OISP events in OpenTelemetry's vocabulary: resources, GenAI spans and log records.

Names follow the OpenTelemetry semantic conventions (GenAI client spans, registry
as of semconv 1.37+): `gen_ai.provider.name`, `gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.usage.input_tokens`, ... `gen_ai.system`, the
pre-1.37 name of the provider attribute, is sent too because many backends still
key their LLM views on it. Prompt and completion text is *not* put on spans
(semconv makes it opt-in, and it is large): every event goes out whole as a log
record, so nothing is lost.

Like Grafana Beyla and other zero-code instrumentations, the resource is the
observed program (service.name = its app or executable name, process.*, host.*),
not the sensor; the sensor names itself as the instrumentation scope. Pure
functions on plain values: no I/O, no protobuf here.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from oisp_sensor.events import Event, EventType

AttrValue = str | int | float | bool | tuple[str, ...]
Attributes = dict[str, AttrValue]

# attrs.provider_id / data.provider.name -> semconv gen_ai.provider.name well-known values.
PROVIDER_NAMES = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "aws_bedrock": "aws.bedrock",
    "cohere": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
}
# OISP data.request_type -> gen_ai.operation.name.
OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
# OISP data.parameters -> gen_ai.request.* (semconv types: int or double).
PARAMETERS: dict[str, tuple[str, type]] = {
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "top_k": ("gen_ai.request.top_k", float),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
    "seed": ("gen_ai.request.seed", int),
    "n": ("gen_ai.request.choice.count", int),
}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "x86", "i686": "x86"}
SEVERITY_INFO = (9, "INFO")
SEVERITY_ERROR = (17, "ERROR")


@dataclass(slots=True)
class SpanData:
    """One GenAI client span: an ai.request and its ai.response."""

    trace_id: bytes
    span_id: bytes
    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    error: str | None  # the status description when the call failed
    resource: Attributes


@dataclass(slots=True)
class LogData:
    """One OISP event as a log record; `body` is its OISP JSON."""

    time_ns: int
    event_name: str
    body: str
    severity: tuple[int, str]
    attributes: Attributes
    resource: Attributes
    trace_id: bytes = b""
    span_id: bytes = b""


@dataclass(slots=True)
class _Pending:
    ts_ns: int
    attributes: Attributes


@dataclass(slots=True)
class SpanPairer:
    """Pairs each ai.request with its ai.response (they arrive apart, in order).

    Only the request's start time and attributes are kept, never its messages, and
    at most `limit` requests wait at once: the oldest unanswered one is forgotten
    (counted by the caller via `evicted`) so memory stays bounded.
    """

    limit: int = 4096
    evicted: int = 0
    _pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)

    def request(self, event: Event) -> None:
        request_id = event.data.get("request_id")
        if not isinstance(request_id, str):
            return
        self._pending[request_id] = _Pending(event.ts_ns, request_attributes(event.data))
        if len(self._pending) > self.limit:
            self._pending.popitem(last=False)
            self.evicted += 1

    def response(self, event: Event, resource: Attributes) -> SpanData | None:
        data = event.data
        request_id = data.get("request_id")
        if not isinstance(request_id, str):
            return None
        pending = self._pending.pop(request_id, None)
        attributes: Attributes = dict(pending.attributes) if pending else {}
        if pending is None:  # the request was not seen: rebuild what the response tells
            attributes.update(request_attributes(data))
            attributes.pop(
                "gen_ai.request.model", None
            )  # the response's model is not the asked one
        attributes.update(response_attributes(event))
        latency = data.get("latency_ms")
        if pending is not None:
            start = pending.ts_ns
        elif isinstance(latency, (int, float)):
            start = event.ts_ns - int(latency * 1_000_000)
        else:
            start = event.ts_ns
        operation = str(attributes.get("gen_ai.operation.name", "chat"))
        model = attributes.get("gen_ai.request.model") or attributes.get("gen_ai.response.model")
        trace_id, span_id = trace_ids(request_id)
        return SpanData(
            trace_id=trace_id,
            span_id=span_id,
            name=f"{operation} {model}" if model else operation,
            start_ns=min(start, event.ts_ns),
            end_ns=event.ts_ns,
            attributes=attributes,
            error=error_description(data),
            resource=resource,
        )


def trace_ids(request_id: str) -> tuple[bytes, bytes]:
    """A stable (trace id, span id) per request, so its logs point at its span."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=24).digest()
    return digest[:16], digest[16:]


def request_id_of(event: Event) -> str | None:
    value = event.data.get("request_id") or event.attrs.get("request_id")
    return value if isinstance(value, str) else None


def provider_name(data: Mapping[str, Any], attrs: Mapping[str, Any]) -> str | None:
    provider_id = attrs.get("provider_id")
    provider = data.get("provider") or {}
    name = provider_id or (provider.get("name") if isinstance(provider, dict) else None)
    if not isinstance(name, str):
        return None
    if name == "google" and "aiplatform.googleapis.com" in str(provider.get("endpoint", "")):
        return "gcp.vertex_ai"
    return PROVIDER_NAMES.get(name, name)


def request_attributes(data: Mapping[str, Any]) -> Attributes:
    """What the request tells: operation, model, parameters, server, conversation."""
    out: Attributes = {
        "gen_ai.operation.name": OPERATIONS.get(str(data.get("request_type")), "chat")
    }
    model = (data.get("model") or {}).get("id")
    if isinstance(model, str) and model:
        out["gen_ai.request.model"] = model
    if isinstance(data.get("conversation_id"), str):
        out["gen_ai.conversation.id"] = data["conversation_id"]
    if isinstance(data.get("streaming"), bool):
        out["oisp.streaming"] = data["streaming"]
    parameters = data.get("parameters") or {}
    for key, (name, kind) in PARAMETERS.items():
        value = parameters.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = kind(value)
    stop = parameters.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = tuple(stop)
    out.update(server_attributes(data))
    return out


def server_attributes(data: Mapping[str, Any]) -> Attributes:
    endpoint = (data.get("provider") or {}).get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return {}
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return {}
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    out: Attributes = {"server.address": parts.hostname}
    if port:
        out["server.port"] = port
    return out


def response_attributes(event: Event) -> Attributes:
    data = event.data
    out: Attributes = {}
    provider = provider_name(data, event.attrs)
    if provider:
        out["gen_ai.provider.name"] = provider
        out["gen_ai.system"] = provider
    model = (data.get("model") or {}).get("id")
    if isinstance(model, str) and model:
        out["gen_ai.response.model"] = model
    if isinstance(data.get("provider_request_id"), str):
        out["gen_ai.response.id"] = data["provider_request_id"]
    reasons = [
        c["finish_reason"]
        for c in data.get("choices") or []
        if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
    ]
    if not reasons and isinstance(data.get("finish_reason"), str):
        reasons = [data["finish_reason"]]
    if reasons:
        out["gen_ai.response.finish_reasons"] = tuple(reasons)
    usage = data.get("usage") or {}
    for key, name in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
        ("cached_tokens", "gen_ai.usage.cache_read.input_tokens"),
        ("cache_creation_tokens", "gen_ai.usage.cache_creation.input_tokens"),
        ("reasoning_tokens", "oisp.usage.reasoning_tokens"),
    ):
        if isinstance(usage.get(key), int) and not isinstance(usage.get(key), bool):
            out[name] = usage[key]
    cost = usage.get("total_cost_usd")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        out["oisp.cost.total_usd"] = float(cost)
    if isinstance(data.get("status_code"), int):
        out["http.response.status_code"] = data["status_code"]
    ttft = data.get("time_to_first_token_ms")
    if isinstance(ttft, (int, float)) and not isinstance(ttft, bool):
        out["oisp.time_to_first_token_ms"] = float(ttft)
    if data.get("success") is False:
        out["error.type"] = error_type(data)
    if isinstance(data.get("request_id"), str):
        out["oisp.request_id"] = data["request_id"]
    out["oisp.event_id"] = event.event_id
    return out


def error_type(data: Mapping[str, Any]) -> str:
    """Low-cardinality: the provider's error type or code, else the HTTP status, else _OTHER."""
    error = data.get("error") or {}
    for key in ("type", "code"):
        if isinstance(error.get(key), str) and error[key]:
            return str(error[key])
    status = data.get("status_code")
    return str(status) if isinstance(status, int) else "_OTHER"


def error_description(data: Mapping[str, Any]) -> str | None:
    if data.get("success") is not False:
        return None
    message = (data.get("error") or {}).get("message")
    return message[:256] if isinstance(message, str) and message else error_type(data)


def resource_attributes(event: Event, extra: Mapping[str, str]) -> Attributes:
    """The observed program and its host, plus the user's own resource attributes."""
    out: Attributes = {}
    app = event.app or {}
    process = event.process or {}
    host = event.host or {}
    actor = event.actor or {}
    name = app.get("name") or process.get("name")
    out["service.name"] = str(name) if name else "unknown_service"
    for source, key, attr in (
        (process, "pid", "process.pid"),
        (process, "ppid", "process.parent_pid"),
        (process, "exe", "process.executable.path"),
        (process, "name", "process.executable.name"),
        (actor, "uid", "process.user.id"),
        (actor, "user", "process.user.name"),
        (host, "hostname", "host.name"),
        (host, "device_id", "host.id"),
        (host, "os", "os.type"),
        (host, "os_version", "os.description"),
        (host, "kernel_version", "os.version"),
        (app, "app_id", "oisp.app.id"),
    ):
        value = source.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            out[attr] = value
    arch = host.get("arch")
    if isinstance(arch, str) and arch:
        out["host.arch"] = _ARCH.get(arch, arch)
    container = host.get("container") or {}
    if isinstance(container, dict) and isinstance(container.get("id"), str):
        out["container.id"] = container["id"]
    out.update(extra)
    return out


def log_data(event: Event, body: str, resource: Attributes, *, with_trace: bool) -> LogData:
    failed = event.event_type == EventType.AI_RESPONSE and event.data.get("success") is False
    record = LogData(
        time_ns=event.ts_ns,
        event_name=str(event.event_type),
        body=body,
        severity=SEVERITY_ERROR if failed else SEVERITY_INFO,
        attributes={"oisp.event_id": event.event_id, "oisp.event_type": str(event.event_type)},
        resource=resource,
    )
    request_id = request_id_of(event)
    if with_trace and request_id:
        record.trace_id, record.span_id = trace_ids(request_id)
    return record
