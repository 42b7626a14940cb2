"""What the relay does besides the happy path: tunnels, failures, fallbacks, plain HTTP, IPv6."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from oisp_sensor.config import Config, CustomProvider
from oisp_sensor.demo import FakeProvider, Script
from tests.integration.conftest import (
    OTHER_HOST,
    BackgroundLoop,
    LiveSensor,
    UpstreamCerts,
    by_type,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"Authorization": "Bearer sk-test-paths-0123456789"}


def connect_through(proxy_port: int, target: str, host: str = "127.0.0.1") -> socket.socket:
    """A raw CONNECT through the proxy; returns the tunnelled socket after the 200."""
    sock = socket.create_connection((host, proxy_port), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, f"proxy closed during CONNECT: {head!r}"
        head += data
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def trusting_only(certs: UpstreamCerts) -> ssl.SSLContext:
    """A client that trusts the real upstream's CA and nothing else (a pinning app)."""
    context = ssl.create_default_context(cafile=str(certs.ca_path))
    return context


def read_response(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_non_ai_host_is_tunnelled_without_decryption(
    live_sensor: LiveSensor, upstream_certs: UpstreamCerts
) -> None:
    live = live_sensor
    raw = connect_through(live.sensor.relay.port, f"{OTHER_HOST}:443")  # type: ignore[union-attr]
    with trusting_only(upstream_certs).wrap_socket(raw, server_hostname=OTHER_HOST) as tls:
        cert = tls.getpeercert()
        assert cert is not None
        issuer = dict(item[0] for item in cert["issuer"])
        assert "OISP" not in json.dumps(issuer), "the relay decrypted a non-AI host"
        tls.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {OTHER_HOST}\r\n"
            f"Content-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(json.dumps(CHAT))}\r\n\r\n{json.dumps(CHAT)}".encode()
        )
        response = read_response(tls)
    assert response.endswith(live.fake.sent[-1].body)
    events = live.stop()
    assert by_type(events, "ai.request") == [] and by_type(events, "ai.response") == []
    (connect,) = by_type(events, "network.connect")
    assert connect["data"]["dest"]["domain"] == OTHER_HOST
    assert connect["attrs"]["intercepted"] is False
    assert connect["data"]["success"] is True
    assert live.counters["relay.tunnelled"] == 1
    assert live.counters.get("capture.bytes", 0) == 0  # not one byte teed


