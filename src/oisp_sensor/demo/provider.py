"""A scripted fake of the AI providers' HTTP APIs, speaking their documented wire formats.

    async with FakeProvider(ssl_context=server_ctx) as fake:     # or no context: plain HTTP
        fake.queue(Script(text="Paris.", interval_s=0.02))
        ... point a client at https://127.0.0.1:{fake.port} (or route a real host to it) ...
        fake.sent[-1].body    # exactly the body bytes it sent
        fake.sent[-1].chunks  # each SSE event as written, with the time it was written

Speaks OpenAI Chat Completions (streaming, non-streaming, tool calls, usage with
cached/reasoning details, `stream_options.include_usage`), OpenAI Responses and
Embeddings, Anthropic Messages (streaming event sequence with thinking and tool_use),
and Gemini generateContent / streamGenerateContent?alt=sse. Errors come in each
provider's own error body: ask for model `fake-error-429` (any status) or send the
header `x-fake-error: 500`.

Deterministic: the same requests in the same order get the same bytes (ids count
up from 1, `created` is fixed). Streams are written one event per HTTP chunk, each
flushed before the next, `interval_s` apart: what a client sees arrive is what the
provider sent, when it sent it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z; fixed so responses are byte-for-byte repeatable
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """A tool call the fake model makes."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None  # default: call_fake_<n> / toolu_fake_<n>


@dataclass(frozen=True, slots=True)
class Script:
    """What the fake answers to one request."""

    text: str = "Hello! This is the OISP demo provider answering."
    tool_calls: tuple[FakeToolCall, ...] = ()
    thinking: str | None = None  # Anthropic thinking block; OpenAI reasoning token count only
    pieces: int | None = None  # streamed text deltas (default: one per word)
    interval_s: float = 0.0  # pause between streamed events
    prompt_tokens: int = 21
    completion_tokens: int | None = None  # default: one per text piece + 5 per tool call
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    error_status: int | None = None  # answer with this provider error instead
    model: str | None = None  # default: the model the request named
    status: int = 200


@dataclass(frozen=True, slots=True)
class SentChunk:
    ts_ns: int  # time.time_ns() right after the bytes were flushed to the socket
    data: bytes


@dataclass(slots=True)
class Exchange:
    """One request as received and the response as sent."""

    method: str
    path: str
    headers: dict[str, str]
    request_body: bytes
    received_ns: int
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[SentChunk] = field(default_factory=list)
    streaming: bool = False
    finished_ns: int = 0
    api: str = ""

    @property
    def body(self) -> bytes:
        """The response body exactly as sent (de-chunked)."""
        return b"".join(c.data for c in self.chunks)

    @property
    def request_json(self) -> Any:
        return orjson.loads(self.request_body) if self.request_body else None

    @property
    def response_json(self) -> Any:
        return orjson.loads(self.body)


