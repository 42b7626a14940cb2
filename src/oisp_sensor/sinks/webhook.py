"""POST events to any HTTP endpoint: a SIEM, a chat-ops bot, a team's own collector.

Batches of OISP events go out as a JSON array (`application/json`) or one event per
line (`application/x-ndjson`), through the shared `Outbox`: bounded buffer, retries
with backoff on timeouts, 408, 429 and 5xx (honouring Retry-After), drops counted.

With a shared secret every request is signed, so the receiver can tell the events
came from this sensor and were not replayed:

    X-OISP-Timestamp: 1767225600                       (unix seconds, set per attempt)
    X-OISP-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<raw body>"))
    X-OISP-Delivery:  01KDV...                         (same on every retry: dedupe on it)

`verify_signature` is the receiver's side of that contract.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from oisp_sensor.config import SinksConfig
from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.events.ulid import new_ulid
from oisp_sensor.sinks.delivery import (
    DeliveryPolicy,
    HttpPoster,
    Outbox,
    Request,
    Sleep,
    parse_headers,
    redacted_url,
)

SIGNATURE_HEADER = "X-OISP-Signature"
TIMESTAMP_HEADER = "X-OISP-Timestamp"
DELIVERY_HEADER = "X-OISP-Delivery"
log = logging.getLogger(__name__)

CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    url: str
    secret: str = ""
    types: tuple[str, ...] = ()  # exact types, or "family.*"; empty = every event
    format: str = "json"  # or "ndjson"
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str = ""
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, sinks: SinksConfig) -> WebhookSettings:
        return cls(
            url=sinks.webhook_url,
            secret=sinks.webhook_secret,
            types=sinks.webhook_types,
            format=sinks.webhook_format,
            headers=parse_headers(sinks.webhook_headers),
            ca_file=sinks.webhook_ca_file,
            timeout_s=sinks.webhook_timeout_s,
        )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-OISP-Signature value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """For receivers: True when the signature matches and the timestamp is recent.

    The timestamp is inside the signed text, so a captured request cannot be
    replayed later with a fresh timestamp; `tolerance_s` bounds how late is late.
    """
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class TypeFilter:
    """Which event types to send: exact names, or a family such as `agent.*`."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.exact = frozenset(p for p in patterns if not p.endswith(".*"))
        self.families = tuple(p[:-1] for p in patterns if p.endswith(".*"))  # keep the dot
        self.everything = not patterns

    def __call__(self, event_type: str) -> bool:
        return (
            self.everything
            or event_type in self.exact
            or any(event_type.startswith(f) for f in self.families)
        )


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        counters: Counters | None = None,
        policy: DeliveryPolicy | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.counters = counters or Counters()
        self.wanted = TypeFilter(settings.types)
        self._clock = clock
        self._http = HttpPoster(
            timeout_s=settings.timeout_s, headers=settings.headers, ca_file=settings.ca_file
        )
        self.outbox: Outbox[Event, Request] = Outbox(
            self.name,
            prepare=self.prepare,
            send=self.send,
            counters=self.counters,
            policy=policy or DeliveryPolicy(max_batch=100),
            sleep=sleep,
        )

    async def start(self) -> None:
        await self._http.start()
        await self.outbox.start()
        log.info("webhook: posting events to %s", redacted_url(self.settings.url))

    async def write(self, batch: Sequence[Event]) -> None:
        self.outbox.put([e for e in batch if self.wanted(e.event_type)])

    async def close(self) -> None:
        try:
            await self.outbox.close()
        finally:
            await self._http.close()

    def prepare(self, batch: list[Event]) -> list[Request]:
        events = [e.json_bytes() for e in batch]
        if self.settings.format == "ndjson":
            body = b"".join(e + b"\n" for e in events)
        else:
            body = b"[" + b",".join(events) + b"]"
        return [Request(body=body, count=len(batch), unit="events", tag=new_ulid(time.time_ns()))]

    async def send(self, request: Request) -> None:
        headers = {
            "Content-Type": CONTENT_TYPES[self.settings.format],
            DELIVERY_HEADER: request.tag,
        }
        if self.settings.secret:
            timestamp = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, timestamp, request.body)
        await self._http.post(self.settings.url, request.body, headers)
