"""The server side of RFC 6455 WebSockets: what the live feed needs, no more.

The Upgrade handshake (Sec-WebSocket-Accept), text frames out (unmasked, one frame per
message), frames in (masked, possibly fragmented) with ping answered by pong, the close
handshake both ways, a size limit on incoming messages (1009), and a heartbeat ping
that cuts off a tab whose connection died without a word. No extensions (compression
is never negotiated) and no subprotocols. A client that breaks the protocol gets a
close frame with the RFC's code (1002, 1007, 1009) and its connection closed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import struct

from oisp_sensor.web.server import HttpError, Request

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame (what a server sends)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or (3000 <= code < 5000)


class _Failure(Exception):
    """The client broke the protocol: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class WebSocket:
    """One tab's WebSocket: `await accept(request)`, `send()`, `async for message in ws`
    (which ends when the connection does), `close()`."""

    def __init__(
        self,
        *,
        heartbeat: float | None = 30.0,
        max_size: int = 64 * 1024,
        close_timeout: float = 1.0,
    ) -> None:
        self.heartbeat = heartbeat
        self.max_size = max_size
        self.close_timeout = close_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending = b""
        self._close_sent = False
        self._closed = asyncio.Event()  # the connection is over
        self._last_seen = 0.0
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._close_sent or self._closed.is_set()

    async def accept(self, request: Request) -> None:
        """Check the handshake (400 if it is not one) and switch the connection over."""
        headers = request.headers
        key = headers.get("Sec-WebSocket-Key") or ""
        connection = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            key_ok = False
        if (
            request.method != "GET"
            or (headers.get("Upgrade") or "").lower() != "websocket"
            or "upgrade" not in connection
            or headers.get("Sec-WebSocket-Version") != "13"
            or not key_ok
            or request.switch_protocol is None
        ):
            raise HttpError(400, "expected a WebSocket handshake")
        self._reader, self._writer, self._pending = await request.switch_protocol(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(key)),
            ]
        )
        request.upgraded = True
        self._last_seen = asyncio.get_running_loop().time()
        if self.heartbeat:
            self._heartbeat = asyncio.create_task(self._keep_alive(), name="websocket-heartbeat")

    async def send(self, message: bytes | str) -> None:
        """Send a text message (bytes must be UTF-8); waits while the socket's buffer is full."""
        data = message.encode() if isinstance(message, str) else message
        writer = self._write(TEXT, data)
        await writer.drain()

    async def close(self, code: int = 1000, reason: bytes = b"") -> None:
        """Start the close handshake; a client that does not answer in time is cut off."""
        if not self._close_sent:
            self._close_sent = True
            with contextlib.suppress(ConnectionError):
                self._write(CLOSE, struct.pack("!H", code) + reason[:123])
        try:
            await asyncio.wait_for(self._closed.wait(), self.close_timeout)
        except TimeoutError:
            self._abort()

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        if self._closed.is_set():
            raise StopAsyncIteration
        try:
            message = await self._receive()
        except _Failure as e:
            if not self._close_sent:
                self._close_sent = True
                with contextlib.suppress(ConnectionError):
                    self._write(CLOSE, struct.pack("!H", e.code) + str(e).encode()[:123])
            await self._discard_input()
            message = None
        except (asyncio.IncompleteReadError, ConnectionError):
            message = None
        if message is None:
            self._finish()
            raise StopAsyncIteration
        return message

    async def _discard_input(self) -> None:
        """After failing the connection, drop what the client still sends, for a moment: a
        socket closed with unread input is reset, and the reset can destroy our close frame
        before the client reads it."""
        assert self._reader is not None
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.close_timeout):
                while await self._reader.read(64 * 1024):
                    pass

    def _write(self, opcode: int, payload: bytes) -> asyncio.StreamWriter:
        writer = self._writer
        if writer is None or writer.is_closing() or (self._close_sent and opcode != CLOSE):
            raise ConnectionResetError("WebSocket is closed")
        writer.write(frame(opcode, payload))
        return writer

    async def _read(self, n: int) -> bytes:
        assert self._reader is not None
        if not self._pending:
            return await self._reader.readexactly(n)
        head, self._pending = self._pending[:n], self._pending[n:]
        return head if len(head) == n else head + await self._reader.readexactly(n - len(head))

    async def _receive(self) -> str | bytes | None:
        """The next whole message; None once the close handshake is done."""
        parts: list[bytes] = []
        size = 0
        kind: int | None = None  # TEXT or BINARY while a fragmented message is open
        while True:
            b1, b2 = await self._read(2)
            fin, opcode, length = b1 & 0x80, b1 & 0x0F, b2 & 0x7F
            if b1 & 0x70:
                raise _Failure(1002, "reserved bits set")
            if not b2 & 0x80:
                raise _Failure(1002, "client frames must be masked")
            if length == 126:
                (length,) = struct.unpack("!H", await self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self._read(8))
            if opcode >= CLOSE:
                if opcode not in (CLOSE, PING, PONG):
                    raise _Failure(1002, "unknown opcode")
                if not fin or length > 125:
                    raise _Failure(1002, "bad control frame")
            elif opcode == CONTINUATION and kind is None:
                raise _Failure(1002, "continuation without a message")
            elif opcode in _DATA and kind is not None:
                raise _Failure(1002, "new message inside a fragmented one")
            elif opcode not in _DATA and opcode != CONTINUATION:
                raise _Failure(1002, "unknown opcode")
            if opcode < CLOSE and size + length > self.max_size:
                raise _Failure(1009, "message too big")
            mask = await self._read(4)
            payload = unmask(await self._read(length), mask)
            self._last_seen = asyncio.get_running_loop().time()
            if opcode == PING:
                with contextlib.suppress(ConnectionError):
                    self._write(PONG, payload)
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                self._answer_close(payload)
                return None
            kind = kind if opcode == CONTINUATION else opcode
            parts.append(payload)
            size += length
            if fin:
                data = b"".join(parts)
                if kind == BINARY:
                    return data
                try:
                    return data.decode()
                except UnicodeDecodeError as e:
                    raise _Failure(1007, "text message is not UTF-8") from e

    def _answer_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise _Failure(1002, "bad close frame")
        code = struct.unpack("!H", payload[:2])[0] if payload else 1000
        if payload and not _valid_close_code(code):
            raise _Failure(1002, "bad close code")
        try:
            payload[2:].decode()
        except UnicodeDecodeError as e:
            raise _Failure(1007, "close reason is not UTF-8") from e
        if not self._close_sent:
            self._close_sent = True
            with contextlib.suppress(ConnectionError):
                self._write(CLOSE, struct.pack("!H", code))

    async def _keep_alive(self) -> None:
        """Ping every `heartbeat` seconds; no answer within half of that: the tab is gone."""
        assert self.heartbeat
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(self.heartbeat)
            sent = loop.time()
            try:
                self._write(PING, b"")
            except ConnectionError:
                return
            await asyncio.sleep(self.heartbeat / 2)
            if self._last_seen < sent:
                self._abort()
                return

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._finish()

    def _finish(self) -> None:
        self._closed.set()
        if self._heartbeat is not None and self._heartbeat is not asyncio.current_task():
            self._heartbeat.cancel()