def test_unreachable_upstream_gives_a_readable_502(
    tmp_path: Path, upstream_certs: UpstreamCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    live = LiveSensor(
        tmp_path, upstream_certs, connect_to=(f"api.openai.com:443=127.0.0.1:{dead_port}",)
    ).start()
    try:
        live.apply_env(monkeypatch)
        response = httpx.post(
            "https://api.openai.com/v1/chat/completions", json=CHAT, headers=AUTH, timeout=10
        )
    finally:
        events = live.stop()
    assert response.status_code == 502
    assert response.headers["connection"] == "close"
    reason = response.headers["x-oisp-sensor-error"]
    assert "refused" in reason and "api.openai.com:443" in reason
    body = response.json()
    assert body["error"]["type"] == "oisp_sensor_upstream_error"
    assert body["error"]["message"] == reason
    (connect,) = by_type(events, "network.connect")
    assert connect["data"]["success"] is False
    assert "refused" in connect["data"]["error"]
    (request,) = by_type(events, "ai.request")
    (answer,) = by_type(events, "ai.response")
    assert request["data"]["model"]["id"] == "gpt-4o-mini"
    assert answer["data"]["status_code"] == 502
    assert answer["data"]["success"] is False


def test_upstream_with_an_untrusted_certificate_gives_502(
    tmp_path: Path, upstream_certs: UpstreamCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = LiveSensor(tmp_path, upstream_certs, upstream_ca=()).start()  # trustme CA not trusted
    try:
        live.apply_env(monkeypatch)
        response = httpx.post(
            "https://api.openai.com/v1/chat/completions", json=CHAT, headers=AUTH, timeout=10
        )
    finally:
        events = live.stop()
    assert response.status_code == 502
    assert "certificate" in response.headers["x-oisp-sensor-error"]
    assert live.fake.sent == []  # nothing was sent to a server we could not verify
    (connect,) = by_type(events, "network.connect")
    assert "certificate" in connect["data"]["error"]
    assert by_type(events, "ai.response")[0]["data"]["status_code"] == 502


def test_client_that_rejects_our_ca_gets_a_tunnel_next_time(
    live_sensor: LiveSensor, upstream_certs: UpstreamCerts, caplog: pytest.LogCaptureFixture
) -> None:
    live = live_sensor
    port = live.sensor.relay.port  # type: ignore[union-attr]
    pinned = trusting_only(upstream_certs)
    caplog.set_level(logging.WARNING, logger="oisp_sensor.capture.relay")
    raw = connect_through(port, "api.openai.com:443")
    with pytest.raises(ssl.SSLCertVerificationError):
        pinned.wrap_socket(raw, server_hostname="api.openai.com")
    raw.close()

    def hints() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "rejected the sensor's certificate" in r.getMessage()
        ]

    # The relay sees the client's alert a moment after the client fails, counts it,
    # then logs it: wait for the log line itself, not the counter.
    deadline = time.monotonic() + 5
    while not hints() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(hints()) == 1
    assert "oisp-sensor ca install" in hints()[0] and "oisp-sensor ca env" in hints()[0]

    raw = connect_through(port, "api.openai.com:443")
    with pinned.wrap_socket(raw, server_hostname="api.openai.com") as tls:
        tls.sendall(b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nConnection: close\r\n\r\n")
        assert read_response(tls).startswith(b"HTTP/1.1 200")
    events = live.stop()
    first, second = by_type(events, "network.connect")
    assert first["data"]["success"] is False
    assert "client TLS handshake failed" in first["data"]["error"]
    assert second["attrs"]["intercepted"] is False and second["data"]["success"] is True
    assert live.counters["relay.tunnelled_after_rejection"] == 1
    assert by_type(events, "ai.request") == []


def test_plain_http_to_a_local_model_server_is_forwarded_and_captured(
    tmp_path: Path, upstream_certs: UpstreamCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    bg = BackgroundLoop()
    plain = bg.call(lambda: FakeProvider().start())  # no TLS, like Ollama on localhost
    live = LiveSensor(tmp_path, upstream_certs, connect_to=()).start(
        Config(
            providers=(
                CustomProvider(
                    host="localhost",
                    provider="ollama",
                    api="ollama",
                    port=plain.port,
                    scheme="http",
                ),
            )
        )
    )
    try:
        live.apply_env(monkeypatch)
        plain.queue(Script(text="local answer"), Script(text="second"))
        with httpx.Client(timeout=10) as client:
            first = client.post(f"http://localhost:{plain.port}/v1/chat/completions", json=CHAT)
            second = client.post(f"http://localhost:{plain.port}/v1/chat/completions", json=CHAT)
        # An absolute-form request for a non-AI origin is forwarded, not captured.
        other = httpx.get(f"http://127.0.0.1:{plain.port}/v1/models", timeout=10)
    finally:
        events = live.stop()
        bg.call(plain.close)
        bg.close()
    assert first.content == plain.sent[0].body and second.content == plain.sent[1].body
    assert other.status_code == 200
    assert plain.sent[0].path.startswith("http://localhost:")  # absolute-form, as received
    texts = [e["data"]["choices"][0]["message"]["content"] for e in by_type(events, "ai.response")]
    assert texts == ["local answer", "second"]
    assert by_type(events, "ai.request")[0]["data"]["provider"]["name"] == "ollama"


def test_tunnel_passes_half_close_through(live_sensor: LiveSensor) -> None:
    """An upstream that answers only after the client's EOF still answers (RFC 9293 §3.6)."""

    async def answer_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's FIN
        writer.write(b"got %d bytes" % len(data))
        await writer.drain()
        writer.close()

    bg = BackgroundLoop()
    server = bg.call(lambda: asyncio.start_server(answer_after_eof, "127.0.0.1", 0))
    try:
        port = server.sockets[0].getsockname()[1]
        raw = connect_through(live_sensor.sensor.relay.port, f"127.0.0.1:{port}")  # type: ignore[union-attr]
        raw.sendall(b"x" * 1000)
        raw.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
        raw.close()
        assert reply == b"got 1000 bytes"
    finally:
        server.close()
        bg.close()
    events = live_sensor.stop()
    (connect,) = by_type(events, "network.connect")
    assert connect["attrs"]["intercepted"] is False


def test_many_concurrent_connections(live_env: LiveSensor) -> None:
    live = live_env
    count = 40
    # One client context for all: loading the CA bundle costs ~0.3 s per client otherwise.
    trust = ssl.create_default_context(cafile=live.env["SSL_CERT_FILE"])

    async def one(i: int) -> bytes:
        async with httpx.AsyncClient(timeout=20, verify=trust) as client:
            response = await client.post(
                "https://api.openai.com/v1/chat/completions",
                json={**CHAT, "messages": [{"role": "user", "content": f"n{i}"}]},
                headers=AUTH,
            )
            return response.content

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(one(i) for i in range(count)))

    bodies = asyncio.run(all_of_them())
    assert sorted(bodies) == sorted(ex.body for ex in live.fake.sent)
    events = live.stop()
    assert len(by_type(events, "ai.response")) == count
    assert len(by_type(events, "network.connect")) == count
    prompts = {e["data"]["messages"][0]["content"] for e in by_type(events, "ai.request")}
    assert prompts == {f"n{i}" for i in range(count)}


def test_ipv6_proxy_and_upstream(
    tmp_path: Path, upstream_certs: UpstreamCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not socket.has_ipv6:
        pytest.skip("this machine has no IPv6 loopback")
    bg = BackgroundLoop()
    fake6 = bg.call(
        lambda: FakeProvider(ssl_context=upstream_certs.server_context, host="::1").start()
    )
    live = LiveSensor(
        tmp_path,
        upstream_certs,
        bind="::1",
        connect_to=(f"api.openai.com:443=[::1]:{fake6.port}",),
    ).start()
    try:
        live.apply_env(monkeypatch)
        assert live.env["HTTPS_PROXY"].startswith("http://[::1]:")
        response = httpx.post(
            "https://api.openai.com/v1/chat/completions", json=CHAT, headers=AUTH, timeout=10
        )
    finally:
        events = live.stop()
        bg.call(fake6.close)
        bg.close()
    assert response.content == fake6.sent[-1].body
    (connect,) = by_type(events, "network.connect")
    assert connect["data"]["dest"]["ip"] == "::1"
    assert connect["data"]["src"]["ip"] == "::1"
    assert connect["process"]["name"]


def test_idle_connections_are_closed(tmp_path: Path, upstream_certs: UpstreamCerts) -> None:
    live = LiveSensor(tmp_path, upstream_certs, idle_timeout_s=0.2).start()
    try:
        raw = connect_through(live.sensor.relay.port, f"{OTHER_HOST}:443")  # type: ignore[union-attr]
        raw.settimeout(5)
        started = time.monotonic()
        assert raw.recv(10) == b""  # closed by the relay, not by us
        assert time.monotonic() - started < 4
        raw.close()
    finally:
        live.stop()
    assert live.counters["relay.idle_closed"] >= 1
