"""Getting events to a remote destination without ever holding up capture.

The exporters (OTLP, webhook, Kafka) share this: `write()` only appends events to
a bounded `Outbox` and returns, so the SinkRunner — and capture behind it — never
waits on a network. One sender task per exporter takes up to `max_batch` events
(waiting `linger_s` for a fuller batch), encodes them once, and delivers each
request with retries and exponential backoff, honouring a server's Retry-After.

Memory is bounded: while a destination is down the outbox holds at most `buffer`
events plus the batch in flight; beyond that new events are dropped and counted
(`sink.<name>.buffer_full`), never queued without limit. A batch that keeps failing
for `max_retry_s` is dropped and counted (`gave_up_<unit>`), one the destination
refuses outright is dropped at once (`rejected_<unit>`). `close()` delivers what is
left for at most `shutdown_s`, then counts the rest as `unsent_at_exit_<unit>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import certifi

from oisp_sensor import __version__
from oisp_sensor.counters import Counters
from oisp_sensor.errors import SinkError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound="Deliverable")
USER_AGENT = f"oisp-sensor/{__version__}"


class RetryableError(SinkError):
    """The destination could not take the request now (down, overloaded, 429/503)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(SinkError):
    """The destination refused the request for good (bad auth, bad URL, malformed body)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    buffer: int = 10_000  # events held while the destination is unreachable
    max_batch: int = 512  # events per request
    linger_s: float = 1.0  # how long a partial batch waits for more events
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_s: float = 300.0  # one request is retried this long, then dropped
    shutdown_s: float = 5.0  # close() delivers what is left for at most this long

    def backoff(self, attempt: int) -> float:
        """Exponential, with jitter so a fleet of sensors does not retry in lockstep."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2**attempt)
        return float(base * random.uniform(0.5, 1.0))


