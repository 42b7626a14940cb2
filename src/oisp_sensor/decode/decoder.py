"""RawCapture in, OISP events out: the one decoder every capture source feeds.

`Decoder.feed(raw)` routes bytes to the connection they belong to. A
`ConnectionDecoder` runs HTTP/1.1 framing over both directions, pairs responses
with requests in order (DESIGN.md §3), asks the provider's API decoder what each
message means, and emits ai.request when a request body is complete, ai.response
(and agent.tool_call) when its response is, agent.tool_result when a later request
hands a tool's result back, and network.connect for ConnOpen records.

Sans-IO: no sockets, no clock. Every timestamp comes in with the bytes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson

from oisp_sensor.counters import Counters
from oisp_sensor.decode import tools
from oisp_sensor.decode.auth import extract_auth
from oisp_sensor.decode.correlate import PendingCall, ToolCallTracker, conversation_id
from oisp_sensor.decode.encoding import BodyTooLarge, ContentDecoder, content_decoder
from oisp_sensor.decode.http1 import (
    Body,
    End,
    Head,
    Headers,
    Http1Connection,
    HttpEvent,
    RequestHead,
    ResponseHead,
    Side,
    Upgraded,
)
from oisp_sensor.decode.models import model_family
from oisp_sensor.decode.providers import find_decoder
from oisp_sensor.decode.providers.base import (
    SHAPE_ERRORS,
    ApiDecoder,
    DecodedRequest,
    HttpRequest,
    ResponseAssembler,
    ResponseBuilder,
    as_str,
    loads,
    normalize_finish_reason,
)
from oisp_sensor.decode.providers.toolids import is_synthetic
from oisp_sensor.decode.registry import ProviderRegistry, ProviderSpec
from oisp_sensor.errors import DecodeError
from oisp_sensor.events import CaptureKind, ConnKey, Event, EventType, RawCapture
from oisp_sensor.events.data import AiResponseData, ModelInfo, ProviderInfo, ToolCall
from oisp_sensor.events.ulid import new_ulid

log = logging.getLogger(__name__)

Hasher = Callable[[str], str]

# Headers worth keeping for the call detail view. An allowlist, so a credential in
# a header nobody anticipated can never slip through.
REQUEST_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "user-agent",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "openai-organization",
        "openai-project",
        "x-stainless-lang",
        "x-stainless-package-version",
        "x-stainless-runtime",
        "x-stainless-runtime-version",
        "x-stainless-os",
        "x-stainless-arch",
        "x-stainless-retry-count",
        "x-goog-api-client",
        "x-amz-target",
    }
)
RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "x-request-id",
        "request-id",
        "openai-processing-ms",
        "openai-version",
        "openai-organization",
        "retry-after",
        "x-amzn-requestid",
        "x-amzn-errortype",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-remaining",
        "x-oisp-sensor-error",
    }
)
# Enum members cost ~150 ns per lookup on Python 3.11; the per-read path uses these.
_CLIENT, _SERVER = Side.CLIENT, Side.SERVER
_CONN_OPEN, _CONN_CLOSE = CaptureKind.CONN_OPEN, CaptureKind.CONN_CLOSE
_SSL_WRITE = CaptureKind.SSL_WRITE

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-goog-request-id")


# The spec's confidence.process_attribution values; a source claiming anything else
# gets "unknown" rather than an event that fails validation.
ATTRIBUTIONS = frozenset(
    {"direct", "socket_inode", "cgroup", "timing_correlation", "heuristic", "unknown"}
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Memory bounds per connection; passing one is counted and flagged, never fatal."""

    max_body_bytes: int = 32 * 1024 * 1024  # a request body, or a non-streamed response
    max_text_chars: int = 16 * 1024 * 1024  # text assembled from one streamed response
    max_connections: int = 10_000  # tracked at once; the least recently active is dropped
    max_pending_exchanges: int = 256  # pipelined requests awaiting responses


@dataclass(slots=True)
class ConnInfo:
    """What we know about a connection apart from its bytes."""

    remote_host: str | None = None
    remote_port: int | None = None
    process: dict[str, Any] | None = None
    actor: dict[str, Any] | None = None
    capture_method: str = "tls_boundary"
    attribution: str = "unknown"

    def update(self, raw: RawCapture) -> None:
        if raw.remote_host and not self.remote_host:
            self.remote_host = raw.remote_host
        if raw.remote_port and not self.remote_port:
            self.remote_port = raw.remote_port
        self.capture_method = raw.capture_method
        if raw.pid is not None and (self.process is None or "name" not in self.process):
            self.process, self.actor = process_from_raw(raw)
            attribution = raw.metadata.get("attribution") or "direct"
            self.attribution = attribution if attribution in ATTRIBUTIONS else "unknown"