class FakeProvider:
    """An HTTP/1.1 server (TLS with `ssl_context`, else plain) faking the provider APIs."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Script | None = None,
        keep_log: bool = True,
    ) -> None:
        self.ssl_context = ssl_context
        self.host = host
        self.requested_port = port
        self.default = default or Script()
        self.keep_log = keep_log
        self.sent: list[Exchange] = []
        self._scripts: list[Script] = []
        self._server: asyncio.Server | None = None
        self._counter = 0
        self._writers: set[asyncio.StreamWriter] = set()

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> FakeProvider:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.requested_port, ssl=self.ssl_context, backlog=1024
        )
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "fake provider not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def queue(self, *scripts: Script) -> None:
        """The next requests get these scripts, in order; then the default again."""
        self._scripts.extend(scripts)

    # --- HTTP/1.1 ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                ex = Exchange(
                    method=method,
                    path=target,
                    headers=headers,
                    request_body=body,
                    received_ns=time.time_ns(),
                )
                if self.keep_log:
                    self.sent.append(ex)
                await self._respond(ex, writer)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, ex: Exchange, writer: asyncio.StreamWriter) -> None:
        self._counter += 1
        n = self._counter
        script = self._scripts.pop(0) if self._scripts else self.default
        request = ex.request_json if _is_json(ex.request_body) else {}
        if not isinstance(request, dict):
            request = {}
        route = _route(ex.method, ex.path)
        ex.api = route[0] if route else ""
        model = script.model or str(request.get("model") or (route[1] if route else "") or "")
        error = script.error_status or _magic_error(model, ex.headers)
        if route is None:
            await self._send_json(ex, writer, 404, {"error": {"message": "no such endpoint"}})
            return
        api = route[0]
        if error:
            await self._send_json(ex, writer, error, _error_body(api, error), error=True)
            return
        plan = _Plan(script, model, n)
        if api == "openai.models":
            body = {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]}
            await self._send_json(ex, writer, 200, body)
        elif api == "openai.chat":
            if request.get("stream"):
                usage = bool((request.get("stream_options") or {}).get("include_usage"))
                await self._send_sse(ex, writer, script, _chat_stream(plan, usage))
            else:
                await self._send_json(ex, writer, script.status, _chat_json(plan))
        elif api == "openai.responses":
            if request.get("stream"):
                await self._send_sse(ex, writer, script, _responses_stream(plan))
            else:
                await self._send_json(ex, writer, script.status, _responses_json(plan))
        elif api == "openai.embeddings":
            await self._send_json(ex, writer, script.status, _embeddings_json(plan, request))
        elif api == "anthropic.messages":
            if request.get("stream"):
                await self._send_sse(ex, writer, script, _anthropic_stream(plan))
            else:
                await self._send_json(ex, writer, script.status, _anthropic_json(plan))
        elif api == "gemini.generate":
            await self._send_json(ex, writer, script.status, _gemini_json(plan))
        elif api == "gemini.stream":
            await self._send_sse(ex, writer, script, _gemini_stream(plan), crlf=True)

    async def _send_json(
        self,
        ex: Exchange,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        *,
        error: bool = False,
    ) -> None:
        body = orjson.dumps(payload)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("x-request-id", f"req_fake_{self._counter}"),
        ]
        if error and status == 429:
            headers.append(("retry-after", "0"))
        ex.status, ex.response_headers = status, headers
        writer.write(_head(status, headers) + body)
        await writer.drain()
        ex.chunks.append(SentChunk(time.time_ns(), body))
        ex.finished_ns = time.time_ns()

    async def _send_sse(
        self,
        ex: Exchange,
        writer: asyncio.StreamWriter,
        script: Script,
        events: Iterator[tuple[str | None, Any]],
        *,
        crlf: bool = False,
    ) -> None:
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
            ("x-request-id", f"req_fake_{self._counter}"),
        ]
        ex.status, ex.response_headers, ex.streaming = script.status, headers, True
        writer.write(_head(script.status, headers))
        end = b"\r\n\r\n" if crlf else b"\n\n"
        first = True
        for name, payload in events:
            if not first and script.interval_s:
                await asyncio.sleep(script.interval_s)
            first = False
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            frame = (b"event: %s\n" % name.encode() if name else b"") + b"data: " + data + end
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            await writer.drain()
            ex.chunks.append(SentChunk(time.time_ns(), frame))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        ex.finished_ns = time.time_ns()


# --- request plumbing ----------------------------------------------------------------------


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise ConnectionError("request body too large")
    return await reader.readexactly(length) if length else b""


def _is_json(body: bytes) -> bool:
    return body[:1] in (b"{", b"[")


def _route(method: str, target: str) -> tuple[str, str] | None:
    """(api, model named in the path) for a request, or None for an unknown endpoint."""
    parts = urlsplit(target)
    path = parts.path
    if method == "GET" and path.rstrip("/").endswith("/models"):
        return "openai.models", ""
    if method != "POST":
        return None
    if path.endswith("/chat/completions"):
        return "openai.chat", ""
    if path.endswith("/responses"):
        return "openai.responses", ""
    if path.endswith("/embeddings"):
        return "openai.embeddings", ""
    if path.endswith("/messages"):
        return "anthropic.messages", ""
    if "/models/" in path and ":" in path.rsplit("/", 1)[-1]:
        model, _, verb = unquote(path.rsplit("/models/", 1)[1]).partition(":")
        if verb == "generateContent":
            return "gemini.generate", model
        if verb == "streamGenerateContent":
            if parse_qs(parts.query).get("alt") != ["sse"]:
                return None  # the JSON-array stream form is not faked
            return "gemini.stream", model
    return None


def _magic_error(model: str, headers: dict[str, str]) -> int | None:
    wanted = headers.get("x-fake-error") or (
        model.rsplit("-", 1)[1] if model.startswith("fake-error-") else ""
    )
    return int(wanted) if wanted.isdigit() and 400 <= int(wanted) <= 599 else None


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_PHRASES = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}


def _error_body(api: str, status: int) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
        401: ("invalid_api_key", "authentication_error", "UNAUTHENTICATED"),
        429: ("rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
        529: ("server_error", "overloaded_error", "UNAVAILABLE"),
    }
    openai_code, anthropic_type, google_status = kinds.get(
        status, ("server_error", "api_error", "INTERNAL")
    )
    message = f"fake provider error {status} (asked for by the request)"
    if api.startswith("anthropic"):
        return {"type": "error", "error": {"type": anthropic_type, "message": message}}
    if api.startswith("gemini"):
        return {"error": {"code": status, "message": message, "status": google_status}}
    err_type = "requests" if status == 429 else "server_error" if status >= 500 else openai_code
    return {"error": {"message": message, "type": err_type, "param": None, "code": openai_code}}


# --- what to say ---------------------------------------------------------------------------


class _Plan:
    """A script resolved for one request: pieces, ids and token counts."""

    def __init__(self, script: Script, model: str, n: int) -> None:
        self.script = script
        self.model = model or "fake-model"
        self.n = n
        self.pieces = _split(script.text, script.pieces)
        completion = script.completion_tokens
        if completion is None:
            completion = len(self.pieces) + 5 * len(script.tool_calls) + script.reasoning_tokens
        self.prompt_tokens = script.prompt_tokens
        self.completion_tokens = completion
        self.calls = [
            (call.id or f"call_fake_{n}_{i}", call.name, orjson.dumps(call.arguments).decode())
            for i, call in enumerate(script.tool_calls)
        ]

    @property
    def stop_openai(self) -> str:
        return "tool_calls" if self.calls else "stop"


def _split(text: str, pieces: int | None) -> list[str]:
    if not text:
        return []
    if pieces is None:
        words = text.split(" ")
        return [w + " " for w in words[:-1]] + [words[-1]]
    size = max(1, math.ceil(len(text) / max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _halves(text: str) -> list[str]:
    mid = len(text) // 2
    return [p for p in (text[:mid], text[mid:]) if p]


def _openai_usage(plan: _Plan) -> dict[str, Any]:
    s = plan.script
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": s.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_json(plan: _Plan) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.script.text or None,
        "refusal": None,
        "annotations": [],
    }
    if plan.calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in plan.calls
        ]
    return {
        "id": f"chatcmpl-fake-{plan.n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": plan.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": plan.stop_openai}
        ],
        "usage": _openai_usage(plan),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _chat_stream(plan: _Plan, include_usage: bool) -> Iterator[tuple[str | None, Any]]:
    base = {
        "id": f"chatcmpl-fake-{plan.n}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        out = {**base, "choices": [choice]}
        if include_usage:
            out["usage"] = None
        return out

    yield None, chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in plan.pieces:
        yield None, chunk({"content": piece})
    for i, (cid, name, args) in enumerate(plan.calls):
        start = {"index": i, "id": cid, "type": "function"}
        yield None, chunk({"tool_calls": [{**start, "function": {"name": name, "arguments": ""}}]})
        for part in _halves(args):
            yield None, chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
    yield None, chunk({}, plan.stop_openai)
    if include_usage:
        yield None, {**base, "choices": [], "usage": _openai_usage(plan)}
    yield None, b"[DONE]"


def _responses_output(plan: _Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if plan.script.text:
        out.append(
            {
                "type": "message",
                "id": f"msg_fake_{plan.n}",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": plan.script.text,
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
            }
        )
    for i, (cid, name, args) in enumerate(plan.calls):
        out.append(
            {
                "type": "function_call",
                "id": f"fc_fake_{plan.n}_{i}",
                "call_id": cid,
                "name": name,
                "arguments": args,
                "status": "completed",
            }
        )
    return out


def _responses_json(plan: _Plan, status: str = "completed") -> dict[str, Any]:
    s = plan.script
    done = status == "completed"
    return {
        "id": f"resp_fake_{plan.n}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": plan.model,
        "output": _responses_output(plan) if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": plan.prompt_tokens,
            "input_tokens_details": {"cached_tokens": s.cached_tokens},
            "output_tokens": plan.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": s.reasoning_tokens},
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        }
        if done
        else None,
    }


def _responses_stream(plan: _Plan) -> Iterator[tuple[str | None, Any]]:
    seq = iter(range(1_000_000))

    def ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    yield ev("response.created", response=_responses_json(plan, "in_progress"))
    for index, item in enumerate(_responses_output(plan)):
        if item["type"] == "message":
            empty = {**item, "status": "in_progress", "content": []}
            yield ev("response.output_item.added", output_index=index, item=empty)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield ev("response.content_part.added", **ids, part=part)
            for piece in plan.pieces:
                yield ev("response.output_text.delta", **ids, delta=piece, logprobs=[])
            yield ev("response.output_text.done", **ids, text=plan.script.text, logprobs=[])
            yield ev("response.content_part.done", **ids, part=item["content"][0])
        else:
            empty = {**item, "status": "in_progress", "arguments": ""}
            yield ev("response.output_item.added", output_index=index, item=empty)
            ids = {"item_id": item["id"], "output_index": index}
            for piece in _halves(item["arguments"]):
                yield ev("response.function_call_arguments.delta", **ids, delta=piece)
            yield ev(
                "response.function_call_arguments.done",
                **ids,
                arguments=item["arguments"],
                name=item["name"],
            )
        yield ev("response.output_item.done", output_index=index, item=item)
    yield ev("response.completed", response=_responses_json(plan))


def _embeddings_json(plan: _Plan, request: dict[str, Any]) -> dict[str, Any]:
    inputs = request.get("input")
    count = len(inputs) if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else 1
    dims = int(request.get("dimensions") or 8)
    data = []
    for i in range(count):
        vector = [round(math.sin(plan.n + i + d), 6) for d in range(dims)]
        embedding: Any = vector
        if request.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": plan.model,
        "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens},
    }


def _anthropic_usage(plan: _Plan, output: int) -> dict[str, Any]:
    s = plan.script
    return {
        # Anthropic counts cached tokens apart from input_tokens.
        "input_tokens": plan.prompt_tokens - s.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": s.cached_tokens,
        "output_tokens": output,
    }


def _anthropic_blocks(plan: _Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.script.thinking:
        blocks.append(
            {"type": "thinking", "thinking": plan.script.thinking, "signature": "c2lnLWZha2U="}
        )
    if plan.script.text:
        blocks.append({"type": "text", "text": plan.script.text})
    for i, call in enumerate(plan.script.tool_calls):
        cid = call.id or f"toolu_fake_{plan.n}_{i}"
        blocks.append({"type": "tool_use", "id": cid, "name": call.name, "input": call.arguments})
    return blocks


def _anthropic_message(
    plan: _Plan, content: list[dict[str, Any]], stop: str | None, out: int
) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{plan.n}",
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(plan, out),
    }


def _anthropic_json(plan: _Plan) -> dict[str, Any]:
    stop = "tool_use" if plan.script.tool_calls else "end_turn"
    return _anthropic_message(plan, _anthropic_blocks(plan), stop, plan.completion_tokens)


def _anthropic_stream(plan: _Plan) -> Iterator[tuple[str | None, Any]]:
    yield (
        "message_start",
        {"type": "message_start", "message": _anthropic_message(plan, [], None, 1)},
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(_anthropic_blocks(plan)):
        kind = block["type"]
        start: dict[str, Any]
        if kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _halves(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in plan.pieces]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            args = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _halves(args)]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    stop = "tool_use" if plan.script.tool_calls else "end_turn"
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": plan.completion_tokens},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _gemini_usage(plan: _Plan) -> dict[str, Any]:
    s = plan.script
    usage: dict[str, Any] = {
        "promptTokenCount": plan.prompt_tokens,
        "candidatesTokenCount": plan.completion_tokens - s.reasoning_tokens,
        "totalTokenCount": plan.prompt_tokens + plan.completion_tokens,
    }
    if s.cached_tokens:
        usage["cachedContentTokenCount"] = s.cached_tokens
    if s.reasoning_tokens:
        usage["thoughtsTokenCount"] = s.reasoning_tokens
    return usage


def _gemini_parts(plan: _Plan, text: str, with_calls: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    if with_calls:
        parts += [
            {"functionCall": {"name": c.name, "args": c.arguments}} for c in plan.script.tool_calls
        ]
    return parts


def _gemini_json(plan: _Plan) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": _gemini_parts(plan, plan.script.text, True), "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _gemini_usage(plan),
        "modelVersion": plan.model,
        "responseId": f"fake-{plan.n}",
    }


def _gemini_stream(plan: _Plan) -> Iterator[tuple[str | None, Any]]:
    pieces = plan.pieces or [""]
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        candidate: dict[str, Any] = {
            "content": {"parts": _gemini_parts(plan, piece, last), "role": "model"},
            "index": 0,
        }
        event: dict[str, Any] = {"candidates": [candidate], "modelVersion": plan.model}
        if last:
            candidate["finishReason"] = "STOP"
            event["usageMetadata"] = _gemini_usage(plan)
        event["responseId"] = f"fake-{plan.n}"
        yield None, event


# --- standalone: python -m oisp_sensor.demo.provider ----------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until killed; prints `listening on HOST:PORT` once ready (for scripts)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m oisp_sensor.demo.provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", help="PEM certificate chain (with --key: serve TLS)")
    parser.add_argument("--key", help="PEM private key")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between SSE events")
    args = parser.parse_args(argv)
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    async def serve() -> None:
        fake = FakeProvider(
            ssl_context=context,
            host=args.host,
            port=args.port,
            default=Script(interval_s=args.interval),
            keep_log=False,
        )
        await fake.start()
        print(f"listening on {args.host}:{fake.port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