class Deliverable(Protocol):
    """What the outbox retries as a unit; `count` and `unit` name it in the counters."""

    @property
    def count(self) -> int: ...
    @property
    def unit(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Request:
    """One encoded HTTP request body: what is retried as a unit."""

    body: bytes
    count: int  # spans, log records or events in it, for the counters
    unit: str  # "spans", "logs", "events"
    tag: str = ""  # what the sender needs besides the body (OTLP: the signal)


Prepare = Callable[[list[T]], Sequence[R]]
Send = Callable[[R], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class Outbox(Generic[T, R]):
    """A bounded buffer of items and the one task that delivers them, in order."""

    def __init__(
        self,
        name: str,
        *,
        prepare: Prepare[T, R],
        send: Send[R],
        counters: Counters,
        policy: DeliveryPolicy,
        sleep: Sleep | None = None,  # tests pass a fake clock's sleep
        offload: bool = False,
    ) -> None:
        self.name = name
        self.prepare = prepare
        self.send = send
        self.counters = counters
        self.policy = policy
        self._sleep = sleep or asyncio.sleep
        # Encode in a worker thread: the loop keeps serving capture while a big batch is
        # encoded (events are immutable once redacted; one sender, so `prepare` never
        # runs twice at once).
        self.offload = offload
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()  # there is something to send
        self._full = asyncio.Event()  # there is a whole batch to send
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[R] = []
        self._encoding = 0  # events taken from the buffer, not yet encoded
        self._warned: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: Sequence[T]) -> None:
        """Take what fits; count the rest as dropped. Never waits."""
        room = self.policy.buffer - len(self._items)
        if room < len(items):
            self.counters.inc(f"sink.{self.name}.buffer_full", len(items) - max(room, 0))
            self._warn("buffer_full", "%s: destination too slow or down; dropping events", 60.0)
            items = items[: max(room, 0)]
        if not items:
            return
        self._items.extend(items)
        self._ready.set()
        if len(self._items) >= self.policy.max_batch:
            self._full.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sink-{self.name}-sender")

    async def close(self) -> None:
        """Deliver what is buffered for at most `shutdown_s`; count what could not go."""
        if self._task is None:
            return
        self._closing = True
        self._ready.set()
        self._full.set()
        task, self._task = self._task, None
        try:
            await asyncio.wait_for(asyncio.shield(task), self.policy.shutdown_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        left: dict[str, int] = {}
        for request in self._inflight:
            left[request.unit] = left.get(request.unit, 0) + request.count
        if self._items or self._encoding:
            left["events"] = left.get("events", 0) + len(self._items) + self._encoding
            self._items.clear()
        for unit, n in left.items():
            self.counters.inc(f"sink.{self.name}.unsent_at_exit_{unit}", n)
            log.warning("%s: %d %s not delivered before exit", self.name, n, unit)

    # --- the sender ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._items:
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            if len(self._items) < self.policy.max_batch and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.policy.linger_s)
            batch = [
                self._items.popleft() for _ in range(min(len(self._items), self.policy.max_batch))
            ]
            if len(self._items) < self.policy.max_batch:
                self._full.clear()
            self._encoding = len(batch)
            try:
                if self.offload:
                    self._inflight = list(await asyncio.to_thread(self.prepare, batch))
                else:
                    self._inflight = list(self.prepare(batch))
            except Exception:  # an encoding bug must not stop the exporter
                self.counters.inc(f"sink.{self.name}.errors")
                log.exception("%s: could not encode %d events; dropped", self.name, len(batch))
                continue
            finally:
                self._encoding = 0
            while self._inflight:
                await self._deliver(self._inflight[0])
                self._inflight.pop(0)

    async def _deliver(self, request: R) -> None:
        prefix = f"sink.{self.name}"
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                await self.send(request)
            except RetryableError as e:
                delay = e.retry_after if e.retry_after is not None else self.policy.backoff(attempt)
                waited = time.monotonic() - started
                if waited + delay > self.policy.max_retry_s:
                    self.counters.inc(f"{prefix}.gave_up_{request.unit}", request.count)
                    log.warning(
                        "%s: giving up on %d %s after %.0f s: %s",
                        self.name,
                        request.count,
                        request.unit,
                        waited,
                        e,
                    )
                    return
                self.counters.inc(f"{prefix}.retries")
                self._warn(str(e), f"%s: %s; retrying in {delay:.1f} s", 30.0, e)
                attempt += 1
                await self._sleep(delay)
                continue
            except RejectedError as e:
                self.counters.inc(f"{prefix}.rejected_{request.unit}", request.count)
                self._warn(str(e), "%s: %s; dropped", 30.0, e)
                return
            except Exception:  # a bug in a sender: count it, keep the exporter alive
                self.counters.inc(f"{prefix}.errors")
                log.exception(
                    "%s: unexpected error delivering %d %s", self.name, request.count, request.unit
                )
                return
            self.counters.inc(f"{prefix}.sent_{request.unit}", request.count)
            return

    def _warn(self, key: str, message: str, every_s: float, *args: object) -> None:
        """Log a failure once per `every_s`: an outage must not flood the log."""
        now = time.monotonic()
        if len(self._warned) > 100:  # messages that vary must not grow this without bound
            self._warned.clear()
        if now - self._warned.get(key, -every_s) >= every_s:
            self._warned[key] = now
            log.warning(message, self.name, *args)


# --- HTTP ----------------------------------------------------------------------------------------

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def parse_headers(items: Sequence[str]) -> dict[str, str]:
    """`("Name=Value", ...)` from the config into a header dict (validated there)."""
    out: dict[str, str] = {}
    for item in items:
        name, _, value = item.partition("=")
        out[name.strip()] = value.strip()
    return out


def redacted_url(url: str) -> str:
    """scheme://host[:port]/path only: user info and query strings often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """The usual public roots (certifi), plus the user's own CA for a private collector."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise SinkError(f"cannot load CA file {ca_file}: {e}") from e
    return context


class HttpPoster:
    """POSTs request bodies; turns every outcome into success, RetryableError or RejectedError.

    Configured headers (auth) go on every request and are never logged; error
    messages name the URL without its query string or user info.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
        ca_file: str = "",
        retry_status: frozenset[int] = RETRYABLE_STATUS,
    ) -> None:
        self.timeout_s = timeout_s
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.ca_file = ca_file
        self.retry_status = retry_status
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        import aiohttp  # here, not at the top: a sensor without HTTP exporters never pays for it

        connector = aiohttp.TCPConnector(ssl=tls_context(self.ca_file), limit=4)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers=self.headers,
            auto_decompress=True,
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The response body of a 2xx; raises for anything else."""
        if self._session is None:
            raise SinkError("HTTP exporter used before start()")
        import aiohttp  # already loaded by start()

        where = redacted_url(url)
        try:
            # aiohttp copies large bytes bodies on the loop (and warns); a stream it does not.
            data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > 1 << 20 else body
            async with self._session.post(url, data=data, headers=headers) as response:
                payload = await response.read()
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError as e:
            raise RetryableError(f"{where}: no answer within {self.timeout_s:g} s") from e
        except aiohttp.ClientConnectorCertificateError as e:
            raise RejectedError(
                f"{where}: TLS certificate not trusted ({e.certificate_error})"
            ) from e
        except aiohttp.ClientSSLError as e:
            raise RejectedError(f"{where}: TLS failed: {e}") from e
        except (aiohttp.ClientError, OSError) as e:
            raise RetryableError(f"{where}: {type(e).__name__}: {e}") from e
        if 200 <= status < 300:
            return payload
        detail = _snippet(payload, response.content_type)
        message = f"{where}: HTTP {status}{': ' + detail if detail else ''}"
        if status in self.retry_status:
            raise RetryableError(message, retry_after)
        raise RejectedError(message)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _snippet(payload: bytes, content_type: str) -> str:
    """A short, printable excerpt of an error body (never binary protobuf)."""
    if not payload or not (content_type.startswith("text/") or "json" in content_type):
        return ""
    text = payload[:200].decode("utf-8", "replace")
    return " ".join(text.split())
