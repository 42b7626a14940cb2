"""The dashboard's HTTP/1.1 + WebSocket server on its own: framing, keep-alive, limits,
bad requests, the WebSocket protocol — over real sockets, with raw bytes where the
point is what goes over the wire, and aiohttp's client where a real client is the point."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import logging
import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.counters import Counters
from oisp_sensor.web.server import (
    BAD_REQUESTS,
    ERRORS,
    App,
    HttpError,
    Request,
    Response,
    Route,
    WebServer,
    static_files,
)
from oisp_sensor.web.websocket import BINARY, CLOSE, PING, PONG, TEXT, WebSocket, accept_key
from tests.unit.web.conftest import Served

SECRET = "internal detail: /etc/oisp/secret.key"


class Rig:
    """A small app on the real server: echo, path parameters, a failing handler, a
    WebSocket that echoes, static files."""

    def __init__(self, tmp_path: Path, **server: Any) -> None:
        self.counters = Counters()
        self.sockets: list[WebSocket] = []
        self.heartbeat: float | None = None
        (tmp_path / "static").mkdir()
        (tmp_path / "static" / "app.js").write_text("export const x = 1;\n")
        (tmp_path / "secret.txt").write_text("not for you")
        self.app = App(
            [
                Route("GET", "/hello", self.hello),
                Route("POST", "/echo", self.echo),
                Route("GET", "/items/{item_id}", self.item),
                Route("GET", "/boom", self.boom),
                Route("GET", "/teapot", self.teapot),
                Route("GET", "/ws", self.ws),
                Route("GET", "/static/{path:.+}", static_files(tmp_path / "static")),
            ]
        )
        self.server = WebServer(self.app, "127.0.0.1", 0, counters=self.counters, **server)

    async def hello(self, request: Request) -> Response:
        return Response.json(
            {
                "query": [request.query.getall("a"), request.query.get("b"), "c" in request.query],
                "cookies": request.cookies,
                "host": request.headers.get("host"),
            }
        )

    async def echo(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            raise HttpError(400, "expected JSON") from None
        return Response.json({"got": body, "size": len(request.body)})

    async def item(self, request: Request) -> Response:
        return Response.json({"item": request.match_info["item_id"]})

    async def boom(self, request: Request) -> Response:
        raise RuntimeError(SECRET)

    async def teapot(self, request: Request) -> Response:
        raise HttpError(418, "short and stout")

    async def ws(self, request: Request) -> Response:
        ws = WebSocket(heartbeat=self.heartbeat, max_size=1024, close_timeout=0.5)
        await ws.accept(request)
        self.sockets.append(ws)
        async for message in ws:
            await ws.send(message if isinstance(message, str) else "binary:" + message.hex())
        return Response(101)

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, request_timeout=0.5, idle_timeout=5.0, max_body=1000)
    await r.server.start()
    try:
        yield r
    finally:
        await r.server.close()


async def connect(rig: Rig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", rig.port)


async def read_response(
    reader: asyncio.StreamReader, *, to_head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response off a raw connection: status, headers (lower-case), body (none for HEAD)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5) if length and not to_head else b""
    return status, headers, body


def get(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


# --- HTTP ------------------------------------------------------------------------------------


async def test_keep_alive_serves_many_requests_on_one_connection(rig: Rig) -> None:
    reader, writer = await connect(rig)
    try:
        for i in range(3):
            writer.write(get(f"/items/{i}"))
            status, headers, body = await read_response(reader)
            assert status == 200 and body == b'{"item":"%d"}' % i
            assert headers["content-length"] == str(len(body))
            assert headers["content-type"] == "application/json"
        # Pipelined: two requests in one write, answered in order.
        writer.write(get("/items/a") + get("/items/b"))
        assert (await read_response(reader))[2] == b'{"item":"a"}'
        assert (await read_response(reader))[2] == b'{"item":"b"}'
    finally:
        writer.close()


async def test_head_has_the_get_length_and_no_body(rig: Rig) -> None:
    reader, writer = await connect(rig)
    try:
        writer.write(get("/items/abc"))
        _, got, body = await read_response(reader)
        writer.write(b"HEAD /items/abc HTTP/1.1\r\nHost: x\r\n\r\n")
        status, head, _ = await read_response(reader, to_head=True)
        assert status == 200 and head["content-length"] == got["content-length"] == str(len(body))
        writer.write(get("/items/next"))  # the connection is still in step
        assert (await read_response(reader))[2] == b'{"item":"next"}'
    finally:
        writer.close()


async def test_query_cookies_and_json_bodies(rig: Rig) -> None:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.get(
            "/hello?a=1&a=two%20words&c=",
            headers={"Cookie": 'x=1; session="quoted"; x=2', "Host": "h.example"},
        ) as response:
            body = await response.json()
        assert body == {
            "query": [["1", "two words"], None, True],
            "cookies": {"x": "1", "session": "quoted"},
            "host": "h.example",
        }
        body = '{"k": [1, "é"]}'.encode()
        async with session.post("/echo", data=body) as response:
            assert await response.json() == {"got": {"k": [1, "é"]}, "size": len(body)}

        # A chunked body (a stream of unknown length) is read whole too.
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"a":'
            yield b"1}"

        async with session.post("/echo", data=chunks()) as response:
            assert await response.json() == {"got": {"a": 1}, "size": 7}
        async with session.post("/echo", data=b"[100]", expect100=True) as response:
            assert await response.json() == {"got": [100], "size": 5}
        async with session.post("/echo", data=b"{nope") as response:
            assert response.status == 400
            assert await response.json() == {"error": "expected JSON"}


async def test_unknown_paths_and_methods(rig: Rig) -> None:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.get("/nothing") as response:
            assert response.status == 404
            assert await response.json() == {"error": "not found"}
        async with session.delete("/items/1") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, HEAD"
        async with session.get("/teapot") as response:
            assert response.status == 418
            assert await response.json() == {"error": "short and stout"}


async def test_a_failing_handler_is_a_500_that_says_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "oisp_sensor.web.server")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.get("/boom") as response:
            assert response.status == 500
            text = await response.text()
        assert SECRET not in text and "RuntimeError" not in text and "Traceback" not in text
        assert rig.counters.get(ERRORS) == 1
        async with session.get("/items/1") as response:  # and the server carries on
            assert response.status == 200
    assert "GET /boom failed" in caplog.text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET /items/%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # not UTF-8
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    ],
)
async def test_bad_requests_are_answered_counted_and_closed(
    rig: Rig, raw: bytes, status: int
) -> None:
    reader, writer = await connect(rig)
    try:
        writer.write(raw)
        got, headers, body = await read_response(reader)
        assert got == status
        assert headers["connection"] == "close" and b"error" in body
        assert await closed_by_server(reader)
    finally:
        writer.close()
    assert rig.counters.get(BAD_REQUESTS) == 1
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.get("/items/ok") as response:
            assert response.status == 200


async def test_a_chunked_body_over_the_limit_is_413(rig: Rig) -> None:
    reader, writer = await connect(rig)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            writer.write(b"190\r\n" + b"x" * 400 + b"\r\n")  # 1200 bytes > 1000
        status, _, _ = await read_response(reader)
        assert status == 413
        assert await closed_by_server(reader)
    finally:
        writer.close()
    assert rig.counters.get(BAD_REQUESTS) == 1


async def test_the_413_reaches_a_client_still_sending_its_body(rig: Rig) -> None:
    reader, writer = await connect(rig)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        writer.write(b"x" * 300_000)
        assert (await read_response(reader))[0] == 413
    finally:
        writer.close()


async def test_a_body_of_exactly_the_limit_is_read(rig: Rig) -> None:
    body = b'"' + b"y" * 998 + b'"'
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.post("/echo", data=body) as response:
            assert response.status == 200
            assert (await response.json())["size"] == 1000


async def test_the_dashboard_refuses_bodies_over_one_mebibyte(api: Served) -> None:
    headers = {"Origin": api.origin}
    too_big = b" " * (1024 * 1024 + 1)  # as streams: aiohttp warns about big bytes bodies
    response = await api.client.put("/api/settings", data=io.BytesIO(too_big), headers=headers)
    assert response.status == 413
    whole = io.BytesIO(too_big[:-1])
    response = await api.client.put("/api/settings", data=whole, headers=headers)
    assert response.status == 400  # read whole, and not JSON


def test_the_sensor_does_not_import_aiohttp() -> None:
    """aiohttp costs 10-16 MB; only the HTTP exporters (and `demo`) load it, when used."""
    code = "import sys, oisp_sensor.sensor, oisp_sensor.cli.record; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


async def test_a_trickling_client_is_served(rig: Rig) -> None:
    """Byte by byte, but within the request timeout: served like any other."""
    reader, writer = await connect(rig)
    try:
        for byte in get("/items/slow"):
            writer.write(bytes([byte]))
            await writer.drain()
        assert (await read_response(reader))[2] == b'{"item":"slow"}'
    finally:
        writer.close()


async def test_a_stalled_request_times_out_with_408(rig: Rig) -> None:
    reader, writer = await connect(rig)
    try:
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        status, _, _ = await read_response(reader)
        assert status == 408
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    r = Rig(tmp_path, idle_timeout=0.2)
    await r.server.start()
    try:
        reader, writer = await connect(r)
        writer.write(get("/items/1"))
        assert (await read_response(reader))[0] == 200
        assert await closed_by_server(reader)  # nothing more sent: closed, no answer
        writer.close()
        assert r.counters.get(BAD_REQUESTS) == 0
    finally:
        await r.server.close()


async def test_static_files(rig: Rig) -> None:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
        async with session.get("/static/app.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
            assert await response.text() == "export const x = 1;\n"
            modified = response.headers["Last-Modified"]
        async with session.get(
            "/static/app.js", headers={"If-Modified-Since": modified}
        ) as response:
            assert response.status == 304 and await response.read() == b""
    reader, writer = await connect(rig)
    try:  # raw, so no client normalises the path first
        for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/a%00b"):
            writer.write(get(path))
            status, _, body = await read_response(reader)
            assert status == 404 and b"not for you" not in body, path
    finally:
        writer.close()


async def test_close_ends_idle_connections_and_port_zero_gets_a_port(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    assert r.server.port == 0
    await r.server.start()
    assert r.server.port > 0 and r.server.url == f"http://127.0.0.1:{r.server.port}/"
    reader, writer = await connect(r)
    writer.write(get("/items/1"))
    assert (await read_response(reader))[0] == 200
    await asyncio.wait_for(r.server.close(), 5)
    assert await closed_by_server(reader)
    writer.close()
    with pytest.raises(OSError):
        await connect(r)


# --- WebSocket --------------------------------------------------------------------------------

KEY = base64.b64encode(os.urandom(16)).decode()


def handshake(key: str = KEY, version: str = "13") -> bytes:
    return (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    b1 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", b1, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b1, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b1, mask_bit | 127, n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b1, b2 = await asyncio.wait_for(reader.readexactly(2), 5)
    assert b1 & 0x80 and not b2 & 0x80  # final, unmasked: what a server sends
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    return b1 & 0x0F, await reader.readexactly(n)


async def open_ws(
    rig: Rig, first: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(rig)
    writer.write(handshake() + first)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert f"\r\nSec-WebSocket-Accept: {accept_key(KEY)}\r\n".encode() in head
    return reader, writer


def test_accept_key_is_rfc_6455s() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


async def test_a_real_client_talks_to_the_websocket(rig: Rig) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{rig.port}/ws") as ws:
            await ws.send_str("hello")
            assert await ws.receive_str(timeout=5) == "hello"
            await ws.send_bytes(b"\x00\xff")
            assert await ws.receive_str(timeout=5) == "binary:00ff"
            big = "é" * 300  # 600 bytes: a 16-bit length
            await ws.send_str(big)
            assert await ws.receive_str(timeout=5) == big
        assert ws.close_code == 1000


async def test_frames_sent_with_the_handshake_are_not_lost(rig: Rig) -> None:
    reader, writer = await open_ws(rig, first=client_frame(TEXT, b"early"))
    try:
        assert await read_frame(reader) == (TEXT, b"early")
    finally:
        writer.close()


async def test_ping_is_answered_with_pong_and_fragments_are_joined(rig: Rig) -> None:
    reader, writer = await open_ws(rig)
    try:
        writer.write(client_frame(PING, b"are you there"))
        assert await read_frame(reader) == (PONG, b"are you there")
        # A fragmented message with a ping in the middle of it.
        writer.write(client_frame(TEXT, b"one ", fin=False))
        writer.write(client_frame(PING, b"p"))
        writer.write(client_frame(0, b"two", fin=True))
        assert await read_frame(reader) == (PONG, b"p")
        assert await read_frame(reader) == (TEXT, b"one two")
    finally:
        writer.close()


async def test_client_close_is_answered_then_the_connection_ends(rig: Rig) -> None:
    reader, writer = await open_ws(rig)
    try:
        writer.write(client_frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
        assert await read_frame(reader) == (CLOSE, struct.pack("!H", 1000))
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_server_close_waits_for_the_answer(rig: Rig) -> None:
    reader, writer = await open_ws(rig)
    try:
        await eventually_one(rig)
        closing = asyncio.create_task(rig.sockets[0].close(1001, b"stopping"))
        assert await read_frame(reader) == (CLOSE, struct.pack("!H", 1001) + b"stopping")
        writer.write(client_frame(CLOSE, struct.pack("!H", 1001)))
        await asyncio.wait_for(closing, 5)
        assert rig.sockets[0].closed
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_a_client_that_never_answers_close_is_cut_off(rig: Rig) -> None:
    reader, writer = await open_ws(rig)
    try:
        await eventually_one(rig)
        await asyncio.wait_for(rig.sockets[0].close(), 5)  # close_timeout is 0.5 s
        assert (await read_frame(reader))[0] == CLOSE
        assert await closed_by_server(reader)
        with pytest.raises(ConnectionError):
            await rig.sockets[0].send("too late")
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(TEXT, b"x" * 1025), 1009),  # over max_size (1024)
        (client_frame(TEXT, b"x" * 70_000), 1009),  # a 64-bit length, refused before reading
        (client_frame(TEXT, b"unmasked", masked=False), 1002),
        (client_frame(TEXT, b"rsv", rsv=0x40), 1002),  # compression was never negotiated
        (client_frame(0x3, b"reserved opcode"), 1002),
        (client_frame(0, b"continuation of nothing"), 1002),
        (client_frame(PING, b"p" * 126), 1002),  # control frames are small
        (client_frame(PING, b"p", fin=False), 1002),
        (client_frame(TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (client_frame(CLOSE, struct.pack("!H", 999)), 1002),
    ],
)
async def test_protocol_violations_close_with_the_rfc_code(
    rig: Rig, frame: bytes, code: int
) -> None:
    reader, writer = await open_ws(rig)
    try:
        writer.write(frame)
        opcode, payload = await read_frame(reader)
        assert opcode == CLOSE and struct.unpack("!H", payload[:2])[0] == code
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_fragments_count_towards_the_size_limit(rig: Rig) -> None:
    reader, writer = await open_ws(rig)
    try:
        writer.write(client_frame(BINARY, b"a" * 600, fin=False))
        writer.write(client_frame(0, b"b" * 600))
        opcode, payload = await read_frame(reader)
        assert opcode == CLOSE and struct.unpack("!H", payload[:2])[0] == 1009
    finally:
        writer.close()


async def test_bad_handshakes_are_400(rig: Rig) -> None:
    for raw in (handshake(key="short"), handshake(version="8"), get("/ws")):
        reader, writer = await connect(rig)
        try:
            writer.write(raw)
            status, _, body = await read_response(reader)
            assert status == 400 and b"WebSocket" in body
        finally:
            writer.close()


async def test_heartbeat_cuts_off_a_tab_that_never_answers(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    r.heartbeat = 0.1
    await r.server.start()
    try:
        reader, writer = await open_ws(r)
        assert (await read_frame(reader))[0] == PING  # and no pong goes back
        assert await closed_by_server(reader)
        writer.close()
        # One that answers stays connected through several heartbeats.
        reader, writer = await open_ws(r)
        for _ in range(3):
            opcode, payload = await read_frame(reader)
            assert opcode == PING
            writer.write(client_frame(PONG, payload))
        writer.write(client_frame(TEXT, b"still here"))
        while (frame := await read_frame(reader))[0] == PING:
            writer.write(client_frame(PONG, frame[1]))
        assert frame == (TEXT, b"still here")
        writer.close()
    finally:
        await r.server.close()


async def test_a_slow_reader_does_not_block_the_server(rig: Rig) -> None:
    """A tab that stops reading: its own sends wait, everything else carries on."""
    reader, writer = await open_ws(rig)
    try:
        await eventually_one(rig)
        ws = rig.sockets[0]
        message = "z" * 60_000
        stuck = asyncio.create_task(_send_forever(ws, message))
        await asyncio.sleep(0.2)
        assert not stuck.done()  # waiting for room in the socket's buffer
        async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
            async with session.get("/items/meanwhile") as response:
                assert response.status == 200
        stuck.cancel()
    finally:
        writer.close()


async def _send_forever(ws: WebSocket, message: str) -> None:
    while True:
        await ws.send(message)


async def eventually_one(rig: Rig) -> None:
    for _ in range(250):
        if rig.sockets:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no WebSocket was accepted")


# --- properties -------------------------------------------------------------------------------

PAIR = (
    b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"a":1}'
    + b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n"
    + b"GET /items/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
)
ANSWERS = [b'{"got":{"a":1},"size":7}', b'{"got":[1],"size":3}', b'{"item":"last"}']


async def _exchange(rig: Rig, pieces: list[bytes]) -> list[bytes]:
    await rig.server.start()
    try:
        reader, writer = await connect(rig)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        answers = [(await read_response(reader))[2] for _ in ANSWERS]
        assert await closed_by_server(reader)  # Connection: close is honoured
        writer.close()
        return answers
    finally:
        await rig.server.close()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, len(PAIR)), max_size=6))
def test_however_the_bytes_arrive_the_answers_are_the_same(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    bounds = [0, *sorted(set(cuts)), len(PAIR)]
    pieces = [PAIR[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    rig = Rig(tmp_path_factory.mktemp("rig"))
    assert asyncio.run(_exchange(rig, pieces)) == ANSWERS
    assert rig.counters.get(BAD_REQUESTS) == 0


POST_HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\n"


async def _send_garbage(rig: Rig, data: bytes) -> None:
    await rig.server.start()
    try:
        reader, writer = await connect(rig)
        writer.write(data)
        writer.write_eof()
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), 5)  # whatever it says, it says it and closes
        writer.close()
        async with aiohttp.ClientSession(f"http://127.0.0.1:{rig.port}") as session:
            async with session.get("/items/after") as response:  # still serving
                assert response.status == 200
    finally:
        await rig.server.close()


@settings(max_examples=40, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda tail: b"GET /" + tail, st.binary(max_size=200)),
        st.builds(lambda tail: POST_HEAD + tail, st.binary(max_size=200)),
    )
)
def test_garbage_never_breaks_the_server(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    rig = Rig(tmp_path_factory.mktemp("rig"), request_timeout=1.0)
    asyncio.run(_send_garbage(rig, data))
    assert rig.counters.get(ERRORS) == 0  # answered or refused, never a handler crash
