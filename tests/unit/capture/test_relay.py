"""The relay with real sockets and real TLS, but no SDKs: framing, ordering, flow control."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from oisp_sensor.capture.attribution import Attributor, ProcessInfo
from oisp_sensor.capture.ca import LocalCA, default_constraint_names
from oisp_sensor.capture.relay import Relay, RelaySettings, error_response
from oisp_sensor.config import parse_connect_to, split_host_port
from oisp_sensor.counters import Counters
from oisp_sensor.decode.registry import ProviderRegistry
from oisp_sensor.demo import FakeProvider, Script
from oisp_sensor.errors import ConfigError
from oisp_sensor.events import CaptureKind, RawCapture

REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
    b"Content-Type: application/json\r\nContent-Length: 43\r\n\r\n"
    b'{"model":"gpt-4o-mini","messages":[],"x":1}'
)


# --- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api.openai.com:443", ("api.openai.com", 443)),
        ("API.OpenAI.com:8443", ("api.openai.com", 8443)),
        ("[::1]:8080", ("::1", 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["api.openai.com", "host:0", "host:99999", ":443", "[::1", "a:b"])
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


def test_parse_connect_to() -> None:
    routes = parse_connect_to(["api.openai.com:443=127.0.0.1:9000", "x.ai:443=[::1]:9001"])
    assert routes == {("api.openai.com", 443): ("127.0.0.1", 9000), ("x.ai", 443): ("::1", 9001)}
    with pytest.raises(ConfigError, match="HOST:PORT=ADDR:PORT"):
        parse_connect_to(["api.openai.com:443"])


def test_error_response_is_complete_http() -> None:
    raw = error_response(502, "Bad Gateway", "connection to x:443 refused\r\nInjected: yes")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 502 Bad Gateway"
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"Connection"] == b"close"
    assert int(headers[b"Content-Length"]) == len(body)
    assert b"Injected" not in headers  # a reason can never add a header
    message = orjson.loads(body)["error"]["message"]
    assert headers[b"X-OISP-Sensor-Error"].decode() == message
    assert orjson.loads(body)["error"]["type"] == "oisp_sensor_upstream_error"


# --- a relay on real sockets ---------------------------------------------------------------


class Harness:
    def __init__(self, relay: Relay, fake: FakeProvider, client_trust: ssl.SSLContext) -> None:
        self.relay = relay
        self.fake = fake
        self.client_trust = client_trust
        self.captures: list[RawCapture] = []

    async def connect(self, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.relay.port)
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return reader, writer

    async def tls(self, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await self.connect(target)
        await writer.start_tls(self.client_trust, server_hostname=target.rsplit(":", 1)[0])
        return reader, writer

    async def settle(self) -> None:
        """Let flows finish (ConnClose is emitted after both sides are closed)."""
        for _ in range(200):
            if not self.relay.flows:
                return
            await asyncio.sleep(0.01)


class SlowAttributor(Attributor):
    """Takes its time in the thread, like a full /proc scan on a busy machine."""

    def quick(self, client: Any, server: Any) -> tuple[ProcessInfo | None, Any]:
        return None, None

    def lookup(self, client: Any, server: Any, located: Any = None) -> ProcessInfo | None:
        time.sleep(0.3)
        return ProcessInfo(pid=4242, name="slowpoke", exe="/usr/bin/slowpoke", uid=1000)


@pytest.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    upstream = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream.issue_cert("api.openai.com", "localhost").configure_cert(server_context)
    upstream_pem = tmp_path / "upstream.pem"
    upstream.cert_pem.write_to_path(str(upstream_pem))
    fake = await FakeProvider(ssl_context=server_context).start()
    registry = ProviderRegistry()
    ca = await asyncio.to_thread(
        LocalCA.load_or_create, tmp_path / "ca", default_constraint_names(registry)
    )
    settings = RelaySettings(
        port=0,
        upstream_ca=(str(upstream_pem),),
        connect_to=parse_connect_to([f"api.openai.com:443=127.0.0.1:{fake.port}"]),
    )
    attributor = getattr(request, "param", None)
    captures: list[RawCapture] = []

    def submit(raw: RawCapture) -> bool:
        captures.append(raw)
        return True

    relay = Relay(
        registry=registry,
        ca=ca,
        submit=submit,
        counters=Counters(),
        settings=settings,
        attributor=attributor() if attributor else None,
    )
    await relay.start()
    trust = ssl.create_default_context(cafile=str(ca.cert_path))
    h = Harness(relay, fake, trust)
    h.captures = captures
    try:
        yield h
    finally:
        await relay.close(0.1)
        await fake.close()


async def exchange(h: Harness) -> bytes:
    reader, writer = await h.tls("api.openai.com:443")
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return head + body


async def test_captures_are_ordered_and_keyed_by_one_connection(harness: Harness) -> None:
    response = await exchange(harness)
    await harness.settle()
    kinds = [c.kind for c in harness.captures]
    assert kinds[0] is CaptureKind.CONN_OPEN and kinds[-1] is CaptureKind.CONN_CLOSE
    assert CaptureKind.SSL_WRITE in kinds and CaptureKind.SSL_READ in kinds
    assert len({c.connection_key for c in harness.captures}) == 1
    assert {c.capture_method for c in harness.captures} == {"mitm_proxy"}
    sent = b"".join(c.data for c in harness.captures if c.kind is CaptureKind.SSL_WRITE)
    received = b"".join(c.data for c in harness.captures if c.kind is CaptureKind.SSL_READ)
    assert sent == REQUEST
    assert received == response
    open_meta = harness.captures[0].metadata
    assert open_meta["intercepted"] is True
    net = open_meta["net"]
    assert net["success"] is True and net["dest"] == {
        "domain": "api.openai.com",
        "port": 443,
        "ip": "127.0.0.1",
    }
    assert net["tls"]["sni"] == "api.openai.com" and net["tls"]["version"].startswith("TLS")


@pytest.mark.parametrize("harness", [SlowAttributor], indirect=True)
async def test_slow_attribution_never_delays_the_bytes(harness: Harness) -> None:
    started = time.perf_counter()
    response = await exchange(harness)
    assert time.perf_counter() - started < 0.3  # answered before attribution finished
    assert response.endswith(harness.fake.sent[-1].body)
    await harness.settle()
    # Everything waited for the process and then went out in order, all attributed.
    assert harness.captures[0].kind is CaptureKind.CONN_OPEN
    assert {c.pid for c in harness.captures} == {4242}
    assert harness.captures[0].metadata["comm"] == "slowpoke"
    assert harness.captures[-1].kind is CaptureKind.CONN_CLOSE


async def test_close_emits_conn_close_for_open_connections(harness: Harness) -> None:
    reader, writer = await harness.tls("api.openai.com:443")
    writer.write(REQUEST)
    await reader.readuntil(b"\r\n\r\n")
    await harness.relay.close(0.05)
    assert harness.captures[-1].kind is CaptureKind.CONN_CLOSE
    writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n", b"431"),
    ],
)
async def test_bad_proxy_requests_get_a_clear_error(
    harness: Harness, request_bytes: bytes, status: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.relay.port)
    writer.write(request_bytes)
    response = await reader.read()
    assert response.split(b" ")[1] == status
    assert b"x-oisp-sensor-error" in response.lower()
    writer.close()
    await harness.settle()
    assert harness.captures == []  # nothing to capture, nothing half-open in the decoder


async def test_tunnel_backpressure_bounds_memory(harness: Harness) -> None:
    """A client that stops reading makes the relay stop reading the upstream."""
    total = 32 * 1024 * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = b"x" * 65536
        with_sent = 0
        try:
            while with_sent < total:
                writer.write(block)
                await writer.drain()
                with_sent += len(block)
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await harness.connect(f"127.0.0.1:{port}")
    await asyncio.sleep(0.5)  # we read nothing meanwhile
    (flow,) = [f for f in harness.relay.flows if f.port == port]
    assert flow.out is not None
    buffered = flow.out.get_write_buffer_size()
    assert buffered < 4 * 1024 * 1024, f"the relay buffered {buffered} bytes"
    received = 0
    while chunk := await reader.read(1 << 20):
        received += len(chunk)
    assert received == total
    writer.close()
    server.close()


async def test_upstream_data_waits_for_the_200_in_a_tunnel(harness: Harness) -> None:
    """A server that speaks first (SMTP, SSH) must not get ahead of our CONNECT answer."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hello\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await harness.connect(f"127.0.0.1:{port}")
    assert await reader.readline() == b"220 hello\r\n"
    writer.close()
    server.close()


