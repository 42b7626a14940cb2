"""RawCapture: the one unit every capture source hands to the decoder.

It is also the unix-socket bridge's wire format (DESIGN.md §3): one JSON object per
line, plaintext in base64. Inside the program the same record carries raw bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeGuard

import orjson

from oisp_sensor.errors import DecodeError


class CaptureKind(StrEnum):
    SSL_WRITE = "SslWrite"  # bytes the application sent (client -> server)
    SSL_READ = "SslRead"  # bytes the application received (server -> client)
    CONN_OPEN = "ConnOpen"
    CONN_CLOSE = "ConnClose"


ConnKey = tuple[Any, ...]
_KINDS = {k.value: k for k in CaptureKind}

# The spec's `source.capture_method` values a capture source may claim.
CAPTURE_METHODS = frozenset(
    {"tls_boundary", "mitm_proxy", "ebpf_uprobe", "ebpf_kprobe", "syscall_intercept", "other"}
)

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
    # Set by the pipeline, never on the wire: bytes of this connection were lost
    # (dropped on a full queue) just before this capture.
    gap_before: bool = False

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
        """Parse one bridge line. Every kind of malformation is a `DecodeError` that says what.

        Values end up in events (pid, uid, port, capture method), so they are checked
        against what the OISP schema allows here, where the error can name the field.
        """
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise DecodeError(f"not JSON: {e}") from e
        if not isinstance(obj, dict):
            raise DecodeError(f"not a JSON object but {type(obj).__name__}")
        kind_name = obj.get("kind")
        if not isinstance(kind_name, str) or kind_name not in _KINDS:
            raise DecodeError(
                f"unknown kind {kind_name!r}"[:80] + f" (expected one of {', '.join(_KINDS)})"
            )
        kind = _KINDS[kind_name]
        ts = obj.get("timestamp_ns")
        if not _is_int(ts) or ts < 0:
            raise DecodeError("timestamp_ns must be a non-negative integer")
        raw_data = obj.get("data")
        if raw_data is None:
            raw_data = ""
        if not isinstance(raw_data, str):
            raise DecodeError("data must be a base64 string")
        try:
            data = base64.b64decode(raw_data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DecodeError(f"bad base64 in data: {e}") from e
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise DecodeError("metadata must be an object")
        for key in _META_INT:
            if key in metadata and not _is_count(metadata[key]):
                raise DecodeError(f"metadata.{key} must be a non-negative integer")
        pid, tid, port = obj.get("pid"), obj.get("tid"), obj.get("remote_port")
        for name, value in (("pid", pid), ("tid", tid)):
            if value is not None and not _is_count(value):
                raise DecodeError(f"{name} must be a non-negative integer")
        if port is not None and not (_is_int(port) and 0 <= port <= 65535):
            raise DecodeError("remote_port must be an integer from 0 to 65535")
        host, rid, conn_id = obj.get("remote_host"), obj.get("id"), obj.get("conn_id")
        for name, value in (("remote_host", host), ("id", rid)):
            if value is not None and not isinstance(value, str):
                raise DecodeError(f"{name} must be a string")
        if conn_id is not None and not (isinstance(conn_id, str) or _is_int(conn_id)):
            raise DecodeError("conn_id must be a string or integer")
        method = obj.get("capture_method", "tls_boundary")
        if not isinstance(method, str) or method not in CAPTURE_METHODS:
            raise DecodeError(f"capture_method must be one of {sorted(CAPTURE_METHODS)}")
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
            capture_method=method,
        )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object) -> TypeGuard[int]:
    """pid, tid, uid, fd...: the schema's non-negative integers."""
    return _is_int(value) and value >= 0
