"""The TLS-terminating relay: an explicit HTTP proxy that sees AI traffic in plaintext.

Clients reach it as an ordinary HTTP proxy (HTTPS_PROXY). For each CONNECT:

- an AI host (the provider registry decides) is intercepted: TLS to the client
  with a leaf from the local CA, TLS to the real upstream (verified as any client
  would), and every plaintext chunk is copied to the other side *and* teed to the
  pipeline as a RawCapture;
- any other host gets a blind TCP tunnel: nothing is decrypted or recorded but a
  network.connect event.

Absolute-form requests (plain HTTP, e.g. a local Ollama) are forwarded to their
origin and teed when the origin is an AI server.

The relay copies bytes; it parses no HTTP beyond the proxy request itself and the
request boundaries capture/framing.py explains (DESIGN.md §1). Protocols, not
streams: each chunk costs one write and one non-blocking `submit` (the hand-off of
capture/relay_thread.py), and flow control is the transports' own (a full write
buffer on one side pauses reading on the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import certifi
import orjson

from oisp_sensor.capture.attribution import Attributor, ProcessInfo
from oisp_sensor.capture.framing import (
    BodyBytes,
    FramingError,
    RequestEnd,
    RequestFramer,
    RequestHead,
    parse_head,
)
from oisp_sensor.config import parse_connect_to, split_host_port
from oisp_sensor.counters import Counters
from oisp_sensor.decode.registry import ProviderRegistry
from oisp_sensor.errors import CaptureError, ConfigError
from oisp_sensor.events import CaptureKind, RawCapture

log = logging.getLogger(__name__)

Submit = Callable[[RawCapture], bool]

# Enum members cost ~150 ns per lookup on Python 3.11; every teed chunk uses one of these.
SSL_WRITE = CaptureKind.SSL_WRITE
SSL_READ = CaptureKind.SSL_READ

MAX_HEAD = 64 * 1024
HOLD_LIMIT = 1024 * 1024  # client bytes buffered while the upstream connects
CONNECT_TIMEOUT_S = 15.0
HANDSHAKE_TIMEOUT_S = 30.0
# A request whose body never comes (Expect: 100-continue) still gets its 502.
EARLY_502_DELAY_S = 1.0
# A hint only our own clients send (the Node preload): plain HTTP follows this CONNECT.
PLAIN_TUNNEL_HEADER = "x-oisp-tunnel"

TRUST_FIX = (
    "trust the OISP Local CA with `oisp-sensor ca install`, or run the app with"
    ' `eval "$(oisp-sensor ca env)"` in its shell, or start it with `oisp-sensor run -- COMMAND`'
)


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """What the relay needs from `[capture]` config, already parsed."""

    bind: str = "127.0.0.1"
    port: int = 8080
    upstream_ca: tuple[str, ...] = ()
    connect_to: dict[tuple[str, int], tuple[str, int]] | None = None
    tunnel_on_tls_failure: bool = True
    idle_timeout_s: float = 300.0

    @classmethod
    def from_config(cls, capture: Any) -> RelaySettings:
        return cls(
            bind=capture.bind,
            port=capture.proxy_port,
            upstream_ca=tuple(capture.upstream_ca),
            connect_to=parse_connect_to(capture.connect_to),
            tunnel_on_tls_failure=capture.tunnel_on_tls_failure,
            idle_timeout_s=capture.idle_timeout_s,
        )


def upstream_context(extra_cas: Iterable[str] = ()) -> ssl.SSLContext:
    """How the relay verifies real servers: certifi + the system store + `--upstream-ca`."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    for path in extra_cas:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"upstream_ca: cannot load {path}: {e}") from e
    context.set_alpn_protocols(["http/1.1"])
    return context


# --- the relay -----------------------------------------------------------------------------