async def test_fake_default_script_is_used_when_queue_is_empty(harness: Harness) -> None:
    harness.fake.queue(Script(text="queued"))
    first = await exchange(harness)
    second = await exchange(harness)
    assert b"queued" in first and b"OISP demo provider" in second


@pytest.mark.parametrize(
    ("junk", "refusal"),
    [
        (b"", True),  # hung up mid-handshake: what some clients do on an untrusted CA
        (b"\x16\x03\x01\x00\x05hello", False),  # not a refusal, just broken TLS
        (b"GET / HTTP/1.1\r\n\r\n", False),  # not TLS at all
    ],
)
async def test_client_gone_during_handshake_still_finishes(
    harness: Harness, junk: bytes, refusal: bool
) -> None:
    """Whatever the client does before vanishing, the flow ends and says why, once."""
    reader, writer = await harness.connect("api.openai.com:443")
    writer.write(junk)
    writer.close()
    await writer.wait_closed()
    await harness.settle()
    assert not harness.relay.flows, "a connection never finished"
    kinds = [c.kind for c in harness.captures]
    assert kinds == [CaptureKind.CONN_OPEN, CaptureKind.CONN_CLOSE]
    net = harness.captures[0].metadata["net"]
    assert net["success"] is False
    assert net["error"].startswith("client TLS handshake failed")
    assert harness.relay.counters.get("relay.client_tls_rejections") == int(refusal)
    assert bool(harness.relay.fallback) is refusal
