"""The small interface every API-shape decoder implements, and what they share.

An `ApiDecoder` knows one wire format (OpenAI Chat, Anthropic Messages, ...):
`decode_request` turns a complete request into `ai.request` data, and `assembler`
returns a `ResponseAssembler` that is fed the (content-decoded) response body as
it arrives and fills a `ResponseBuilder`. Framing — JSON, SSE, NDJSON — is handled
here once; a decoder only says what each parsed message means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs

import orjson

from oisp_sensor.decode.eventstream import EventStreamDecoder, EventStreamMessage
from oisp_sensor.decode.http1 import Headers, ResponseHead
from oisp_sensor.decode.jsonarray import JsonArraySplitter
from oisp_sensor.decode.ndjson import NdjsonDecoder
from oisp_sensor.decode.sse import RawEvent, SseDecoder
from oisp_sensor.errors import DecodeError
from oisp_sensor.events.data import (
    AiRequestData,
    Choice,
    ErrorInfo,
    Message,
    ToolCall,
    Usage,
)

T = TypeVar("T")

# Errors a decoder's field access can raise on JSON of an unexpected shape. They
# are input problems, not bugs, and are turned into a partial event in one place.
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


# orjson needs ~12x its input in memory while it parses (its document pool): a 32 MB
# body would cost 400 MB. Above this size the standard library's parser (2-3x) is used.
ORJSON_MAX = 1 << 20


def loads(data: bytes | str) -> Any:
    """`orjson.loads`, same result and same error, with memory bounded for large inputs."""
    if len(data) <= ORJSON_MAX:
        return orjson.loads(data)
    try:
        return json.loads(data, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except (ValueError, RecursionError, OverflowError) as e:  # RecursionError: nesting > ~1000
        raise orjson.JSONDecodeError(f"invalid JSON: {type(e).__name__}", "", 0) from None


# What orjson does with numbers, so both parsers give the same values: integers beyond
# 64 bits become floats, and a number too large for a float is an error.
def _int(text: str) -> int | float:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _float(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number is infinity when parsed as double")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity, which orjson rejects too


# A non-streaming body larger than this is not parsed (the event is flagged partial).
MAX_JSON_BODY = 32 * 1024 * 1024


@dataclass(slots=True, kw_only=True)
class HttpRequest:
    """A request as the API decoders see it. A body cut short (over the size limit, or in
    a coding that failed) is flagged partial on the event by the connection decoder."""

    method: str
    target: str
    host: str
    port: int | None
    headers: Headers
    body: bytes = b""
    scheme: str = "https"
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)
    # (target, its path): asked for ~6 times per request; recomputed if `target` changes.
    _path: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def path(self) -> str:
        cached = self._path
        if cached is not None and cached[0] is self.target:
            return cached[1]
        path = self.target.split("?", 1)[0]
        if path.startswith(("http://", "https://")):  # absolute-form (proxy requests)
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        self._path = (self.target, path)
        return path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.target.split("?", 1)[1]) if "?" in self.target else {}

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON (cached)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = loads(self.body) if self.body else None
            except orjson.JSONDecodeError:
                self._json = None
        return self._json


@dataclass(frozen=True, slots=True)
class ToolResultRef:
    """A tool's result that a request hands back to the model."""

    call_id: str
    content: str | None = None
    is_error: bool = False
    name: str | None = None


@dataclass(slots=True, kw_only=True)
class DecodedRequest:
    data: AiRequestData
    model: str | None = None
    streaming: bool = False
    system_prompt: str | None = None
    first_user_message: str | None = None
    tool_results: list[ToolResultRef] = field(default_factory=list)
    partial_reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # into the ai.request's attrs


class StreamFormat(StrEnum):
    JSON = "json"
    SSE = "sse"
    NDJSON = "ndjson"
    JSON_ARRAY = "json_array"
    EVENTSTREAM = "eventstream"
    OTHER = "other"


def stream_format(headers: Headers) -> StreamFormat:
    ctype = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype == "text/event-stream":
        return StreamFormat.SSE
    if ctype in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        return StreamFormat.NDJSON
    if ctype == "application/vnd.amazon.eventstream":
        return StreamFormat.EVENTSTREAM
    if ctype.endswith("json") or not ctype:
        return StreamFormat.JSON
    return StreamFormat.OTHER


# --- what a response turns into ------------------------------------------------------