class Relay:
    """The proxy server and the state shared by its connections."""

    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        ca: Any,  # capture.ca.LocalCA: leaf_context_async(host), permits(host)
        submit: Submit,
        counters: Counters | None = None,
        settings: RelaySettings | None = None,
        attributor: Attributor | None = None,
    ) -> None:
        self.registry = registry
        self.ca = ca
        self.submit = submit
        self.counters = counters or Counters()
        self.settings = settings or RelaySettings()
        self.routes = self.settings.connect_to or {}
        self.attributor = attributor or Attributor()
        self.upstream_ssl = upstream_context(self.settings.upstream_ca)
        self.flows: set[_ClientConnection] = set()
        # (client executable, host, port) whose client rejected our certificate.
        self.fallback: set[tuple[str | None, str, int]] = set()
        self.fallback_hosts: set[tuple[str, int]] = set()
        self._warned: set[tuple[str | None, str]] = set()
        self._permitted: dict[str, bool] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="oisp-attribution")
        self._next_id = 0
        self._prefix = f"r{int(time.time()) % 100000:05d}-"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _ClientConnection(self),
                host=self.settings.bind,
                port=self.settings.port,
                reuse_address=True,
                backlog=1024,
            )
        except OSError as e:
            raise CaptureError(
                f"cannot listen on {self.settings.bind}:{self.settings.port}: {e.strerror or e}"
            ) from e
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="relay-idle-sweeper")

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "relay not started"
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def authority(self) -> str:
        """`host:port` as a URL writes it (`[v6]:port`)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    async def close(self, grace_s: float = 1.0) -> None:
        """Stop accepting, let open connections finish for `grace_s`, then cut them.

        Every connection still emits its ConnClose, so the pipeline can flush
        what was in flight after this returns.
        """
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        flows = list(self.flows)
        if flows and grace_s > 0:
            await asyncio.wait([asyncio.ensure_future(f.done) for f in flows], timeout=grace_s)
        for flow in list(self.flows):
            flow.abort()
        remaining = [asyncio.ensure_future(f.done) for f in list(self.flows)]
        if remaining:
            await asyncio.wait(remaining, timeout=5.0)
        if self._server is not None:
            # wait_closed() would also wait for our own aborted transports; they are gone.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _sweep_idle(self) -> None:
        """One task for all connections: a flag per chunk is cheaper than a timer per chunk."""
        period = max(0.05, self.settings.idle_timeout_s / 2)
        while True:
            await asyncio.sleep(period)
            for flow in list(self.flows):
                if flow.active:
                    flow.active = False
                    flow.idle_strikes = 0
                else:
                    flow.idle_strikes += 1
                    if flow.idle_strikes >= 2:
                        self.counters.inc("relay.idle_closed")
                        flow.close_idle()

    # --- decisions shared by connections ------------------------------------------------------

    def new_conn_id(self) -> str:
        self._next_id += 1
        return f"{self._prefix}{self._next_id}"

    def route(self, host: str, port: int) -> tuple[str, int]:
        return self.routes.get((host, port), (host, port))

    def intercepts(self, host: str, port: int) -> bool:
        if not self.registry.is_ai_host(host, port):
            return False
        permitted = self._permitted.get(host)
        if permitted is None:
            permitted = bool(self.ca.permits(host))
            if len(self._permitted) < 4096:
                self._permitted[host] = permitted
        if not permitted:
            self._warn_once(
                (None, host),
                "%s is an AI host but outside the OISP Local CA's name constraints; it is"
                " tunnelled without capture (restart the sensor to re-issue the CA)",
                host,
            )
            return False
        return True

    def client_rejected(self, process: ProcessInfo | None, host: str, port: int, why: str) -> None:
        program = _program(process)
        self.counters.inc("relay.client_tls_rejections")
        if self.settings.tunnel_on_tls_failure:
            self.fallback.add((program, host, port))
            self.fallback_hosts.add((host, port))
            then = f"from now on {host} is tunnelled without capture for {program or 'this client'}"
        else:
            then = "the connection was closed (tunnel_on_tls_failure is off)"
        self._warn_once(
            (program, host),
            "%s rejected the sensor's certificate for %s (%s). To capture it, %s. Meanwhile %s.",
            program or "a client",
            host,
            why,
            TRUST_FIX,
            then,
        )

    def _warn_once(self, key: tuple[str | None, str], message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def _program(process: ProcessInfo | None) -> str | None:
    if process is None:
        return None
    return process.exe or process.name


# --- one client connection -----------------------------------------------------------------


class _Mode(enum.Enum):
    HEAD = 1  # reading the proxy request
    WAIT = 2  # CONNECT accepted; waiting for the upstream before answering
    RELAY = 3  # bytes flow (tunnel or interception)
    FORWARD = 4  # plain-HTTP proxying of absolute-form requests
    FAIL = 5  # the upstream failed after we took the client's TLS: reading the request for a 502
    CLOSED = 6


_HEAD, _WAIT, _RELAY, _FORWARD, _FAIL, _CLOSED = (
    _Mode.HEAD,
    _Mode.WAIT,
    _Mode.RELAY,
    _Mode.FORWARD,
    _Mode.FAIL,
    _Mode.CLOSED,
)

# A record waiting for attribution: (kind, ts_ns, data, conn_id, host, port, net-metadata).
_Held = tuple[CaptureKind, int, bytes, str, str, int, dict[str, Any] | None]


class _ClientConnection(asyncio.Protocol):
    """One accepted client: its proxy request, its upstream, and what is teed."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.mode = _HEAD
        self.active = True
        self.idle_strikes = 0
        self.raw_transport: asyncio.Transport | None = None
        self.out: asyncio.Transport | None = None  # where upstream bytes go (TLS or raw)
        self.client_tls = False
        self.head_buf = bytearray()
        self.peer: tuple[Any, ...] = ("", 0)
        self.host = ""
        self.port = 0
        self.conn_id = ""
        self.tee_on = False
        self.intercepted = False
        # upstream
        self.upstream: _Upstream | None = None
        self.up_transport: asyncio.Transport | None = None
        self.upstream_error: str | None = None
        self.upstream_closed = False
        self.upstream_resolved = False
        self.client_ready = False
        self.connecting: asyncio.Task[None] | None = None
        self.handshake: asyncio.Task[None] | None = None
        self.handshaking = False  # a handshake task runs (its own finally calls _maybe_finish)
        self.to_upstream: list[bytes] = []  # client bytes waiting for the upstream
        self.to_upstream_size = 0
        self.to_client: list[bytes] = []  # upstream bytes waiting for the client's TLS
        self.client_eof = False
        self.up_eof = False
        self.client_closed = False
        self.finished = False
        # tee gating: records wait until attribution is known and ConnOpen is out
        self.process: ProcessInfo | None = None
        self.pid: int | None = None
        self.meta: dict[str, Any] = {"attribution": "unknown"}
        self.attributed = False
        self.attribution: asyncio.Future[ProcessInfo | None] | None = None
        self.opened = False  # ConnOpen of the current conn_id produced
        self.before_open: list[_Held] = []
        self.backlog: list[_Held] = []
        self.accepted_ns = time.time_ns()
        self.framer: RequestFramer | None = None
        self.fail_timer: asyncio.TimerHandle | None = None
        self.fail_sent = False
        self.fail_ready = False
        self.net: dict[str, Any] = {}

    # --- asyncio callbacks: the client side ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        transport = cast(asyncio.Transport, transport)
        self.raw_transport = transport
        self.out = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)
        sockname = transport.get_extra_info("sockname") or ("", 0)
        relay = self.relay
        relay.flows.add(self)
        relay.counters.inc("relay.connections")
        # The cheap part now, while the client's socket surely exists; the rest in a thread.
        info, located = relay.attributor.quick(self.peer, sockname)
        if info is not None:
            self._set_process(info)
            return
        self.attribution = self.loop.run_in_executor(
            relay.executor, relay.attributor.lookup, self.peer, sockname, located
        )
        self.attribution.add_done_callback(self._attributed)

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode is _RELAY:  # the hot path
            self.active = True
            up = self.up_transport
            if up is not None:
                up.write(data)
            else:
                self._hold(data)
            if self.tee_on:
                self._tee(SSL_WRITE, data)
        elif mode is _HEAD:
            self._head_data(data)
        elif mode is _FORWARD:
            self.active = True
            self._forward_data(data)
        elif mode is _FAIL:
            self.active = True
            self._fail_data(data)

    def eof_received(self) -> bool | None:
        self.client_eof = True
        if self.mode in (_RELAY, _FORWARD) and not self.client_tls:
            # A raw TCP tunnel passes the half-close on (RFC 9293 §3.6).
            up = self.up_transport
            if up is not None and up.can_write_eof():
                up.write_eof()
            if self.up_eof:
                return None
            return True
        if self.mode is _FAIL and not self.fail_sent:
            self._send_502()
        self._close_upstream()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.client_closed = True
        self.mode = _CLOSED
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        if self.fail_timer is not None:
            self.fail_timer.cancel()
        self._close_upstream()
        self._maybe_finish()

    def pause_writing(self) -> None:
        # The client reads slower than the upstream sends: stop reading the upstream.
        if self.up_transport is not None:
            self.up_transport.pause_reading()

    def resume_writing(self) -> None:
        if self.up_transport is not None and not self.up_transport.is_closing():
            self.up_transport.resume_reading()

    # --- the proxy request -------------------------------------------------------------------

    def _head_data(self, data: bytes) -> None:
        buf = self.head_buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._reject(431, "Request Header Fields Too Large", "proxy request head too large")
            return
        head_bytes = bytes(buf[: end + 4])
        rest = bytes(buf[end + 4 :])
        try:
            head = parse_head(head_bytes)
        except FramingError as e:
            self._reject(400, "Bad Request", str(e))
            return
        if head.method == "CONNECT":
            self._connect_request(head, rest)
        elif head.target.startswith("http://"):
            self._forward_start(bytes(buf))
        else:
            self._reject(
                400,
                "Bad Request",
                "this is oisp-sensor's HTTP proxy: send CONNECT host:port or an absolute-form"
                " http:// request (set HTTPS_PROXY/HTTP_PROXY to this address)",
            )

    def _connect_request(self, head: RequestHead, rest: bytes) -> None:
        try:
            host, port = split_host_port(head.target)
        except ValueError as e:
            self._reject(400, "Bad Request", f"bad CONNECT target: {e}")
            return
        assert self.raw_transport is not None
        self.raw_transport.pause_reading()
        self.host, self.port = host, port
        self.conn_id = self.relay.new_conn_id()
        relay = self.relay
        plain = head.headers.get(PLAIN_TUNNEL_HEADER, "").lower() == "plain"
        if rest:
            # Bytes after CONNECT before our answer cannot be handed to TLS: tunnel them.
            relay.counters.inc("relay.connect_early_data")
            intercept = False
        elif plain:
            intercept = False
        else:
            intercept = relay.intercepts(host, port)
        self.to_upstream = [rest] if rest else []
        self.to_upstream_size = len(rest)
        if not intercept:
            self.out = None  # nothing from the upstream may precede our 200
            self.tee_on = plain and relay.registry.is_ai_host(host, port)
            self.intercepted = self.tee_on
            relay.counters.inc("relay.captured_plain" if self.tee_on else "relay.tunnelled")
            self.mode = _WAIT
            self.connecting = self.loop.create_task(self._open_tunnel())
            return
        if (host, port) in relay.fallback_hosts:
            self.mode = _WAIT
            self.handshaking = True
            self.handshake = self.loop.create_task(self._intercept_after_attribution())
            return
        self._begin_intercept()

    async def _intercept_after_attribution(self) -> None:
        """This host was rejected by some client: decide once we know which program this is."""
        try:
            await self._await_attribution()
        finally:
            self.handshaking = False
        if self.client_closed:
            self._maybe_finish()
            return
        fallback = self.relay.fallback
        program = _program(self.process)
        # A rejection by a client we could not identify applies to every client.
        if (program, self.host, self.port) in fallback or (None, self.host, self.port) in fallback:
            self.relay.counters.inc("relay.tunnelled_after_rejection")
            self.connecting = self.loop.create_task(self._open_tunnel())
            return
        self._begin_intercept()

    def _begin_intercept(self) -> None:
        self.relay.counters.inc("relay.intercepted")
        self.tee_on = True
        self.intercepted = True
        self.client_tls = True
        self.mode = _RELAY
        self.out = None  # until the client's TLS is up
        self.connecting = self.loop.create_task(self._open_upstream(tls=True))
        assert self.raw_transport is not None
        self.raw_transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.handshaking = True
        self.handshake = self.loop.create_task(self._client_handshake())

    async def _client_handshake(self) -> None:
        try:
            await self._client_handshake_inner()
        finally:
            self.handshaking = False
            self._maybe_finish()

    async def _client_handshake_inner(self) -> None:
        relay = self.relay
        try:
            context = await relay.ca.leaf_context_async(self.host)
            assert self.raw_transport is not None
            transport = await self.loop.start_tls(
                self.raw_transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
        except asyncio.CancelledError:
            raise
        except CaptureError as e:
            log.warning("cannot intercept %s: %s", self.host, e)
            self._client_tls_failed(str(e), rejected=False)
            return
        except (TimeoutError, ssl.SSLError, OSError, ConnectionError) as e:
            why, rejected = _describe_client_tls_error(e)
            if rejected:
                await self._await_attribution()  # the fallback is per program
            self._client_tls_failed(why, rejected=rejected)
            return
        if transport is None or self.client_closed:
            return
        self.out = transport
        self.client_ready = True
        if self.upstream_resolved:
            # ConnOpen waits for both sides, so it can tell a client-side TLS failure too.
            self._open_record()
        if self.to_client:
            for chunk in self.to_client:
                transport.write(chunk)
            self.to_client.clear()
        if self.fail_ready:
            self._send_502()
        elif self.upstream_error is not None and self.mode is _RELAY:
            self._enter_fail()

    async def _await_attribution(self) -> None:
        if self.attribution is not None and not self.attributed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.attribution), 2.0)
            await asyncio.sleep(0)  # let its done-callback run

    def _client_tls_failed(self, why: str, *, rejected: bool) -> None:
        self.relay.counters.inc("relay.client_tls_errors")
        if rejected:
            self.relay.client_rejected(self.process, self.host, self.port, why)
        if not self.opened and not self.finished:
            self.net = self._net_base()
            self.net["success"] = False
            self.net["error"] = f"client TLS handshake failed: {why}"
            self._open_record()
        self.tee_on = False
        self.mode = _CLOSED
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        self._close_upstream()
        if self.raw_transport is not None:
            self.raw_transport.abort()
        # The transport belonged to TLS, so our connection_lost may never be called.
        self.loop.call_soon(self._force_lost)

    # --- upstream connections ----------------------------------------------------------------

    async def _connect(self, tls: bool) -> tuple[asyncio.Transport, _Upstream] | str:
        """Connect (and for TLS, verify) the upstream; an error is returned as a readable reason."""
        addr, port = self.relay.route(self.host, self.port)
        started = time.perf_counter()
        net = self._net_base()
        # Published only if nothing else (a client TLS failure) has decided this connection:
        # wait_for can deliver a result after we were cancelled.
        if not self.opened:
            self.net = net
        try:
            transport, protocol = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Upstream(self),
                    addr,
                    port,
                    ssl=self.relay.upstream_ssl if tls else None,
                    server_hostname=self.host if tls else None,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if tls else None,
                ),
                CONNECT_TIMEOUT_S,
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            reason = _describe_upstream_error(e, self.host, self.port, (addr, port))
            net["success"] = False
            net["error"] = reason
            net["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.relay.counters.inc("relay.upstream_errors")
            log.info("upstream %s:%d failed: %s", self.host, self.port, reason)
            return reason
        net["success"] = True
        net["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        peer = transport.get_extra_info("peername")
        if peer:
            net["dest"]["ip"] = str(peer[0])
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            tls_info: dict[str, Any] = {"sni": self.host}
            version = sslobj.version()
            if version:
                tls_info["version"] = version
            cipher = sslobj.cipher()
            if cipher:
                tls_info["cipher_suite"] = cipher[0]
            alpn = sslobj.selected_alpn_protocol()
            if alpn:
                tls_info["alpn"] = alpn
            net["tls"] = tls_info
        assert isinstance(protocol, _Upstream)
        return transport, protocol

    async def _open_upstream(self, *, tls: bool) -> None:
        """Interception: the client's handshake runs meanwhile; its bytes wait in `to_upstream`."""
        result = await self._connect(tls)
        self.upstream_resolved = True
        if isinstance(result, str):
            self.upstream_error = result
            if self.out is not None and self.mode is _RELAY:
                self._enter_fail()
        if self.client_ready:
            self._open_record()

    async def _open_tunnel(self) -> None:
        """A CONNECT we do not decrypt: answer 200 only once the upstream is reachable."""
        result = await self._connect(tls=False)
        assert self.raw_transport is not None
        if isinstance(result, str):
            self._open_record()
            self._reject(502, "Bad Gateway", result)
            return
        self._open_record()
        self.mode = _RELAY
        self.raw_transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for chunk in self.to_client:
            self.raw_transport.write(chunk)
        self.to_client.clear()
        self.out = self.raw_transport
        self.raw_transport.resume_reading()

    def _upstream_made(self, upstream: _Upstream, transport: asyncio.Transport) -> None:
        if self.client_closed or self.mode is _CLOSED:
            transport.close()
            return
        self.upstream = upstream
        self.up_transport = transport
        self.upstream_closed = False
        if self.to_upstream:
            for chunk in self.to_upstream:
                transport.write(chunk)
            self.to_upstream.clear()
            if self.to_upstream_size > HOLD_LIMIT and self.raw_transport is not None:
                self._resume_client_reading()
            self.to_upstream_size = 0
        if self.client_eof and not self.client_tls and transport.can_write_eof():
            transport.write_eof()

    def _hold(self, data: bytes) -> None:
        """Client bytes before the upstream is there (or after it failed)."""
        if self.upstream_error is not None:
            self._enter_fail()
            self._fail_data(data)
            return
        self.to_upstream.append(data)
        self.to_upstream_size += len(data)
        if self.to_upstream_size > HOLD_LIMIT:
            self._pause_client_reading()

    def _pause_client_reading(self) -> None:
        out = self.out if self.client_tls else self.raw_transport
        if out is not None and not out.is_closing():
            out.pause_reading()

    def _resume_client_reading(self) -> None:
        out = self.out if self.client_tls else self.raw_transport
        if out is not None and not out.is_closing():
            out.resume_reading()

    def _upstream_eof(self, upstream: _Upstream) -> bool | None:
        if upstream is not self.upstream:
            return None
        self.up_eof = True
        out = self.out
        if not self.client_tls and out is not None:
            if out.can_write_eof() and not out.is_closing():
                out.write_eof()
            if self.client_eof:
                return None
            return True
        return None

    def _upstream_lost(self, upstream: _Upstream) -> None:
        if upstream is not self.upstream:
            return
        self.upstream_closed = True
        self.up_transport = None
        if not self.client_closed:
            self._close_client()  # the upstream (or plain-HTTP origin) closed: so do we
        self._maybe_finish()

    def _close_upstream(self) -> None:
        if self.up_transport is not None and not self.up_transport.is_closing():
            self.up_transport.close()

    def _close_client(self) -> None:
        out = self.out or self.raw_transport
        if out is not None and not out.is_closing():
            out.close()

    def abort(self) -> None:
        """Cut the connection now (sensor shutdown)."""
        for task in (self.handshake, self.connecting):
            if task is not None and not task.done():
                task.cancel()
        if self.up_transport is not None:
            self.up_transport.abort()
        if self.raw_transport is not None:
            self.raw_transport.abort()
        if not self.client_closed:
            # connection_lost follows from the loop; make sure of it for odd transports.
            self.loop.call_soon(self._force_lost)

    def _force_lost(self) -> None:
        if not self.client_closed:
            self.connection_lost(None)

    def close_idle(self) -> None:
        log.debug("closing idle connection to %s", self.host or self.peer)
        self._close_upstream()
        self._close_client()
        if self.mode in (_HEAD, _WAIT):
            self.abort()

    # --- plain HTTP (absolute-form) ------------------------------------------------------------

    def _forward_start(self, data: bytes) -> None:
        self.mode = _FORWARD
        self.framer = RequestFramer(MAX_HEAD)
        self._forward_data(data)

    def _forward_data(self, data: bytes) -> None:
        assert self.framer is not None
        try:
            segments = self.framer.feed(data)
        except FramingError as e:
            self.relay.counters.inc("relay.bad_requests")
            log.info("plain HTTP proxy request from %s: %s", self.peer, e)
            self._close_client()
            return
        for seg in segments:
            if isinstance(seg, RequestHead):
                self._forward_head(seg)
            elif isinstance(seg, BodyBytes):
                self._forward_bytes(seg.raw)

    def _forward_head(self, head: RequestHead) -> None:
        try:
            parts = urlsplit(head.target)
            if parts.scheme != "http" or not parts.netloc:
                raise ValueError("not an absolute http:// URL")
            host, port = split_host_port(parts.netloc.rsplit("@", 1)[-1], 80)
        except ValueError as e:
            self.relay.counters.inc("relay.bad_requests")
            log.info("plain HTTP proxy request from %s: bad target: %s", self.peer, e)
            self._close_client()
            return
        if (host, port) != (self.host, self.port):
            self._switch_origin(host, port)
        self._forward_bytes(head.raw)

    def _switch_origin(self, host: str, port: int) -> None:
        """A new origin on this client connection: a new upstream and a new captured connection."""
        if self.conn_id:
            self._end_capture()
            old = self.up_transport
            self.upstream = None
            self.up_transport = None
            if old is not None:
                old.close()
        self.host, self.port = host, port
        self.conn_id = self.relay.new_conn_id()
        self.accepted_ns = time.time_ns()
        self.opened = False
        self.upstream_error = None
        self.tee_on = self.intercepted = self.relay.registry.is_ai_host(host, port)
        self.relay.counters.inc("relay.forwarded_captured" if self.tee_on else "relay.forwarded")
        self.connecting = self.loop.create_task(self._open_forward())

    async def _open_forward(self) -> None:
        result = await self._connect(tls=False)
        self._open_record()
        if isinstance(result, str):
            self.upstream_error = result
            self.to_upstream.clear()
            self._write_502(result)
            self._close_client()

    def _forward_bytes(self, data: bytes) -> None:
        up = self.up_transport
        if up is not None:
            up.write(data)
        elif self.upstream_error is None:
            self.to_upstream.append(data)
            self.to_upstream_size += len(data)
            if self.to_upstream_size > HOLD_LIMIT:
                self._pause_client_reading()
        if self.tee_on:
            self._tee(SSL_WRITE, data)

    # --- the 502 path ------------------------------------------------------------------------

    def _enter_fail(self) -> None:
        """The upstream failed after the client's TLS came up: read its request, answer 502."""
        if self.mode is _FAIL:
            return
        self.mode = _FAIL
        self.framer = RequestFramer(MAX_HEAD)
        held, self.to_upstream = self.to_upstream, []
        self.to_upstream_size = 0
        self._resume_client_reading()
        for chunk in held:
            self._fail_data(chunk, tee=False)  # already teed when it arrived

    def _fail_data(self, data: bytes, *, tee: bool = True) -> None:
        if tee and self.tee_on:
            self._tee(SSL_WRITE, data)
        if self.fail_sent or self.framer is None:
            return
        try:
            segments = self.framer.feed(data)
        except FramingError:
            self._send_502()
            return
        for seg in segments:
            if isinstance(seg, RequestEnd):
                self._send_502()
                return
            if isinstance(seg, RequestHead) and self.fail_timer is None:
                self.fail_timer = self.loop.call_later(EARLY_502_DELAY_S, self._send_502)

    def _send_502(self) -> None:
        if self.fail_sent or self.client_closed:
            return
        if self.out is None:  # the client's TLS is up but start_tls has not returned yet
            self.fail_ready = True
            return
        self.fail_sent = True
        if self.fail_timer is not None:
            self.fail_timer.cancel()
        self._write_502(self.upstream_error or "upstream unavailable")
        self._close_client()

    def _write_502(self, reason: str) -> None:
        response = error_response(502, "Bad Gateway", reason)
        out = self.out
        if out is not None and not out.is_closing():
            out.write(response)
        if self.tee_on:
            self._tee(SSL_READ, response)

    def _reject(self, status: int, phrase: str, reason: str) -> None:
        """Answer the proxy request itself with an error (before any tunnel exists) and close."""
        counters = self.relay.counters
        counters.inc("relay.bad_requests" if status != 502 else "relay.tunnel_errors")
        if status != 502:
            log.info("proxy request from %s:%s refused: %s", self.peer[0], self.peer[1], reason)
        transport = self.raw_transport
        if transport is not None and not transport.is_closing():
            transport.write(error_response(status, phrase, reason))
            transport.close()
        self.mode = _CLOSED

    # --- teeing ------------------------------------------------------------------------------

    def _net_base(self) -> dict[str, Any]:
        net: dict[str, Any] = {"dest": {"domain": self.host, "port": self.port}, "protocol": "tcp"}
        if self.peer and self.peer[0]:
            net["src"] = {"ip": str(self.peer[0]), "port": int(self.peer[1])}
        return net

    def _open_record(self) -> None:
        """ConnOpen for the current conn_id; data teed before it is released after it."""
        if self.opened or not self.conn_id:
            return
        self.opened = True
        meta = {"net": self.net or self._net_base(), "intercepted": self.intercepted}
        record: _Held = (
            CaptureKind.CONN_OPEN,
            self.accepted_ns,
            b"",
            self.conn_id,
            self.host,
            self.port,
            meta,
        )
        self.backlog.append(record)
        if self.before_open:
            self.backlog += self.before_open
            self.before_open = []
        if self.attributed:
            self._flush()

    def _tee(self, kind: CaptureKind, data: bytes) -> None:
        if self.attributed and self.opened and not self.backlog:
            self.relay.submit(
                RawCapture(
                    kind=kind,
                    timestamp_ns=time.time_ns(),
                    data=data,
                    pid=self.pid,
                    conn_id=self.conn_id,
                    metadata=self.meta,
                    remote_host=self.host,
                    remote_port=self.port,
                    capture_method="mitm_proxy",
                )
            )
            return
        record: _Held = (kind, time.time_ns(), data, self.conn_id, self.host, self.port, None)
        if self.opened:
            self.backlog.append(record)
        else:
            self.before_open.append(record)

    def _end_capture(self) -> None:
        """ConnClose for the current conn_id (an open without a close would leak decoder state)."""
        if not self.conn_id:
            return
        if not self.opened:
            if not self.net:
                self.net = self._net_base()
                self.net["success"] = False
                self.net["error"] = "the client closed the connection before it was established"
            self._open_record()
        self.before_open = []
        self.backlog.append(
            (CaptureKind.CONN_CLOSE, time.time_ns(), b"", self.conn_id, self.host, self.port, None)
        )
        if self.attributed:
            self._flush()

    def _flush(self) -> None:
        submit = self.relay.submit
        pid, meta = self.pid, self.meta
        for kind, ts, data, conn_id, host, port, extra in self.backlog:
            submit(
                RawCapture(
                    kind=kind,
                    timestamp_ns=ts,
                    data=data,
                    pid=pid,
                    conn_id=conn_id,
                    metadata={**meta, **extra} if extra else meta,
                    remote_host=host,
                    remote_port=port,
                    capture_method="mitm_proxy",
                )
            )
        self.backlog.clear()
        if self.finished and not self.done.done():
            self.done.set_result(None)

    def _attributed(self, future: asyncio.Future[ProcessInfo | None]) -> None:
        info = None
        if not future.cancelled() and future.exception() is None:
            info = future.result()
        self._set_process(info)

    def _set_process(self, info: ProcessInfo | None) -> None:
        self.process = info
        if info is not None:
            self.pid = info.pid
            self.meta = info.metadata()
        self.attributed = True
        self._flush()

    def _maybe_finish(self) -> None:
        if self.finished or not self.client_closed:
            return
        if self.handshaking:
            return  # the handshake task is still deciding; it calls us again when it ends
        if self.up_transport is not None and not self.upstream_closed:
            return  # its connection_lost comes next and calls us again
        self.finished = True
        # Still listed until its records are out (attribution may be late): close() waits.
        self.done.add_done_callback(lambda _: self.relay.flows.discard(self))
        self._end_capture()
        if self.attributed or not self.conn_id:
            if not self.done.done():
                self.done.set_result(None)


class _Upstream(asyncio.Protocol):
    """The relay's connection to the real server; hands everything to its client connection."""

    __slots__ = ("client",)

    def __init__(self, client: _ClientConnection) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client._upstream_made(self, cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client.upstream is not self:
            return
        client.active = True
        out = client.out
        if out is not None:
            out.write(data)
        else:
            client.to_client.append(data)
        if client.tee_on:
            client._tee(SSL_READ, data)

    def eof_received(self) -> bool | None:
        return self.client._upstream_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._upstream_lost(self)

    def pause_writing(self) -> None:
        self.client._pause_client_reading()

    def resume_writing(self) -> None:
        self.client._resume_client_reading()


# --- messages ------------------------------------------------------------------------------


def error_response(status: int, phrase: str, reason: str) -> bytes:
    """A complete HTTP/1.1 error response that says, in JSON and in a header, what went wrong."""
    one_line = " ".join(reason.split())
    header_value = one_line.encode("ascii", "replace").decode("ascii")[:512]
    kind = "oisp_sensor_upstream_error" if status == 502 else "oisp_sensor_proxy_error"
    body = orjson.dumps({"error": {"type": kind, "message": one_line}})
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-OISP-Sensor-Error: {header_value}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _describe_upstream_error(
    error: BaseException, host: str, port: int, addr: tuple[str, int]
) -> str:
    where = f"{host}:{port}" if (host, port) == addr else f"{host}:{port} (via {addr[0]}:{addr[1]})"
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or error.reason or str(error)
        return f"the certificate of {where} failed verification: {detail}"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {where} failed: {error.reason or error}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {addr[0]}: {error.strerror}"
    if isinstance(error, ConnectionRefusedError):
        return f"connection to {where} refused"
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out connecting to {where}"
    if isinstance(error, OSError):
        return f"cannot connect to {where}: {error.strerror or error}"
    return f"cannot connect to {where}: {error}"


def _describe_client_tls_error(error: BaseException) -> tuple[str, bool]:
    """(what happened, whether it means the client refuses our certificate).

    Refusal is what a client that does not trust our CA (or pins its provider's key)
    does: a certificate alert, or hanging up mid-handshake. A client that is simply
    not speaking TLS is not refusing anything, and gets no fallback.
    """
    if isinstance(error, ssl.SSLError):
        reason = (error.reason or str(error)).lower()
        text = reason.replace("_", " ")
        if "wrong_version_number" in reason or "http_request" in reason:
            return "the client did not start TLS after CONNECT", False
        return text, any(marker in reason for marker in _REFUSALS)
    if isinstance(error, TimeoutError):
        return "the TLS handshake timed out", False
    return "the client closed the connection during the TLS handshake", True


_REFUSALS = (
    "unknown_ca",
    "bad_certificate",
    "certificate_unknown",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "access_denied",
    "no_application_protocol",
    "handshake_failure",
)
