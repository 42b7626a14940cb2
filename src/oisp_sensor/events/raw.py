"""RawCapture: the one unit every capture source hands to the decoder.

It is also the unix-socket bridge's wire format (DESIGN.md §3): one JSON object per
line, plaintext in base64. Inside the program the same record carries raw bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from oisp_sensor.errors import DecodeError


class CaptureKind(StrEnum):
    SSL_WRITE = "SslWrite"  # bytes the application sent (client -> server)
    SSL_READ = "SslRead"  # bytes the application received (server -> client)
    CONN_OPEN = "ConnOpen"
    CONN_CLOSE = "ConnClose"


ConnKey = tuple[Any, ...]

# Metadata keys the bridge format defines; anything else a source sends is kept too.
_META_INT = ("uid", "fd", "ppid")


@dataclass(frozen=True, slots=True, kw_only=True)
class RawCapture:
    """A chunk of plaintext (or a connection open/close) with where it came from."""

    kind: CaptureKind
    timestamp_ns: int
    data: bytes = b""
    pid: int | None = None
    tid: int | None = None
    id: str | None = None
    conn_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    remote_host: str | None = None
    remote_port: int | None = None
    # How the bytes were obtained: "mitm_proxy" for the relay, "tls_boundary" for
    # agents that read plaintext at SSL_read/SSL_write (the bridge's default).
    capture_method: str = "tls_boundary"

    @property
    def connection_key(self) -> ConnKey:
        """Which connection these bytes belong to (DESIGN.md §3).

        A source-supplied connection id wins, because the relay learns the pid
        only after attribution finishes and the key must not change mid-stream.
        """
        if self.conn_id is not None:
            return ("conn", self.pid, self.conn_id)
        fd = self.metadata.get("fd")
        if fd is not None:
            return ("fd", self.pid, fd)
        return ("remote", self.pid, self.remote_host, self.remote_port)

    def to_json_line(self) -> bytes:
        """The bridge wire form (base64 data), newline-terminated."""
        obj: dict[str, Any] = {
            "id": self.id,
            "timestamp_ns": self.timestamp_ns,
            "kind": str(self.kind),
            "pid": self.pid,
            "tid": self.tid,
            "data": base64.b64encode(self.data).decode("ascii"),
            "metadata": self.metadata,
            "remote_host": self.remote_host,
            "remote_port": self.remote_port,
        }
        if self.conn_id is not None:
            obj["conn_id"] = self.conn_id
        if self.capture_method != "tls_boundary":
            obj["capture_method"] = self.capture_method
        return orjson.dumps({k: v for k, v in obj.items() if v is not None}) + b"\n"

    @classmethod
    def from_json_line(cls, line: bytes | str) -> RawCapture:
        """Parse one bridge line. Every kind of malformation is a `DecodeError` that says what."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise DecodeError(f"not JSON: {e}") from e
        if not isinstance(obj, dict):
            raise DecodeError("not a JSON object")
        try:
            kind = CaptureKind(str(obj.get("kind")))
        except ValueError:
            raise DecodeError(f"unknown kind {obj.get('kind')!r}") from None
        ts = obj.get("timestamp_ns")
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
            raise DecodeError("timestamp_ns must be a non-negative integer")
        raw_data = obj.get("data") or ""
        if not isinstance(raw_data, str):
            raise DecodeError("data must be a base64 string")
        try:
            data = base64.b64decode(raw_data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DecodeError(f"bad base64 in data: {e}") from e
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DecodeError("metadata must be an object")
        for key in _META_INT:
            if key in metadata and not _is_int(metadata[key]):
                raise DecodeError(f"metadata.{key} must be an integer")
        pid, tid, port = obj.get("pid"), obj.get("tid"), obj.get("remote_port")
        for name, value in (("pid", pid), ("tid", tid), ("remote_port", port)):
            if value is not None and not _is_int(value):
                raise DecodeError(f"{name} must be an integer")
        host, rid, conn_id = obj.get("remote_host"), obj.get("id"), obj.get("conn_id")
        for name, value in (("remote_host", host), ("id", rid)):
            if value is not None and not isinstance(value, str):
                raise DecodeError(f"{name} must be a string")
        if conn_id is not None and not isinstance(conn_id, (str, int)):
            raise DecodeError("conn_id must be a string or integer")
        method = obj.get("capture_method", "tls_boundary")
        return cls(
            kind=kind,
            timestamp_ns=ts,
            data=data,
            pid=pid,
            tid=tid,
            id=rid,
            conn_id=None if conn_id is None else str(conn_id),
            metadata=metadata,
            remote_host=host,
            remote_port=port,
            capture_method=method if isinstance(method, str) else "tls_boundary",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
