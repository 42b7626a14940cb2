"""A small HTTP/1.1 server for the dashboard, on h11, inside the sensor's event loop.

Why not aiohttp: importing it costs the sensor 10-16 MB of memory, for a dashboard that
needs a route table, JSON, a few static files and one WebSocket. h11 (sans-IO) parses
and frames HTTP/1.1 (keep-alive, chunked bodies, HEAD); this module adds a thin
Request/Response pair, a router with path parameters, limits and timeouts, and error
answers that never leak internals. A bad request is answered (400, 413, 431), counted
(`web.bad_requests`) and its connection closed; a handler that fails is a 500, counted
(`web.errors`) and logged, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11
import orjson

from oisp_sensor.counters import Counters

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_HEAD = 16 * 1024  # request line and headers
BAD_REQUESTS = "web.bad_requests"
ERRORS = "web.errors"
_READ_SIZE = 64 * 1024
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

Handler = Callable[["Request"], Awaitable["Response"]]
Middleware = Callable[["Request", Handler], Awaitable["Response"]]
Switch = Callable[
    [list[tuple[str, str]]], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]
]


class HttpError(Exception):
    """Stops a handler with a JSON error answer: `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Query:
    """The query string, keeping repeated names (`?type=a&type=b`) in order."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self._pairs if k == name), default)

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._pairs)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value


class Headers:
    """Request headers by case-insensitive name (repeats joined, as RFC 9110 allows)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._values:
                value = self._values[key] + ("; " if key == "cookie" else ", ") + value
            self._values[key] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


@dataclass
class Request:
    method: str
    path: str  # percent-decoded
    query: Query
    headers: Headers
    body: bytes = b""
    match_info: dict[str, str] = field(default_factory=dict)
    switch_protocol: Switch | None = None  # set by the server; a WebSocket takes it over
    upgraded: bool = False

    @cached_property
    def cookies(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and name and name not in out:
                out[name] = value.strip().strip('"')
        return out

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return orjson.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # canonical names: Content-Type
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        return cls(status, body, {"Content-Type": "application/json"})

    def set_cookie(self, name: str, value: str, *, path: str = "/", samesite: str = "") -> None:
        """An HttpOnly cookie (the only kind this server sets)."""
        cookie = f"{name}={value}; HttpOnly; Path={path}"
        self.cookies.append(cookie + (f"; SameSite={samesite}" if samesite else ""))


def error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status)


@dataclass(frozen=True)
class Route:
    """METHOD and a path template: `/api/events/{event_id}`, or `/static/{path:.+}` with a
    pattern of its own. A GET route answers HEAD too."""

    method: str
    path: str
    handler: Handler

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)(?::([^}]+))?\}", self.path)
        regex = ""
        for i in range(0, len(parts), 3):
            regex += re.escape(parts[i])
            if i + 1 < len(parts):
                regex += f"(?P<{parts[i + 1]}>{parts[i + 2] or '[^/]+'})"
        return re.compile(regex)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


class App:
    """Routes behind an optional middleware, and what to do before the server stops."""

    def __init__(self, routes: Iterable[Route], *, middleware: Middleware | None = None) -> None:
        self.routes = list(routes)
        self.middleware = middleware
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []

    async def handle(self, request: Request) -> Response:
        if self.middleware is None:
            return await self.dispatch(request)
        return await self.middleware(request, self.dispatch)

    async def dispatch(self, request: Request) -> Response:
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(request.path)
            if params is None:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            if route.method == method:
                request.match_info = params
                try:
                    return await route.handler(request)
                except HttpError as e:
                    return error(e.status, e.message)
            allowed.add(route.method)
        if not allowed:
            return error(404, "not found")
        response = error(405, "method not allowed")
        if "GET" in allowed:
            allowed.add("HEAD")
        response.headers["Allow"] = ", ".join(sorted(allowed))
        return response


def static_files(folder: Path) -> Handler:
    """A handler serving the files under `folder` (route it as `/prefix/{path:.+}`)."""
    root = folder.resolve()

    async def serve(request: Request) -> Response:
        try:
            target = (root / request.match_info["path"]).resolve()
            ok = target.is_relative_to(root) and target.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long
            ok = False
        if not ok:
            raise HttpError(404, "not found")
        return file_response(request, target)

    return serve


def file_response(request: Request, path: Path, content_type: str = "") -> Response:
    """A small file, with Last-Modified; 304 when the browser's copy is current."""
    try:
        mtime = int(path.stat().st_mtime)
        body = path.read_bytes()
    except OSError as e:
        raise HttpError(404, "not found") from e
    headers = {
        "Content-Type": content_type or _TYPES.get(path.suffix, "application/octet-stream"),
        "Last-Modified": formatdate(mtime, usegmt=True),
    }
    since = request.headers.get("If-Modified-Since")
    if since:
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            if mtime <= parsedate_to_datetime(since).timestamp():
                return Response(304, b"", headers)
    return Response(200, body, headers)


class _Reject(Exception):
    """A request this server will not read: answered with `status`, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection:
    """One client connection: requests one at a time (keep-alive), or a WebSocket."""

    def __init__(
        self, server: WebServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.busy = False  # between a request's first byte and the end of its answer

    async def serve(self) -> None:
        try:
            while True:
                try:
                    request = await self._read_request()
                except _Reject as e:
                    self.server.count(BAD_REQUESTS)
                    await self._send_error(e.status, str(e))
                    await self._linger()
                    return
                if request is None:
                    return
                response = await self._handle(request)
                if request.upgraded:
                    return  # the WebSocket ran to its end on this connection
                await self._send(request.method, response)
                self.busy = False
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except (ConnectionError, TimeoutError, h11.LocalProtocolError):
            pass
        finally:
            self.writer.close()

    async def _handle(self, request: Request) -> Response:
        try:
            return await self.server.app.handle(request)
        except Exception:
            log.exception("dashboard request %s %s failed", request.method, request.path)
            self.server.count(ERRORS)
            return error(500, "internal server error")

    async def _receive(self, deadline: float | None) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.server.idle_timeout if deadline is None else deadline - loop.time()
        data = await asyncio.wait_for(self.reader.read(_READ_SIZE), max(timeout, 0))
        self.conn.receive_data(data)

    def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        try:
            return self.conn.next_event()
        except h11.RemoteProtocolError as e:
            status = e.error_status_hint
            message = "request header fields too large" if status == 431 else "bad request"
            raise _Reject(status, message) from e

    async def _read_request(self) -> Request | None:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                if deadline is None and self.conn.their_state is h11.IDLE:
                    try:
                        await self._receive(None)
                    except TimeoutError:
                        return None  # an idle keep-alive connection
                    deadline = loop.time() + self.server.request_timeout
                    self.busy = True
                else:
                    await self._receive_or_reject(deadline)
                continue
            if isinstance(event, h11.Request):
                break
            return None  # ConnectionClosed
        self.busy = True
        deadline = deadline or loop.time() + self.server.request_timeout
        # h11 bounds only a head that is still arriving; one that came whole is checked here.
        if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > MAX_HEAD:
            raise _Reject(431, "request header fields too large")
        headers = Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            raise _Reject(413, "request body too large")
        if self.conn.client_is_waiting_for_100_continue:
            self.writer.write(
                self.conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
            )
        body = bytearray()
        while True:
            part = self._next_event()
            if part is h11.NEED_DATA:
                await self._receive_or_reject(deadline)
            elif isinstance(part, h11.Data):
                body += part.data
                if len(body) > self.server.max_body:
                    raise _Reject(413, "request body too large")
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return None
        return self._request(event, headers, bytes(body))

    async def _receive_or_reject(self, deadline: float | None) -> None:
        try:
            await self._receive(deadline)
        except TimeoutError as e:
            raise _Reject(408, "request timeout") from e

    def _request(self, event: h11.Request, headers: Headers, body: bytes) -> Request:
        target = event.target.decode("latin-1")
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            raise _Reject(400, "bad request target")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
            decoded = unquote(path, errors="strict")
        except (UnicodeDecodeError, ValueError) as e:
            raise _Reject(400, "bad request target") from e
        return Request(
            method=event.method.decode("ascii", "replace"),
            path=decoded,
            query=Query(pairs),
            headers=headers,
            body=body,
            switch_protocol=self._switch_protocol,
        )

    async def _switch_protocol(
        self, headers: list[tuple[str, str]]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """Answer 101 and hand over the socket, with any bytes already read past the request."""
        self.writer.write(
            self.conn.send(h11.InformationalResponse(status_code=101, headers=headers)) or b""
        )
        await self.writer.drain()
        leftover, _ = self.conn.trailing_data
        return self.reader, self.writer, bytes(leftover)

    async def _send(self, method: str, response: Response, *, close: bool = False) -> None:
        headers = list(response.headers.items())
        headers += [("Set-Cookie", cookie) for cookie in response.cookies]
        no_body = response.status in (204, 304) or response.status < 200
        if not no_body:
            headers.append(("Content-Length", str(len(response.body))))
        if close:
            headers.append(("Connection", "close"))
        try:
            reason = http.HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        data = self.conn.send(
            h11.Response(status_code=response.status, headers=headers, reason=reason)
        )
        if response.body and method != "HEAD" and not no_body:
            data = (data or b"") + (self.conn.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (self.conn.send(h11.EndOfMessage()) or b"")
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), self.server.request_timeout)

    async def _linger(self) -> None:
        """Half-close, then drop what the client still sends, for a moment: a socket closed
        with unread input is reset, and the reset can destroy the answer before it is read."""
        with contextlib.suppress(OSError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(min(1.0, self.server.request_timeout)):
                while await self.reader.read(_READ_SIZE):
                    pass

    async def _send_error(self, status: int, message: str) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = error(status, message)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send("GET", response, close=True)


class WebServer:
    """Serves `app` on bind:port inside the running event loop (port 0: any free port)."""

    def __init__(
        self,
        app: App,
        bind: str,
        port: int,
        *,
        counters: Counters | None = None,
        max_body: int = MAX_BODY,
        idle_timeout: float = 75.0,
        request_timeout: float = 30.0,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.app = app
        self.bind = bind
        self.port = port
        self.counters = counters
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.shutdown_timeout = shutdown_timeout
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], _Connection] = {}

    def count(self, name: str) -> None:
        if self.counters is not None:
            self.counters.inc(name)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.bind or None, self.port, reuse_address=True
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(self, reader, writer)
        self._connections[task] = connection
        try:
            # close() cancels connections it cannot wait for; that ends them, quietly.
            with contextlib.suppress(asyncio.CancelledError):
                await connection.serve()
        finally:
            self._connections.pop(task, None)

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        if self.bind in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/"

    async def close(self) -> None:
        """Stop listening, run the app's shutdown hooks (they close WebSockets), let answers
        in progress finish for `shutdown_timeout`, then cut every connection."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for hook in self.app.on_shutdown:
            await hook()
        for task, connection in list(self._connections.items()):
            if not connection.busy:
                task.cancel()
        pending = list(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.shutdown_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