def process_from_raw(raw: RawCapture) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The spec's process/actor objects from a capture's pid and metadata."""
    meta = raw.metadata
    proc: dict[str, Any] = {"pid": raw.pid}
    if isinstance(meta.get("ppid"), int):
        proc["ppid"] = meta["ppid"]
    for key in ("exe", "cmdline", "cwd"):
        if isinstance(meta.get(key), str):
            proc[key] = meta[key]
    name = meta.get("comm") or meta.get("name")
    if isinstance(name, str):
        proc["name"] = name
    if raw.tid is not None and raw.tid != raw.pid:
        proc["thread_id"] = raw.tid
    actor: dict[str, Any] = {}
    if isinstance(meta.get("uid"), int):
        actor["uid"] = meta["uid"]
    if isinstance(meta.get("user"), str):
        actor["user"] = meta["user"]
    return proc, actor or None


@dataclass(slots=True)
class _Exchange:
    """One request and its response on a connection."""

    head: RequestHead
    started_ns: int
    provider: ProviderSpec | None
    host: str
    port: int | None
    request_id: str
    ended_ns: int = 0
    body: bytearray = field(default_factory=bytearray)
    body_decoder: ContentDecoder | None = None
    body_truncated: bool = False
    request_done: bool = False
    request_event: Event | None = None
    api: ApiDecoder | None = None
    decoded: DecodedRequest | None = None
    http: HttpRequest | None = None
    conversation: str | None = None
    # response side
    response: ResponseHead | None = None
    response_last_ns: int = 0  # capture time of the last response byte seen
    response_decoder: ContentDecoder | None = None
    assembler: ResponseAssembler | None = None
    builder: ResponseBuilder | None = None
    problems: list[str] = field(default_factory=list)
    chunk_index: int = 0

    @property
    def tracked(self) -> bool:
        """Only exchanges with an AI provider are decoded; others are just kept in order."""
        return self.provider is not None


class ConnectionDecoder:
    """All decoding state of one captured connection."""

    def __init__(self, key: ConnKey, info: ConnInfo, ctx: Decoder) -> None:
        self.key = key
        self.info = info
        self.ctx = ctx
        self.http = Http1Connection()
        self.broken: str | None = None
        self.last_ns = 0
        self._unanswered: deque[_Exchange] = deque()
        self._request: _Exchange | None = None  # the request being read
        self._request_first_ns: int | None = None  # when the next request's first byte came
        self._response: _Exchange | None = None  # the exchange whose response is being read

    # --- input ----------------------------------------------------------------------------

    def feed(self, side: Side, data: bytes, ts_ns: int) -> list[Event]:
        self.last_ns = ts_ns
        if self.broken or self.http.upgraded:
            return []
        out: list[Event] = []
        try:
            if side is _CLIENT:
                self._request_bytes_at(ts_ns)
                self._handle(self.http.feed_client(data), ts_ns, out)
                if self.http.client_buffered:  # the next request may have begun in this read
                    self._request_bytes_at(ts_ns)
            else:
                self._handle(self.http.feed_server(data), ts_ns, out)
        except DecodeError as e:
            self._break(str(e), ts_ns, out)
        return out

    def _request_bytes_at(self, ts_ns: int) -> None:
        """A request starts with its first byte, which may come reads before its head is
        complete (DESIGN.md §3: latency counts from the first request byte)."""
        if self._request_first_ns is None:
            self._request_first_ns = ts_ns

    def close(self, ts_ns: int) -> list[Event]:
        """The connection ended: close-delimited bodies end, everything in flight is emitted."""
        out: list[Event] = []
        if not self.broken and not self.http.upgraded:
            try:
                self._handle(self.http.eof_client(), ts_ns, out)
                self._handle(self.http.eof_server(), ts_ns, out)
            except DecodeError as e:
                self._break(str(e), ts_ns, out)
                return out
        self._flush_in_flight("connection closed before the exchange completed", ts_ns, out)
        return out

    def _break(self, reason: str, ts_ns: int, out: list[Event]) -> None:
        self.broken = reason
        counters = self.ctx.counters
        tracked = (
            any(ex.tracked for ex in (self._request, self._response, *self._unanswered) if ex)
            or self._is_ai_connection()
        )
        counters.inc("decode.errors" if tracked else "decode.not_http")
        if tracked:
            log.warning(
                "connection %s to %s: cannot decode: %s",
                self.key[-1],
                self.info.remote_host or "?",
                reason,
            )
        self._flush_in_flight(f"decode error: {reason}", ts_ns, out, decode_error=reason)

    def _is_ai_connection(self) -> bool:
        return self.ctx.registry.detect(self.info.remote_host, self.info.remote_port) is not None

    def _flush_in_flight(
        self, reason: str, ts_ns: int, out: list[Event], decode_error: str | None = None
    ) -> None:
        pending = [ex for ex in (self._response, *self._unanswered) if ex is not None]
        if self._request is not None and self._request not in pending:
            pending.append(self._request)
        for ex in pending:
            if not ex.tracked:
                continue
            if ex.request_event is None:
                self._emit_request(ex, ts_ns, out, partial=reason, decode_error=decode_error)
            if ex.api is not None:
                self._emit_response(ex, ts_ns, out, partial=reason, decode_error=decode_error)
        self._unanswered.clear()
        self._request = self._response = None

    def _handle(self, events: list[HttpEvent], ts_ns: int, out: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Body):
                if ev.side is _SERVER:
                    self._response_body(ev.data, ts_ns, out)
                else:
                    self._request_body(ev.data)
            elif isinstance(ev, Head):
                if isinstance(ev.head, RequestHead):
                    self._request_head(ev.head, ts_ns)
                else:
                    self._response_head(ev.head, ts_ns, out)
            elif isinstance(ev, End):
                if ev.side is _CLIENT:
                    self._request_end(ts_ns, out)
                else:
                    self._response_end(ts_ns, out)
            elif isinstance(ev, Upgraded):
                self._upgraded(ev.protocol, ts_ns, out)
            # Informational (1xx) responses need nothing: the final one follows.

    # --- requests -------------------------------------------------------------------------

    def _request_head(self, head: RequestHead, ts_ns: int) -> None:
        host, port = self._target(head)
        provider = self.ctx.registry.detect(host, port)
        started = self._request_first_ns if self._request_first_ns is not None else ts_ns
        ex = _Exchange(
            head=head,
            started_ns=started,
            provider=provider,
            host=host or "",
            port=port,
            request_id="req_" + new_ulid(ts_ns),
        )
        if provider is not None:
            try:
                ex.body_decoder = content_decoder(
                    head.headers.get("content-encoding"), self.ctx.limits.max_body_bytes
                )
            except DecodeError as e:  # an unknown coding costs this body, not the connection
                ex.problems.append(f"request body: {e}")
                ex.body_truncated = True
        else:
            self.ctx.counters.inc("decode.non_ai_requests")
        if len(self._unanswered) >= self.ctx.limits.max_pending_exchanges:
            raise DecodeError("too many requests without responses")
        self._request = ex
        self._unanswered.append(ex)

    def _target(self, head: RequestHead) -> tuple[str | None, int | None]:
        """Host and port from the request (Host header, or an absolute-form target)."""
        authority = head.headers.get("host")
        if head.target.startswith(("http://", "https://")):
            authority = head.target.split("/", 3)[2]
        if not authority:
            return self.info.remote_host, self.info.remote_port
        host, port = authority, self.info.remote_port
        if authority.startswith("["):  # [IPv6]:port
            end = authority.find("]")
            host = authority[1:end]
            rest = authority[end + 1 :]
            if rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit():
                port = int(rest[1:])
        elif authority.count(":") == 1:
            name, _, p = authority.partition(":")
            host = name
            if p.isascii() and p.isdigit():  # str.isdigit() alone takes "³" too
                port = int(p)
        return host.lower(), port

    def _request_body(self, data: bytes) -> None:
        ex = self._request
        if ex is None or not ex.tracked or ex.body_truncated:
            return
        try:
            assert ex.body_decoder is not None
            data = ex.body_decoder.decode(data)
        except BodyTooLarge:
            self._truncate(ex)
            return
        except DecodeError as e:
            ex.problems.append(f"request body: {e}")
            ex.body_truncated = True
            return
        if len(ex.body) + len(data) > self.ctx.limits.max_body_bytes:
            self._truncate(ex)
            return
        ex.body += data

    def _truncate(self, ex: _Exchange) -> None:
        ex.body_truncated = True
        ex.body = bytearray()
        ex.problems.append(f"request body larger than {self.ctx.limits.max_body_bytes} bytes")
        self.ctx.counters.inc("decode.body_over_limit")

    def _request_end(self, ts_ns: int, out: list[Event]) -> None:
        ex = self._request
        self._request = None
        self._request_first_ns = None
        if ex is None or not ex.tracked:
            return
        ex.request_done = True
        ex.ended_ns = ts_ns
        if ex.request_event is not None:
            return  # emitted already, when the response came before the body ended
        if ex.body_decoder is not None and not ex.body_truncated:
            try:
                ex.body += ex.body_decoder.flush()
            except DecodeError as e:
                ex.problems.append(f"request body: {e}")
        self._emit_request(ex, ts_ns, out)

    def _emit_request(
        self,
        ex: _Exchange,
        ts_ns: int,
        out: list[Event],
        *,
        partial: str | None = None,
        decode_error: str | None = None,
    ) -> None:
        assert ex.provider is not None
        ctx = self.ctx
        req = HttpRequest(
            method=ex.head.method,
            target=ex.head.target,
            host=ex.host,
            port=ex.port,
            headers=ex.head.headers,
            body=bytes(ex.body),
            scheme=ex.provider.scheme,
        )
        ex.http = req
        ex.api = find_decoder(ex.provider, req)
        if ex.api is None:  # a read (GET /v1/models ...): not an AI call
            ctx.counters.inc("decode.ignored_requests")
            ex.provider = None
            return
        try:
            decoded = ex.api.decode_request(req)
        except SHAPE_ERRORS as e:  # JSON of a shape the API never sends: flagged, not fatal
            decoded = DecodedRequest(
                data={}, partial_reason=f"unexpected request shape: {type(e).__name__}"
            )
        ex.decoded = decoded
        data: dict[str, Any] = {"request_id": ex.request_id}
        who = str((self.info.process or {}).get("pid") or self.info.remote_host or "")
        ex.conversation = conversation_id(
            ctx.hasher, who=who, system=decoded.system_prompt, first_user=decoded.first_user_message
        )
        if ex.conversation:
            data["conversation_id"] = ex.conversation
        data["provider"] = self._provider_info(ex, req)
        model = self._model_info(as_str(decoded.model) or self._model_from_path(req))
        if model:
            data["model"] = model
        query = req.query  # a property that parses the query string each time
        data["auth"] = extract_auth(ex.head.headers, query, ctx.hasher)
        data.update(decoded.data)
        if decoded.system_prompt:
            data["system_prompt_hash"] = ctx.hasher(decoded.system_prompt)
        event = self._event(EventType.AI_REQUEST, ex.started_ns, data, ex.provider)
        event.capture_point = "ssl_write" if self.info.capture_method == "tls_boundary" else None
        event.attrs["api"] = ex.api.name
        event.attrs.update(decoded.attrs)
        if "api-version" in query:  # Azure OpenAI and Azure AI: the API's dated version
            event.attrs["api_version"] = query["api-version"][0]
        event.attrs["http"] = {
            "method": ex.head.method,
            "path": req.path,
            "request_headers": _allowed(ex.head.headers, REQUEST_HEADERS),
            "request_bytes": len(ex.body),
        }
        web = _web_context(ex.head.headers)
        if web:
            event.web_context = web
        for reason in filter(None, (decoded.partial_reason, partial, *ex.problems)):
            event.mark_partial(reason, missing="request_body" if ex.body_truncated else None)
        if ex.body_truncated:
            event.mark_partial("request_body_truncated", missing="request_body")
        if decode_error:
            event.attrs["decode_error"] = decode_error
        ex.request_event = event
        out.append(event)
        ctx.counters.inc("events.ai_request")
        self._tool_results(ex, decoded, event, out)

    def _tool_results(
        self, ex: _Exchange, decoded: DecodedRequest, request: Event, out: list[Event]
    ) -> None:
        for ref in decoded.tool_results:
            call = self.ctx.tools.take(_call_key(ex, ref.call_id))
            if call is None:
                continue  # an old result re-sent with the history, or a call we never saw
            content = ref.content or ""
            data: dict[str, Any] = {
                "call_id": ref.call_id,
                "success": not ref.is_error,
                "result": content,
                "result_size_bytes": len(content.encode("utf-8", "replace")),
                "duration_ms": max(0, (ex.started_ns - call.ts_ns) // 1_000_000),
            }
            name = ref.name or call.name
            if name:
                data["tool"] = {"name": name, "type": tools.tool_type(name)}
            event = self._event(EventType.AGENT_TOOL_RESULT, ex.started_ns, data, ex.provider)
            event.relate(call.event_id, "parent")
            event.relate(request.event_id, "related")
            event.attrs["request_id"] = ex.request_id
            out.append(event)
            self.ctx.counters.inc("events.agent_tool_result")

    # --- responses ------------------------------------------------------------------------

    def _response_head(self, head: ResponseHead, ts_ns: int, out: list[Event]) -> None:
        if not self._unanswered:
            # The capture began after the request was sent: nothing to pair it with.
            self.ctx.counters.inc("decode.unpaired_responses")
            self._response = None
            return
        ex = self._unanswered.popleft()
        self._response = ex
        ex.response = head
        ex.response_last_ns = ts_ns
        if not ex.tracked:
            return
        if not ex.request_done and ex.request_event is None:
            # Servers may answer early (401, 413) before reading the body.
            self._emit_request(ex, ts_ns, out, partial="response began before the request ended")
        if ex.api is None or ex.decoded is None:
            return
        ex.builder = ResponseBuilder(
            record_deltas=self.ctx.record_chunks, text_budget=self.ctx.limits.max_text_chars
        )
        assert ex.http is not None
        try:
            ex.assembler = ex.api.assembler(ex.http, ex.decoded, head, ex.builder)
        except SHAPE_ERRORS as e:  # the request's JSON had a shape the API never sends
            ex.problems.append(f"unexpected request shape: {type(e).__name__}")
            ex.assembler = ResponseAssembler(head, ex.builder)  # frames the body, reads nothing
        try:
            ex.response_decoder = content_decoder(
                head.headers.get("content-encoding"), self.ctx.limits.max_body_bytes
            )
        except DecodeError as e:
            ex.problems.append(f"response body: {e}")

    def _response_body(self, data: bytes, ts_ns: int, out: list[Event]) -> None:
        ex = self._response
        if ex is None or ex.assembler is None or ex.response_decoder is None:
            return
        ex.response_last_ns = ts_ns
        try:
            data = ex.response_decoder.decode(data)
        except DecodeError as e:
            ex.problems.append(f"response body: {e}")
            ex.response_decoder = None
            if isinstance(e, BodyTooLarge):
                self.ctx.counters.inc("decode.body_over_limit")
            return
        if data:
            ex.assembler.feed(data, ts_ns)
            if ex.builder is not None and ex.builder.deltas:
                self._chunks(ex, ts_ns, out)

    def _chunks(self, ex: _Exchange, ts_ns: int, out: list[Event]) -> None:
        assert ex.builder is not None
        for delta in ex.builder.deltas:
            data: dict[str, Any] = {"request_id": ex.request_id, "chunk_index": ex.chunk_index}
            if "content" in delta:
                data["delta"] = {"content": delta["content"]}
            else:
                data["delta"] = {"tool_calls": [{"arguments": delta["arguments"]}]}
            ex.chunk_index += 1
            event = self._event(EventType.AI_STREAMING_CHUNK, ts_ns, data, ex.provider)
            if ex.request_event is not None:
                event.relate(ex.request_event.event_id, "parent")
            out.append(event)
        ex.builder.deltas.clear()

    def _response_end(self, ts_ns: int, out: list[Event]) -> None:
        ex = self._response
        self._response = None
        if ex is None or not ex.tracked or ex.api is None:
            return
        if ex.response_decoder is not None and ex.assembler is not None:
            try:
                rest = ex.response_decoder.flush()
                if rest:
                    ex.assembler.feed(rest, ts_ns)
            except DecodeError as e:
                ex.problems.append(f"response body: {e}")
        self._emit_response(ex, ts_ns, out)

    def _upgraded(self, protocol: str, ts_ns: int, out: list[Event]) -> None:
        ex = self._response
        self.ctx.counters.inc("decode.upgraded_connections")
        if ex is not None and ex.tracked and ex.api is not None:
            self._emit_response(ex, ts_ns, out, partial=f"connection upgraded to {protocol}")
        self._response = None
        self._unanswered.clear()

    def _emit_response(
        self,
        ex: _Exchange,
        ts_ns: int,
        out: list[Event],
        *,
        partial: str | None = None,
        decode_error: str | None = None,
    ) -> None:
        assert ex.provider is not None and ex.http is not None
        builder = ex.builder
        assembler = ex.assembler
        if builder is None:
            builder = ResponseBuilder()
        if assembler is not None:
            assembler.finish(ts_ns)
        head = ex.response
        data: AiResponseData = {"request_id": ex.request_id}
        if ex.conversation:
            data["conversation_id"] = ex.conversation
        if builder.provider_request_id:  # a string: ResponseBuilder sees to the types
            data["provider_request_id"] = builder.provider_request_id
        data["provider"] = self._provider_info(ex, ex.http)
        model = self._model_info(
            builder.model
            or (as_str(ex.decoded.model) if ex.decoded else None)
            or self._model_from_path(ex.http)
        )
        if model:
            data["model"] = model
        success = False
        if head is not None:
            data["status_code"] = head.status
            success = 200 <= head.status < 300 and builder.error is None
        else:
            builder.error = builder.error or {
                "type": "no_response",
                "message": partial or "no response was seen",
            }
        data["success"] = success
        if builder.error:
            data["error"] = builder.error
        choices = builder.choices_data()
        if choices:
            data["choices"] = choices
        calls = builder.tool_calls()
        if calls:
            data["tool_calls"] = calls
            for call in calls:
                args = call.get("arguments")
                if isinstance(args, str) and args:
                    call["arguments_hash"] = self.ctx.hasher(args)
        data["tool_calls_count"] = len(calls)
        if builder.usage:
            data["usage"] = builder.usage
        if head is not None:  # absent is not zero: no response, no latency
            # The last response byte, not `ts_ns`: a close-delimited body ends when the
            # connection closes, which may be long after its last byte arrived.
            last = ex.response_last_ns or ts_ns
            data["latency_ms"] = max(0, (last - ex.started_ns) // 1_000_000)
        streaming = bool(ex.decoded and ex.decoded.streaming) or (
            assembler is not None and assembler.format.value in ("sse", "ndjson", "eventstream")
        )
        if streaming and builder.first_content_ns is not None:
            sent = ex.ended_ns or ex.started_ns
            data["time_to_first_token_ms"] = max(0, (builder.first_content_ns - sent) // 1_000_000)
        raw_reason = builder.raw_finish_reason()
        finish = normalize_finish_reason(raw_reason)
        if finish:
            data["finish_reason"] = finish
        event = self._event(EventType.AI_RESPONSE, ts_ns, dict(data), ex.provider)
        event.capture_point = "ssl_read" if self.info.capture_method == "tls_boundary" else None
        if ex.request_event is not None:
            event.relate(ex.request_event.event_id, "parent")
        attrs = event.attrs
        attrs["api"] = ex.api.name if ex.api else "unknown"
        if raw_reason and raw_reason != finish:
            attrs["finish_reason_raw"] = raw_reason
        attrs.update(builder.attrs)
        http: dict[str, Any] = {"method": ex.head.method, "path": ex.http.path}
        if head is not None:
            http["status_code"] = head.status
            http["response_headers"] = _allowed(head.headers, RESPONSE_HEADERS)
            http_request_id = next(
                (v for h in _REQUEST_ID_HEADERS if (v := head.headers.get(h))), None
            )
            if http_request_id:
                attrs["provider_http_request_id"] = http_request_id
        if assembler is not None:
            http["response_bytes"] = assembler.body_bytes
            http["stream_format"] = assembler.format.value
            if assembler.body_truncated:
                event.mark_partial("response_body_over_limit", missing="response_body")
        attrs["http"] = http
        for reason in filter(None, (partial, *ex.problems, *builder.problems)):
            event.mark_partial(reason)
        if ex.decoded is not None and ex.decoded.partial_reason:
            event.mark_partial(ex.decoded.partial_reason)
        if decode_error:
            attrs["decode_error"] = decode_error
        if builder.problems:
            self.ctx.counters.inc("decode.message_problems", len(builder.problems))
        out.append(event)
        self.ctx.counters.inc("events.ai_response")
        ex.api = None  # emitted: nothing more for this exchange
        for call in calls:
            self._tool_call_event(ex, call, event, ts_ns, out)

    def _tool_call_event(
        self, ex: _Exchange, call: ToolCall, response: Event, ts_ns: int, out: list[Event]
    ) -> None:
        name = call.get("name")
        data: dict[str, Any] = {
            "tool": {"name": name or "unknown", "type": tools.tool_type(name)},
            "triggered_by": "llm_decision",
        }
        call_id = call.get("id")
        if call_id:
            data["call_id"] = call_id
        args = call.get("arguments")
        if isinstance(args, str) and args:
            try:
                parsed = loads(args)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                data["arguments"] = parsed
            data["arguments_hash"] = call.get("arguments_hash") or self.ctx.hasher(args)
        elif isinstance(args, dict):
            data["arguments"] = args
        event = self._event(EventType.AGENT_TOOL_CALL, ts_ns, data, ex.provider)
        event.relate(response.event_id, "caused_by")
        event.attrs["request_id"] = ex.request_id
        if ex.conversation:
            event.attrs["conversation_id"] = ex.conversation
        out.append(event)
        self.ctx.counters.inc("events.agent_tool_call")
        if call_id:
            self.ctx.tools.remember(
                _call_key(ex, call_id), PendingCall(event.event_id, ts_ns, name)
            )

    # --- envelope ------------------------------------------------------------------------

    def _event(
        self, etype: EventType, ts_ns: int, data: dict[str, Any], provider: ProviderSpec | None
    ) -> Event:
        info = self.info
        mitm = info.capture_method == "mitm_proxy"
        event = Event(
            event_type=etype,
            ts_ns=ts_ns,
            data=data,
            process=dict(info.process) if info.process else None,
            actor=dict(info.actor) if info.actor else None,
            capture_method=info.capture_method,
            confidence={
                "level": "high",
                "completeness": "full",
                "reasons": ["known_endpoint", "payload_parsed"],
                "content_source": "mitm_decryption" if mitm else "tls_boundary",
                "ai_detection_method": "known_endpoint",
                "process_attribution": info.attribution if info.process else "unknown",
            },
        )
        if provider is not None and provider.oisp_name != provider.id:
            event.attrs["provider_id"] = provider.id
        return event

    def _provider_info(self, ex: _Exchange, req: HttpRequest) -> ProviderInfo:
        assert ex.provider is not None
        default_port = 443 if ex.provider.scheme == "https" else 80
        authority = ex.host if ex.port in (None, default_port) else f"{ex.host}:{ex.port}"
        info: ProviderInfo = {
            "name": ex.provider.oisp_name,
            "endpoint": f"{ex.provider.scheme}://{authority}{req.path}",
        }
        region = _region(ex.host)
        if region:
            info["region"] = region
        org = ex.head.headers.get("openai-organization")
        if org:
            info["organization_id"] = org
        project = ex.head.headers.get("openai-project")
        if project:
            info["project_id"] = project
        return info

    @staticmethod
    def _model_info(model_id: str | None) -> ModelInfo | None:
        if not model_id:
            return None
        info: ModelInfo = {"id": model_id}
        family = model_family(model_id)
        if family:
            info["family"] = family
        return info

    @staticmethod
    def _model_from_path(req: HttpRequest) -> str | None:
        """Models named in the URL: Azure deployments, Gemini `models/x:verb`, Bedrock `model/x`."""
        parts = req.path.split("/")
        for marker in ("deployments", "models", "model"):
            if marker in parts:
                i = parts.index(marker)
                if i + 1 < len(parts) and parts[i + 1]:
                    name = unquote(parts[i + 1])
                    # Gemini appends ":verb"; Bedrock ids contain ":" themselves (…-v1:0).
                    return name if marker == "model" else name.split(":", 1)[0]
        return None


def _call_key(ex: _Exchange, call_id: str) -> str:
    """Derived call ids (providers/toolids.py) repeat across conversations: match within one."""
    return f"{ex.conversation}|{call_id}" if is_synthetic(call_id) else call_id


def _allowed(headers: Headers, names: frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in headers if k in names or k.startswith("x-ratelimit-")}


def _web_context(headers: Headers) -> dict[str, str] | None:
    origin, referer = headers.get("origin"), headers.get("referer")
    if not origin and not referer:
        return None
    web: dict[str, str] = {}
    if origin and origin.startswith(("http://", "https://")):
        web["origin"] = origin
    if referer and referer.startswith(("http://", "https://")):
        web["referer"] = referer.split("?", 1)[0]  # query strings carry tokens
    ua = headers.get("user-agent")
    if ua:
        web["user_agent"] = ua
    return web or None


def _region(host: str) -> str | None:
    parts = host.split(".")
    if host.startswith("bedrock-runtime") and len(parts) >= 4:
        return parts[1]
    if host.endswith("-aiplatform.googleapis.com"):
        return host.split("-aiplatform", 1)[0]
    return None


class Decoder:
    """Every connection's decoder, plus the state that spans them."""

    def __init__(
        self,
        *,
        registry: ProviderRegistry | None = None,
        hasher: Hasher,
        counters: Counters | None = None,
        limits: Limits | None = None,
        record_chunks: bool = False,
    ) -> None:
        self.registry = registry or ProviderRegistry()
        self.hasher = hasher
        self.counters = counters or Counters()
        self.limits = limits or Limits()
        self.record_chunks = record_chunks
        self.tools = ToolCallTracker()
        self._conns: OrderedDict[ConnKey, ConnectionDecoder] = OrderedDict()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def feed(self, raw: RawCapture) -> list[Event]:
        key = raw.connection_key
        kind = raw.kind
        if kind is _CONN_CLOSE:
            conn = self._conns.pop(key, None)
            return conn.close(raw.timestamp_ns) if conn is not None else []
        conn = self._conns.get(key)
        out: list[Event] = []
        if kind is _CONN_OPEN:
            # A new connection under a key still in use (pid and fd reused, the close
            # lost): the old connection ended, and the new one starts from nothing.
            if conn is not None:
                out = self._conns.pop(key).close(raw.timestamp_ns)
            return out + self._network_connect(raw, self._open(key, raw, out))
        if conn is None:
            conn = self._open(key, raw, out)
        else:
            self._conns.move_to_end(key)
            conn.info.update(raw)
        data = raw.data
        self.counters.inc("capture.bytes", len(data))
        if not data:
            return out
        events = conn.feed(_CLIENT if kind is _SSL_WRITE else _SERVER, data, raw.timestamp_ns)
        return out + events if out else events

    def _open(self, key: ConnKey, raw: RawCapture, out: list[Event]) -> ConnectionDecoder:
        """A decoder for a new connection; past the limit, the least recently active
        connection is dropped, and what it had in flight goes to `out` flagged partial."""
        info = ConnInfo()
        info.update(raw)
        conn = ConnectionDecoder(key, info, self)
        self._conns[key] = conn
        self.counters.inc("decode.connections")
        while len(self._conns) > self.limits.max_connections:
            _, old = self._conns.popitem(last=False)
            self.counters.inc("decode.connections_evicted")
            if not old.broken:
                old._flush_in_flight(
                    "connection evicted: too many open connections", old.last_ns, out
                )
            old.broken = "evicted"
        return conn

    def _network_connect(self, raw: RawCapture, conn: ConnectionDecoder) -> list[Event]:
        net = raw.metadata.get("net")
        data: dict[str, Any]
        if isinstance(net, dict) and isinstance(net.get("dest"), dict):
            data = dict(net)
        else:
            dest: dict[str, Any] = {}
            if raw.remote_host:
                dest["domain"] = raw.remote_host
            if raw.remote_port is not None:
                dest["port"] = raw.remote_port
            data = {"dest": dest, "protocol": "tcp"}
        event = conn._event(EventType.NETWORK_CONNECT, raw.timestamp_ns, data, None)
        event.capture_point = "connect"
        event.confidence["completeness"] = "metadata_only"
        event.confidence["content_source"] = "none"
        event.confidence["reasons"] = ["connection_observed"]
        provider = self.registry.detect(raw.remote_host, raw.remote_port)
        if provider is not None:
            event.attrs["provider_id"] = provider.id
        intercepted = raw.metadata.get("intercepted")
        if isinstance(intercepted, bool):
            event.attrs["intercepted"] = intercepted
        self.counters.inc("events.network_connect")
        return [event]

    def mark_gap(self, key: ConnKey, ts_ns: int) -> list[Event]:
        """Bytes of this connection were lost upstream of us: what is in flight is incomplete.

        HTTP cannot be re-synchronised after a gap, so the connection stays ignored
        until it closes; its in-flight exchange is emitted flagged partial.
        """
        conn = self._conns.get(key)
        if conn is None or conn.broken:
            return []
        out: list[Event] = []
        conn._break("capture lost bytes of this connection (queue overflow)", ts_ns, out)
        return out

    def drop(self, key: ConnKey) -> None:
        """Stop decoding a connection (after an internal error): its later bytes are ignored.

        Its ConnClose still ends it as any broken connection: what it had in flight is
        emitted, flagged partial.
        """
        conn = self._conns.get(key)
        if conn is not None:
            conn.broken = "dropped after an internal error"

    def close_all(self, ts_ns: int | None = None) -> list[Event]:
        """End of input: every open connection is closed and its in-flight exchange emitted."""
        out: list[Event] = []
        while self._conns:
            _, conn = self._conns.popitem(last=False)
            out += conn.close(ts_ns if ts_ns is not None else conn.last_ns)
        return out

    def expire_idle(self, now_ns: int, idle_ns: int) -> list[Event]:
        """Close connections that have been silent for `idle_ns` (sources that never say close)."""
        out: list[Event] = []
        stale = [k for k, c in self._conns.items() if now_ns - c.last_ns > idle_ns]
        for key in stale:
            conn = self._conns.pop(key)
            out += conn.close(conn.last_ns)
        return out
