"""Building blocks for decoder tests: HTTP messages as bytes, and decoding them.

Tests describe traffic the way it crosses the wire (request bytes, response bytes,
how the reads were split) and get back events as dicts, exactly as a sink sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.decode.registry import ProviderRegistry
from oisp_sensor.events import CaptureKind, RawCapture
from oisp_sensor.privacy.hashing import KeyedHasher

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
HASHER = KeyedHasher(b"oisp-sensor-test-hash-key-32byte")


def http_request(
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    host: str = "api.openai.com",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
) -> bytes:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    if body is not None:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            body = chunk_body([body])
        else:
            lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def http_response(
    body: bytes | dict[str, Any] | list[Any] = b"",
    *,
    status: int = 200,
    reason: str = "OK",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    chunks: Sequence[bytes] | None = None,
) -> bytes:
    """A response; with `chunks`, chunked transfer coding with one chunk per item."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = chunk_body(chunks)
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def chunk_body(chunks: Iterable[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"


def sse_events(*events: dict[str, Any] | str | tuple[str, dict[str, Any]]) -> list[bytes]:
    """SSE frames: a dict is `data: <json>`, a str is raw data, (name, dict) adds `event:`."""
    out = []
    for ev in events:
        if isinstance(ev, tuple):
            name, payload = ev
            out.append(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())
        elif isinstance(ev, dict):
            out.append(f"data: {json.dumps(ev)}\n\n".encode())
        else:
            out.append(f"data: {ev}\n\n".encode())
    return out


def captures(
    exchanges: Sequence[tuple[bytes, bytes]],
    *,
    pid: int = 4242,
    fd: int = 7,
    host: str = "api.openai.com",
    port: int = 443,
    splits: Sequence[int] | None = None,
    step_ns: int = 10_000_000,
    close: bool = True,
) -> list[RawCapture]:
    """RawCaptures for exchanges on one connection: request, then response, each
    split at `splits` (offsets) when given, with timestamps `step_ns` apart."""
    out: list[RawCapture] = []
    ts = T0
    meta = {"comm": "python3", "exe": "/usr/bin/python3", "uid": 1000, "fd": fd, "ppid": 1}
    for request, response in exchanges:
        for kind, data in ((CaptureKind.SSL_WRITE, request), (CaptureKind.SSL_READ, response)):
            for piece in split(data, splits):
                out.append(
                    RawCapture(
                        kind=kind,
                        timestamp_ns=ts,
                        data=piece,
                        pid=pid,
                        metadata=meta,
                        remote_host=host,
                        remote_port=port,
                    )
                )
                ts += step_ns
    if close:
        out.append(
            RawCapture(
                kind=CaptureKind.CONN_CLOSE,
                timestamp_ns=ts,
                pid=pid,
                metadata=meta,
                remote_host=host,
                remote_port=port,
            )
        )
    return out


def split(data: bytes, offsets: Sequence[int] | None) -> list[bytes]:
    if not offsets:
        return [data]
    points = sorted({o for o in offsets if 0 < o < len(data)})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def decode(
    raws: Iterable[RawCapture],
    *,
    registry: ProviderRegistry | None = None,
    counters: Counters | None = None,
    record_chunks: bool = False,
) -> list[dict[str, Any]]:
    """Run captures through a fresh Decoder; events as the dicts a sink would write."""
    decoder = Decoder(
        hasher=HASHER,
        registry=registry,
        counters=counters or Counters(),
        record_chunks=record_chunks,
    )
    events = []
    for raw in raws:
        events += decoder.feed(raw)
    events += decoder.close_all()
    return [e.to_dict() for e in events]


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


def stable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without the fields that differ run to run (ids), for comparing decodings."""
    out = []
    for e in events:
        e = json.loads(json.dumps(e))
        e.pop("event_id")
        for r in e.get("related_events", []):
            r.pop("event_id")
        data = e.get("data", {})
        data.pop("request_id", None)
        e.get("attrs", {}).pop("request_id", None)
        out.append(e)
    return out