class WireText:
    """A field decoders fill straight from the wire that must hold a non-empty string.

    Setting it to anything else (a list, a number, null, "") is ignored and the field
    keeps what it had, so a value of the wrong JSON type never reaches event building
    (`tools.tool_type(name)` calls `.lower()` on a tool's name). The owner initialises
    the `_<name>` attribute behind it.
    """

    __slots__ = ("_slot",)

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> str | None:
        value: str | None = getattr(obj, self._slot)
        return value

    def __set__(self, obj: object, value: object) -> None:
        if isinstance(value, str) and value:
            setattr(obj, self._slot, value)


class ToolCallBuilder:
    """One tool call being assembled; arguments come in through `ResponseBuilder`."""

    __slots__ = ("_id", "_name", "_type", "parts", "arguments_obj")
    id = WireText()
    name = WireText()
    type = WireText()

    def __init__(self) -> None:
        self._id: str | None = None
        self._name: str | None = None
        self._type: str | None = "function"
        self.parts: list[str] = []  # arguments text, as streamed
        self.arguments_obj: dict[str, Any] | None = None  # when the wire gives an object

    @property
    def arguments(self) -> str:
        if self.arguments_obj is not None and not self.parts:
            return json.dumps(self.arguments_obj, ensure_ascii=False, separators=(",", ":"))
        return "".join(self.parts)


class ChoiceBuilder:
    """One choice (candidate) being assembled."""

    __slots__ = ("index", "text", "thinking", "tool_calls", "_finish_reason")
    finish_reason = WireText()

    def __init__(self, index: int) -> None:
        self.index = index
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: dict[int | str, ToolCallBuilder] = {}
        self._finish_reason: str | None = None


# Provider finish/stop reasons -> the spec's enum (stop, length, tool_calls,
# content_filter, error, other). The raw value is kept in attrs.finish_reason_raw.
_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "complete": "stop",
    "eos": "stop",
    "end": "stop",
    "completed": "stop",
    "finish_reason_stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_context_window_exceeded": "length",
    "incomplete": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "tool_call": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "error": "error",
    "failed": "error",
    "malformed_function_call": "error",
}


def normalize_finish_reason(raw: str | None) -> str | None:
    if not raw or not isinstance(raw, str):  # servers send numbers and objects here too
        return None
    return _FINISH.get(raw.lower(), "other")


# Per response. Models make a handful of parallel tool calls and return a few choices;
# thousands are a broken or hostile stream, and each tool call would become an event.
MAX_TOOL_CALLS = 256
MAX_CHOICES = 128


def _append(parts: list[str], text: str) -> None:
    """Append a streamed piece; join them now and then, so a stream of one-character
    deltas costs memory in proportion to its text, not one object per piece."""
    parts.append(text)
    if len(parts) > 4096:
        parts[:] = ["".join(parts)]


def _tool_key(key: object) -> int | str:
    """A tool call's key within its choice: decoders pass stream indexes and ids; any
    other value (a float, a list) keys by its text, so its pieces still meet."""
    number = as_int(key)
    return number if number is not None else repr(key)[:200]


