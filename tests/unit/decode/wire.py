"""Provider traffic as it crosses the wire, for decoder tests and the capture fixtures.

Requests carry the headers the official SDKs send; responses are framed the way the
providers' servers frame them (chunked transfer coding, one chunk per SSE event).
Builders return the pieces a server writes, in order, so a test can give each piece
its own capture timestamp; `b"".join(pieces)` is the whole message.
"""

from __future__ import annotations

import gzip as gzip_module
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder, Limits
from oisp_sensor.decode.registry import ProviderRegistry
from oisp_sensor.events import CaptureKind, RawCapture
from tests.helpers import HASHER, T0

# Realistically shaped keys (made up): the test suite searches every event for them.
OPENAI_KEY = "sk-proj-" + "Q3vT9xW2bN5mK8pL1rZ4yC7dF0hJ6gA3sE9uI2oP5qR8tY1wX4zB7nM0vC3xK6lH" * 2
ANTHROPIC_KEY = "sk-ant-api03-" + "Fq8Zr2Lm5Nx9Tb3Wc7Yd1Ve6Ug0Sh4Pj8Ok2Il6Mn" * 2 + "AA"

OPENAI_MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def request(
    host: str,
    path: str,
    body: dict[str, Any] | bytes,
    headers: dict[str, str],
    *,
    chunked: bool = False,
    content_encoding: str | None = None,
) -> bytes:
    raw = body if isinstance(body, bytes) else _json(body)
    if content_encoding == "gzip":
        raw = gzip_module.compress(raw, mtime=0)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if content_encoding:
        lines.append(f"Content-Encoding: {content_encoding}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw)
    else:
        lines.append(f"Content-Length: {len(raw)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def openai_request(
    body: dict[str, Any], *, key: str = OPENAI_KEY, host: str = "api.openai.com", **kw: Any
) -> bytes:
    """What openai-python 1.x sends for `client.chat.completions.create(...)`."""
    headers = {
        "Accept-Encoding": "gzip, deflate",
        "Connection": "keep-alive",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": "OpenAI/Python 1.54.4",
        "X-Stainless-Lang": "python",
        "X-Stainless-Package-Version": "1.54.4",
        "X-Stainless-Runtime": "CPython",
        "X-Stainless-Retry-Count": "0",
        "Authorization": f"Bearer {key}",
    }
    return request(host, "/v1/chat/completions", body, headers, **kw)


def anthropic_request(body: dict[str, Any], *, key: str = ANTHROPIC_KEY, **kw: Any) -> bytes:
    """What anthropic-python sends for `client.messages.create(...)`."""
    headers = {
        "Accept-Encoding": "gzip, deflate",
        "Connection": "keep-alive",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": "Anthropic/Python 0.40.0",
        "X-Stainless-Lang": "python",
        "anthropic-version": "2023-06-01",
        "x-api-key": key,
    }
    return request("api.anthropic.com", "/v1/messages", body, headers, **kw)


def _head(status: int, reason: str, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "Date: Thu, 01 Jan 2026 00:00:00 GMT"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def sse_response(
    frames: Iterable[bytes], *, request_id: str, request_id_header: str = "x-request-id"
) -> list[bytes]:
    """Head, one chunk per SSE frame, last chunk: each a separate write by the server."""
    head = _head(
        200,
        "OK",
        [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            (request_id_header, request_id),
            ("Cache-Control", "no-cache"),
        ],
    )
    return [head, *(chunk(f) for f in frames), LAST_CHUNK]


def json_response(
    obj: Any,
    *,
    status: int = 200,
    reason: str = "OK",
    request_id: str = "req_json",
    request_id_header: str = "x-request-id",
    gzip: bool = False,
    chunked: bool = False,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    body = obj if isinstance(obj, bytes) else _json(obj)
    headers = [("Content-Type", "application/json"), (request_id_header, request_id)]
    headers += list(extra_headers)
    if gzip:
        body = gzip_module.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        mid = len(body) // 2
        payload = chunk(body[:mid]) + chunk(body[mid:]) + LAST_CHUNK
    else:
        headers.append(("Content-Length", str(len(body))))
        payload = body
    return _head(status, reason, headers) + payload


# --- OpenAI Chat Completions ---------------------------------------------------------------


def openai_chunk(
    delta: dict[str, Any] | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    cid: str = "chatcmpl-AbC123",
    choices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": OPENAI_MODEL,
        "system_fingerprint": "fp_eb9dce56a8",
    }
    if choices is not None:
        obj["choices"] = choices
    elif delta is not None or finish is not None:
        obj["choices"] = [
            {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
        ]
    else:
        obj["choices"] = []
    if usage is not None:
        obj["usage"] = usage
    return obj


def openai_frames(chunks: Iterable[dict[str, Any]], *, done: bool = True) -> list[bytes]:
    frames = [b"data: " + _json(c) + b"\n\n" for c in chunks]
    return frames + [b"data: [DONE]\n\n"] if done else frames


def openai_stream(
    chunks: Iterable[dict[str, Any]], *, request_id: str = "req_stream", done: bool = True
) -> list[bytes]:
    return sse_response(openai_frames(chunks, done=done), request_id=request_id)


# --- Anthropic Messages ------------------------------------------------------------------------


def anthropic_frames(events: Iterable[dict[str, Any]]) -> list[bytes]:
    return [b"event: " + e["type"].encode() + b"\ndata: " + _json(e) + b"\n\n" for e in events]


def anthropic_stream(
    events: Iterable[dict[str, Any]], *, request_id: str = "req_011CSHoEeqs5C35K2UUqR7Fy"
) -> list[bytes]:
    return sse_response(
        anthropic_frames(events), request_id=request_id, request_id_header="request-id"
    )


def message_start(
    msg_id: str = "msg_01XFDUDYJgAACzvnptvVoYEL", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": ANTHROPIC_MODEL,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 25, "output_tokens": 1},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": usage,
    }


MESSAGE_STOP = {"type": "message_stop"}
PING = {"type": "ping"}


# --- captures ------------------------------------------------------------------------------------


@dataclass
class Captures:
    """RawCaptures of several connections, each write/read with the time it was captured."""

    raws: list[RawCapture] = field(default_factory=list)

    def conn(
        self,
        *,
        fd: int = 7,
        pid: int = 4242,
        host: str = "api.openai.com",
        port: int = 443,
        comm: str = "python3",
    ) -> Conn:
        return Conn(self, fd=fd, pid=pid, host=host, port=port, comm=comm)


@dataclass
class Conn:
    caps: Captures
    fd: int
    pid: int
    host: str
    port: int
    comm: str

    def _add(self, kind: CaptureKind, ms: float, data: bytes = b"") -> None:
        self.caps.raws.append(
            RawCapture(
                kind=kind,
                timestamp_ns=T0 + int(ms * 1_000_000),
                data=data,
                pid=self.pid,
                tid=self.pid,
                metadata={
                    "comm": self.comm,
                    "exe": f"/usr/bin/{self.comm}",
                    "uid": 1000,
                    "fd": self.fd,
                    "ppid": 1,
                },
                remote_host=self.host,
                remote_port=self.port,
            )
        )

    def open(self, ms: float) -> Conn:
        self._add(CaptureKind.CONN_OPEN, ms)
        return self

    def send(self, data: bytes, ms: float) -> Conn:
        self._add(CaptureKind.SSL_WRITE, ms, data)
        return self

    def recv(self, data: bytes | Sequence[bytes], ms: float, step_ms: float = 0) -> Conn:
        """One read, or one read per piece `step_ms` apart."""
        pieces = [data] if isinstance(data, bytes) else data
        for i, piece in enumerate(pieces):
            self._add(CaptureKind.SSL_READ, ms + i * step_ms, piece)
        return self

    def close(self, ms: float) -> Conn:
        self._add(CaptureKind.CONN_CLOSE, ms)
        return self


def run(
    raws: Iterable[RawCapture],
    *,
    counters: Counters | None = None,
    limits: Limits | None = None,
    record_chunks: bool = False,
    registry: ProviderRegistry | None = None,
) -> list[dict[str, Any]]:
    """Decode like the pipeline does (feed, then close everything), events as sinks see them."""
    decoder = Decoder(
        hasher=HASHER,
        counters=counters or Counters(),
        limits=limits,
        record_chunks=record_chunks,
        registry=registry,
    )
    events = []
    for raw in raws:
        events += decoder.feed(raw)
    events += decoder.close_all()
    return [e.to_dict() for e in events]


def one(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    found = [e for e in events if e["event_type"] == event_type]
    assert len(found) == 1, (
        f"{len(found)} {event_type} events in {[e['event_type'] for e in events]}"
    )
    return found[0]