def _usd(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    amount = float(value)
    return amount if math.isfinite(amount) and amount >= 0 else None


class ResponseBuilder:
    """Everything one response says, assembled from however many pieces it came in.

    Decoders copy values from JSON of whatever shape the server sent, so this is the
    one place that guarantees types: `model`, `provider_request_id`, `finish_reason`
    and tool-call names and ids hold non-empty strings (a value of another type is
    ignored), text is added only when it is a string, usage keeps integers only, and
    `error` keeps only string fields. No decoder can hand event building a list where
    a name belongs.
    """

    def __init__(self, record_deltas: bool = False, text_budget: int = 16 * 1024 * 1024) -> None:
        self.choices: dict[int, ChoiceBuilder] = {}
        self.usage: Usage | None = None
        self._model: str | None = None
        self._provider_request_id: str | None = None
        self._error: ErrorInfo | None = None
        self._finish_reason: str | None = None
        self.first_content_ns: int | None = None
        self.problems: list[str] = []
        self.attrs: dict[str, Any] = {}
        self.now_ns = 0  # capture time of the bytes being processed
        self.record_deltas = record_deltas
        self.deltas: list[dict[str, Any]] = []
        self.text_budget = text_budget  # characters of text/thinking/arguments still accepted

    # --- set by decoders: a value of the wrong type is ignored (see WireText) ----------

    model = WireText()
    provider_request_id = WireText()
    finish_reason = WireText()  # overrides the first choice's when set

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @error.setter
    def error(self, value: ErrorInfo | None) -> None:
        """Only the spec's string fields survive; a message is cut to 2000 characters."""
        err: ErrorInfo = {}
        if isinstance(value, dict):
            for key in ("type", "message", "code"):
                text = value.get(key)
                if isinstance(text, str) and text:
                    err[key] = text[:2000]
        self._error = err or None

    def choice(self, index: int = 0) -> ChoiceBuilder:
        try:
            c = self.choices.get(index)
        except TypeError:  # unhashable: not an index
            c, index = None, 0
        if c is None:
            if type(index) is not int:
                index = as_int(index) or 0
                c = self.choices.get(index)
                if c is not None:
                    return c
            c = ChoiceBuilder(index)
            if len(self.choices) < MAX_CHOICES:
                self.choices[index] = c
            else:  # a hostile stream inventing indexes must not grow memory without bound
                self._once("too many choices; the rest are not kept")
        return c

    def _content(self) -> None:
        if self.first_content_ns is None:
            self.first_content_ns = self.now_ns

    def _spend(self, text: str) -> bool:
        """Whether `text` still fits the budget; a stream without end must not eat memory."""
        self.text_budget -= len(text)
        if self.text_budget >= 0:
            return True
        self._over_budget()
        return False

    def _over_budget(self) -> None:
        if "response text over the limit; the rest is not kept" not in self.problems:
            self.problems.append("response text over the limit; the rest is not kept")

    def add_text(self, text: object, index: int = 0) -> None:
        """A piece of a choice's text. Called once per streamed token, so `_spend`,
        `_content`, `choice` and `_append` are inlined here."""
        if not text or not isinstance(text, str):  # JSON may hold anything where text belongs
            return
        self.text_budget -= len(text)
        if self.text_budget < 0:
            self._over_budget()
            return
        if self.first_content_ns is None:
            self.first_content_ns = self.now_ns
        choice = self.choices.get(index) if type(index) is int else None
        parts = (choice or self.choice(index)).text
        parts.append(text)
        if len(parts) > 4096:
            parts[:] = ["".join(parts)]
        if self.record_deltas:
            self.deltas.append({"index": index, "content": text})

    def add_texts(self, pieces: list[object], index: int = 0) -> None:
        """Several pieces of a choice's text at once (the text deltas of one read): one
        `add_text` for all of them, or one each when streaming chunks are recorded."""
        if self.record_deltas:
            for piece in pieces:
                self.add_text(piece, index)
            return
        try:
            text = "".join(pieces)  # type: ignore[arg-type]  # they are text, nearly always
        except TypeError:
            text = "".join(p for p in pieces if isinstance(p, str))
        self.add_text(text, index)

    def add_thinking(self, text: object, index: int = 0) -> None:
        if text and isinstance(text, str) and self._spend(text):
            self._content()
            _append(self.choice(index).thinking, text)

    def tool_call(self, key: object, index: int = 0) -> ToolCallBuilder:
        """The tool call `key` (stream index or id) of choice `index`, created on first use."""
        self._content()
        k = key if type(key) is int or type(key) is str else _tool_key(key)
        calls = self.choice(index).tool_calls
        tc = calls.get(k)
        if tc is None:
            tc = ToolCallBuilder()
            if sum(len(c.tool_calls) for c in self.choices.values()) < MAX_TOOL_CALLS:
                calls[k] = tc
            else:  # each would become an event: a flood, not a model's parallel calls
                self._once("too many tool calls; the rest are not kept")
        return tc

    def add_tool_arguments(self, key: object, text: object, index: int = 0) -> None:
        """A streamed piece of a call's arguments (JSON text)."""
        if text and isinstance(text, str) and self._spend(text):
            _append(self.tool_call(key, index).parts, text)
            if self.record_deltas:
                self.deltas.append({"index": index, "tool_call": key, "arguments": text})

    def set_tool_arguments(self, key: object, value: object, index: int = 0) -> None:
        """A call's whole arguments: JSON text, or an object (Gemini, Ollama and Bedrock
        send objects). Anything else is not arguments and leaves the call as it was."""
        if isinstance(value, str):
            if self._spend(value):
                call = self.tool_call(key, index)
                call.parts, call.arguments_obj = [value], None
        elif isinstance(value, dict):
            call = self.tool_call(key, index)
            call.parts, call.arguments_obj = [], value

    def set_usage(self, usage: Usage | None) -> None:
        """Token counts the traffic carried: integers only (absent is not zero)."""
        if not usage:
            return
        kept = {k: v for k, v in usage.items() if type(v) is int}
        if kept:
            self.usage = kept  # type: ignore[assignment]

    def report_cost(
        self, total: object, input_usd: object = None, output_usd: object = None
    ) -> None:
        """What the provider says the call cost, in USD (OpenRouter, Perplexity); the pricing
        enricher prefers it to any price table. Only finite, non-negative numbers count."""
        if (value := _usd(total)) is None:
            return
        self.attrs["reported_cost_usd"] = value
        for name, part in (
            ("reported_input_cost_usd", input_usd),
            ("reported_output_cost_usd", output_usd),
        ):
            if (amount := _usd(part)) is not None:
                self.attrs[name] = amount
            else:
                self.attrs.pop(name, None)

    def problem(self, what: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(what)

    def _once(self, what: str) -> None:
        if what not in self.problems:
            self.problem(what)

    # --- output --------------------------------------------------------------------

    def tool_calls(self) -> list[ToolCall]:
        """Every tool call of every choice, in choice order."""
        ordered = sorted(self.choices.values(), key=lambda c: c.index)
        return [call for c in ordered for call in self.tool_calls_of(c)]

    def choices_data(self) -> list[Choice]:
        out: list[Choice] = []
        for c in sorted(self.choices.values(), key=lambda c: c.index):
            msg: Message = {"role": "assistant", "content": "".join(c.text)}
            if c.thinking:
                msg["thinking"] = "".join(c.thinking)
            calls = self.tool_calls_of(c)
            if calls:
                msg["tool_calls"] = calls
            choice: Choice = {"index": c.index, "message": msg}
            fr = normalize_finish_reason(c.finish_reason)
            if fr:
                choice["finish_reason"] = fr
            out.append(choice)
        return out

    def tool_calls_of(self, c: ChoiceBuilder) -> list[ToolCall]:
        out: list[ToolCall] = []
        for tc in c.tool_calls.values():
            call: ToolCall = {"type": tc.type or "function"}  # strings: see WireText
            if tc.id:
                call["id"] = tc.id
            if tc.name:
                call["name"] = tc.name
            call["arguments"] = tc.arguments
            out.append(call)
        return out

    def raw_finish_reason(self) -> str | None:
        if self.finish_reason:
            return self.finish_reason
        first = self.choices.get(0) or next(iter(self.choices.values()), None)
        return first.finish_reason if first else None


# --- error bodies ---------------------------------------------------------------------


def error_from_body(obj: Any, headers: Headers | None = None) -> ErrorInfo | None:
    """The error every provider puts in its own shape, in the spec's {type, message, code}.

    OpenAI `{"error": {"message", "type", "code"}}`, Anthropic `{"type": "error",
    "error": {"type", "message"}}`, Gemini `{"error": {"code", "message", "status"}}`,
    Ollama `{"error": "text"}`, Bedrock/Cohere `{"message": "text"}`.
    """
    err: ErrorInfo = {}
    if isinstance(obj, list) and obj:  # Gemini's array stream wraps its error: [{"error": …}]
        obj = obj[0]
    if isinstance(obj, dict):
        inner = obj.get("error")
        if isinstance(inner, dict):
            src = inner
        elif isinstance(inner, str):
            src = {"message": inner}
        else:
            src = obj
        msg = src.get("message") or src.get("detail")
        if isinstance(msg, str):
            err["message"] = msg[:2000]
        etype = src.get("type") or src.get("status") or src.get("__type")
        if isinstance(etype, str):
            err["type"] = etype
        code = src.get("code")
        if code is not None and not isinstance(code, (dict, list)):
            err["code"] = str(code)
    if headers is not None and "type" not in err:
        amz = headers.get("x-amzn-errortype")
        if amz:
            err["type"] = amz.split(":", 1)[0]
    return err or None


# --- the interface -------------------------------------------------------------------


class ResponseAssembler:
    """Feeds a response body, framed however the server framed it, to the builder.

    Subclasses override the `on_*` hook for each framing their API uses. A hook
    may raise `DecodeError` or trip over an unexpected JSON shape; either costs
    that one message (recorded as a problem), never the rest of the stream.
    """

    def __init__(
        self, head: ResponseHead, builder: ResponseBuilder, framing: StreamFormat | None = None
    ) -> None:
        self.head = head
        self.status = head.status
        self.builder = builder
        # `framing` is for formats the content type does not announce (Gemini's JSON array).
        self.format = framing or stream_format(head.headers)
        self._sse = SseDecoder() if self.format is StreamFormat.SSE else None
        self._ndjson = NdjsonDecoder() if self.format is StreamFormat.NDJSON else None
        self._array = JsonArraySplitter() if self.format is StreamFormat.JSON_ARRAY else None
        self._events = EventStreamDecoder() if self.format is StreamFormat.EVENTSTREAM else None
        self._body = bytearray()
        self.body_truncated = False
        self.body_bytes = 0

    # framing ---------------------------------------------------------------------------

    def feed(self, data: bytes, ts_ns: int) -> None:
        self.builder.now_ns = ts_ns
        self.body_bytes += len(data)
        if self._sse is not None:
            self.on_sse_events(self._sse.feed_raw(data))
        elif self._ndjson is not None:
            for line in self._ndjson.feed(data):
                self._json_line(line)
        elif self._array is not None:
            self._array.feed(data)
            self._drain_array()
        elif self._events is not None:
            self._events.feed(data)
            self._drain_events()
        else:
            self.feed_other(data)

    def feed_other(self, data: bytes) -> None:
        """JSON (and anything not streamed): kept, up to a limit, for `finish`."""
        if len(self._body) + len(data) > MAX_JSON_BODY:
            self.body_truncated = True
            return
        self._body += data

    def finish(self, ts_ns: int) -> None:
        """The body is complete (or the connection ended); parse what is buffered."""
        self.builder.now_ns = ts_ns
        if self._sse is not None:
            self._sse.flush()
        elif self._ndjson is not None:
            for line in self._ndjson.flush():
                self._json_line(line)
        elif (framer := self._array or self._events) is not None:
            try:
                framer.close()
            except DecodeError as e:
                self.builder.problem(str(e))
        elif self._body and not self.body_truncated:
            self.finish_body(bytes(self._body))
        splitter = self._sse or self._ndjson
        dropped = splitter.oversized if splitter is not None else 0
        if dropped:
            self.builder.problem(f"{dropped} oversized stream line(s) dropped")
        if self.status >= 400 and self.builder.error is None:
            self.builder.error = {"type": f"http_{self.status}"}

    def finish_body(self, body: bytes) -> None:
        try:
            obj = loads(body)
        except orjson.JSONDecodeError:
            if self.status < 400:
                self.builder.problem("response body is not valid JSON")
            else:
                text = body[:500].decode("utf-8", "replace").strip()
                self.builder.error = {"type": f"http_{self.status}", "message": text}
            return
        if self.status >= 400:
            self.builder.error = error_from_body(obj, self.head.headers)
        else:
            self._guard(self.on_json, obj)

    def _json_line(self, line: bytes) -> None:
        self._parsed(line, self.on_ndjson, "invalid JSON line in stream")

    def _array_item(self, item: bytes) -> None:
        self._parsed(item, self.on_array_item, "invalid JSON element in array stream")

    def _parsed(self, data: bytes, hook: Callable[[Any], None], problem: str) -> None:
        try:
            obj = loads(data)
        except orjson.JSONDecodeError:
            self.builder.problem(problem)
            return
        self._guard(hook, obj)

    def _event_message(self, msg: EventStreamMessage) -> None:
        if msg.message_type == "event":
            self._guard(self.on_eventstream, msg)
        else:
            self.builder.error = eventstream_error(msg)

    def _drain_array(self) -> None:
        assert self._array is not None
        self._drain(self._array.next_item, self._array_item)

    def _drain_events(self) -> None:
        assert self._events is not None
        self._drain(self._events.next_message, self._event_message)

    def _drain(self, next_item: Callable[[], T | None], handle: Callable[[T], None]) -> None:
        """Every message a framer has complete; a broken one is a problem, not the end."""
        while True:
            try:
                item = next_item()
            except DecodeError as e:
                self.builder.problem(str(e))
                continue
            if item is None:
                return
            handle(item)

    def _guard(self, hook: Any, arg: Any) -> None:
        try:
            hook(arg)
        except (DecodeError, *SHAPE_ERRORS) as e:
            self._message_problem(e)

    def _message_problem(self, e: Exception) -> None:
        if isinstance(e, DecodeError):
            self.builder.problem(str(e))
        else:
            self.builder.problem(f"unexpected message shape: {type(e).__name__}: {e}"[:200])

    def sse_json(self, event: bytes, data: bytes) -> Any:
        """An SSE event's data as JSON; `DecodeError` when it is not."""
        try:  # `loads`, with its size test inlined: this runs once per streamed token
            return orjson.loads(data) if len(data) <= ORJSON_MAX else loads(data)
        except orjson.JSONDecodeError:
            return sse_json_slow(event, data)

    # hooks -------------------------------------------------------------------------------

    def on_json(self, obj: Any) -> None:
        """A complete non-streamed JSON body (status < 400)."""

    def on_sse_events(self, events: list[RawEvent]) -> None:
        """The server-sent events of one read, in order. This hands each to `on_sse`; an
        assembler that sees one per streamed token may loop itself, saving a call each."""
        on_sse = self.on_sse
        for event, data, _, _ in events:
            try:  # `_guard`, inlined: this runs once per streamed token
                on_sse(event, data)
            except (DecodeError, *SHAPE_ERRORS) as e:
                self._message_problem(e)

    def on_sse(self, event: bytes, data: bytes) -> None:
        """One server-sent event, undecoded (decode/sse.py `feed_raw`): its name, b""
        for the standard's default "message", and its data. Bytes, because most events
        need no more than a comparison of the name and orjson, which reads bytes."""

    def on_ndjson(self, obj: Any) -> None:
        """One line of an NDJSON stream."""

    def on_array_item(self, obj: Any) -> None:
        """One element of a streamed top-level JSON array."""

    def on_eventstream(self, msg: EventStreamMessage) -> None:
        """One AWS event stream message of type `event` (exceptions are handled here)."""


def sse_json_slow(event: bytes, data: bytes) -> Any:
    """The data of an event orjson refused. The standard decodes SSE as UTF-8 with
    replacement characters, which orjson on bytes does not: try that text before
    calling it invalid."""
    text = data.decode("utf-8", "replace")
    try:
        return loads(text)
    except orjson.JSONDecodeError:
        name = event_name(event)
        raise DecodeError(f"invalid JSON in SSE event {name!r}") from None


def event_name(event: bytes) -> str:
    """An SSE event's name as the standard reports it ("message" when none was given)."""
    return event.decode("utf-8", "replace") if event else "message"


def eventstream_error(msg: EventStreamMessage) -> ErrorInfo:
    """An `exception` message (modelled: `:exception-type`, JSON payload with `message`)
    or an `error` message (`:error-code`, `:error-message` headers) as the spec's error."""
    err: ErrorInfo = {"type": msg.header(":exception-type") or msg.header(":error-code") or "error"}
    message = msg.header(":error-message")
    if message is None:
        try:
            body = loads(msg.payload)
        except orjson.JSONDecodeError:
            body = None
        inner = error_from_body(body) or {}
        message = inner.get("message")
    if message:
        err["message"] = message[:2000]
    return err


class ApiDecoder:
    """One API shape. Stateless: per-request state lives in the assembler it returns."""

    name: ClassVar[str] = "unknown"
    request_type: ClassVar[str] = "chat"
    # What reads this API's responses; override `assembler` only when it needs more than
    # the response head (the request's turn count, its vendor, a framing to force).
    assembler_class: ClassVar[type[ResponseAssembler]] = ResponseAssembler

    def matches(self, req: HttpRequest) -> bool:
        raise NotImplementedError

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        raise NotImplementedError

    def assembler(
        self,
        req: HttpRequest,
        decoded: DecodedRequest,
        head: ResponseHead,
        builder: ResponseBuilder,
    ) -> ResponseAssembler:
        return self.assembler_class(head, builder)


# --- helpers shared by decoders --------------------------------------------------------


def as_str(value: Any) -> str | None:
    """`value` if the wire gave a string, else None: a field of the wrong JSON type is
    dropped here instead of failing later, when the event is built."""
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def compact_usage(**values: int | None) -> Usage | None:
    """A Usage with only the values the traffic carried: absent is not zero."""
    usage = {k: v for k, v in values.items() if v is not None}
    return usage or None  # type: ignore[return-value]


def copy_parameters(body: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Request parameters under the spec's names, e.g. {"max_completion_tokens": "max_tokens"}."""
    params: dict[str, Any] = {}
    for src, dst in mapping.items():
        value = body.get(src)
        if value is None or dst in params:
            continue
        if dst == "stop":
            if isinstance(value, str):
                value = [value]
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                continue
        elif dst == "max_tokens":
            value = as_int(value)
            if value is None:
                continue
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        params[dst] = value
    return params


def estimate_tokens(chars: int) -> int:
    """About four characters a token for English text: a labelled estimate, never usage."""
    return max(1, round(chars / 4)) if chars else 0
