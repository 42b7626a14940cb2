"""The benchmark's client: a raw asyncio HTTP/1.1-over-TLS load generator.

An SDK or httpx would spend more CPU per request than the proxies under test, and on
a 2-core machine the client competes with them for the same cores. So this speaks
just enough HTTP/1.1 (Content-Length and chunked responses, CONNECT), writes the next
request from inside `data_received` in throughput mode (no task switch per request),
and reports its own CPU time so a reader can see where the cores went.

One process runs one operation, given as JSON on the command line:

    python bench/loadgen.py '{"op": "latency", "target": {...}, ...}'

It sets up (connects, warms up), prints `READY`, waits for a line on stdin (`GO`),
runs, and prints one JSON line with the results. bench/run.py starts several at once
and releases them together.

Ops: latency (sequential keep-alive requests), newconn (a new TCP + CONNECT + TLS
connection per request), sse (concurrent streams: time to first chunk, per-chunk
delay from the upstream's send stamp), throughput (closed loop on N keep-alive
connections for a duration or until a request count is reached).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

SNI = "api.openai.com"
CONNECT_REQUEST = b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n"
_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "Write one sentence about foxes and dogs, please."},
]


def request_bytes(kind: str) -> bytes:
    """An OpenAI SDK-shaped chat request; the query flag tells the upstream what to send."""
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 256}
    target = "/v1/chat/completions"
    if kind == "sse":
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        target += "?bench=sse"
    elif kind == "large":
        target += "?bench=large"
    raw = json.dumps(body, separators=(",", ":")).encode()
    return (
        f"POST {target} HTTP/1.1\r\n"
        f"Host: {SNI}\r\n"
        "Accept: application/json\r\n"
        "Content-Type: application/json\r\n"
        "User-Agent: oisp-bench-loadgen/1\r\n"
        "Authorization: Bearer sk-bench-0000000000000000000000000000000000000000\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


COMPLETED = [0]  # every response this process received, warm-ups included (for the tallies)
_HEAD, _BODY, _SIZE, _DATA, _DATA_CRLF, _TRAILER = range(6)
_STAMP = b'"bench_sent_ns":'


class ClientProtocol(asyncio.Protocol):
    """Parses responses as they arrive and reports each one's completion time.

    `on_done(status, now_ns)` fires when a response is complete; `on_event(event,
    now_ns)` fires for each SSE event (split on blank lines, so a proxy that re-chunks
    the body changes nothing).
    """

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray()
        self.state = _HEAD
        self.left = 0
        self.status = 0
        self.head_only = False  # the response to CONNECT has no body
        self.on_done: Callable[[int, int], None] | None = None
        self.on_event: Callable[[bytes, int], None] | None = None
        self.sse = bytearray()
        self.waiter: asyncio.Future[tuple[int, int]] | None = None
        self.lost: BaseException | None = None
        self.received = 0  # plaintext bytes, a cross-check that responses really arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def expect(self) -> asyncio.Future[tuple[int, int]]:
        """A future for the next response: (status, completion time in monotonic ns)."""
        self.waiter = asyncio.get_running_loop().create_future()
        if self.lost is not None:
            self.waiter.set_exception(self.lost)
        self.on_done = self._resolve
        return self.waiter

    def _resolve(self, status: int, now: int) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, now))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.received += len(data)
        buf = self.buf
        buf += data
        while buf:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                del buf[: end + 4]
                self.status = int(head[9:12])
                if self.head_only:
                    self.head_only = False
                    COMPLETED[0] -= 1  # a CONNECT answer is not a request through the proxy
                    self._done(now)
                    continue
                if b"\r\ntransfer-encoding: chunked" in head:
                    self.state = _SIZE
                    continue
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    raise RuntimeError("response without Content-Length or chunked framing")
                stop = head.find(b"\r\n", at + 2)
                self.left = int(head[at + 17 : stop if stop >= 0 else len(head)])
                self.state = _BODY
                if self.left == 0:
                    self._done(now)
            elif state == _BODY:
                take = min(self.left, len(buf))
                del buf[:take]
                self.left -= take
                if self.left == 0:
                    self._done(now)
            elif state == _SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[: end + 2]
                self.left = size
                self.state = _DATA if size else _TRAILER
            elif state == _DATA:
                take = min(self.left, len(buf))
                if self.on_event is not None:
                    self._feed_sse(buf[:take], now)
                del buf[:take]
                self.left -= take
                if self.left == 0:
                    self.state = _DATA_CRLF
            elif state == _DATA_CRLF:
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = _SIZE
            else:  # _TRAILER: header lines until an empty one
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                del buf[: end + 2]
                if end == 0:
                    self._done(now)

    def _feed_sse(self, payload: bytearray, now: int) -> None:
        sse = self.sse
        sse += payload
        while (end := sse.find(b"\n\n")) >= 0:
            event = bytes(sse[:end])
            del sse[: end + 2]
            assert self.on_event is not None
            self.on_event(event, now)

    def _done(self, now: int) -> None:
        self.state = _HEAD
        COMPLETED[0] += 1
        if self.on_done is not None:
            self.on_done(self.status, now)


def client_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def connect(
    target: dict[str, Any], ctx: ssl.SSLContext, phases: dict[str, list[int]] | None = None
) -> ClientProtocol:
    """A TLS connection to api.openai.com: directly, or through the proxy with CONNECT.

    `phases`, when given, collects how long each step took (ns): tcp, connect (the
    proxy's 200 to CONNECT), tls — where a slow new connection spends its time.
    """
    loop = asyncio.get_running_loop()
    proxy = target.get("proxy")
    start = time.monotonic_ns()
    if proxy is None:
        host, port = target["upstream"]
        _, proto = await loop.create_connection(
            ClientProtocol, host, port, ssl=ctx, server_hostname=SNI
        )
        if phases is not None:
            phases["tls"].append(time.monotonic_ns() - start)
        return proto
    raw, proto = await loop.create_connection(ClientProtocol, proxy[0], proxy[1])
    tcp_done = time.monotonic_ns()
    proto.head_only = True
    waiter = proto.expect()
    raw.write(CONNECT_REQUEST)
    status, connect_done = await waiter
    if status != 200:
        raise ConnectionError(f"proxy answered CONNECT with {status}")
    proto.transport = await loop.start_tls(raw, proto, ctx, server_hostname=SNI)
    if phases is not None:
        phases["tcp"].append(tcp_done - start)
        phases["connect"].append(connect_done - tcp_done)
        phases["tls"].append(time.monotonic_ns() - connect_done)
    return proto


async def request(proto: ClientProtocol, payload: bytes) -> tuple[int, int, int]:
    """Send one request, wait for its response: (status, sent ns, completed ns)."""
    waiter = proto.expect()
    sent = time.monotonic_ns()
    proto.transport.write(payload)
    status, done = await waiter
    return status, sent, done


async def wait_for_go() -> float:
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    return time.process_time()


async def op_latency(spec: dict[str, Any], ctx: ssl.SSLContext) -> dict[str, Any]:
    payload = request_bytes(spec.get("kind", "small"))
    proto = await connect(spec["target"], ctx)
    for _ in range(spec.get("warmup", 20)):
        await request(proto, payload)
    cpu0 = await wait_for_go()
    samples, errors = [], 0
    for _ in range(spec["n"]):
        status, sent, done = await request(proto, payload)
        samples.append(done - sent)
        errors += status != 200
    proto.transport.close()
    return {"latency_ns": samples, "errors": errors, "requests": spec["n"], "cpu0": cpu0}


async def op_newconn(spec: dict[str, Any], ctx: ssl.SSLContext) -> dict[str, Any]:
    payload = request_bytes(spec.get("kind", "small"))
    for _ in range(spec.get("warmup", 5)):
        proto = await connect(spec["target"], ctx)
        await request(proto, payload)
        proto.transport.close()
    cpu0 = await wait_for_go()
    samples, errors = [], 0
    phases: dict[str, list[int]] = {"tcp": [], "connect": [], "tls": [], "request": []}
    deadline = time.monotonic() + spec["duration"] if spec.get("duration") else None
    for i in itertools.count():
        if (deadline is None and i >= spec["n"]) or (deadline and time.monotonic() > deadline):
            break
        start = time.monotonic_ns()
        proto = await connect(spec["target"], ctx, phases)
        status, sent, done = await request(proto, payload)
        proto.transport.close()
        samples.append(done - start)
        phases["request"].append(done - sent)
        errors += status != 200
    return {
        "latency_ns": samples,
        "phases_ns": {k: v for k, v in phases.items() if v},
        "errors": errors,
        "requests": len(samples),
        "cpu0": cpu0,
    }


async def op_sse(spec: dict[str, Any], ctx: ssl.SSLContext) -> dict[str, Any]:
    """`streams` concurrent streams, `batches` times; each on a warm keep-alive connection."""
    payload = request_bytes("sse")
    streams = spec.get("streams", 4)
    protos = [await connect(spec["target"], ctx) for _ in range(streams)]
    small = request_bytes("small")
    for proto in protos:
        await request(proto, small)
    cpu0 = await wait_for_go()
    ttfc: list[int] = []
    delays: list[int] = []
    events_seen = 0
    errors = 0

    async def one(proto: ClientProtocol) -> None:
        nonlocal events_seen, errors
        first: list[int] = []

        def on_event(event: bytes, now: int) -> None:
            nonlocal events_seen
            events_seen += 1
            if not first:
                first.append(now)
            at = event.find(_STAMP)
            if at >= 0:
                start = at + len(_STAMP)
                stop = event.find(b"}", start)
                delays.append(now - int(event[start:stop]))

        proto.on_event = on_event
        status, sent, _ = await request(proto, payload)
        proto.on_event = None
        errors += status != 200
        if first:
            ttfc.append(first[0] - sent)

    # Streams start `stagger_ms` apart so their chunks interleave as independent streams
    # would, instead of arriving in lock-step bursts that queue behind each other.
    stagger_s = spec.get("stagger_ms", 5.0) / 1000

    async def staggered(index: int, proto: ClientProtocol) -> None:
        await asyncio.sleep(index * stagger_s)
        await one(proto)

    for _ in range(spec.get("batches", 1)):
        await asyncio.gather(*(staggered(i, p) for i, p in enumerate(protos)))
    for proto in protos:
        proto.transport.close()
    n = streams * spec.get("batches", 1)
    return {
        "ttfc_ns": ttfc,
        "chunk_delay_ns": delays,
        "events": events_seen,
        "errors": errors,
        "requests": n,
        "cpu0": cpu0,
    }


async def op_throughput(spec: dict[str, Any], ctx: ssl.SSLContext) -> dict[str, Any]:
    """Closed loop: each connection sends its next request the moment a response completes."""
    payload = request_bytes(spec.get("kind", "small"))
    conns = spec["connections"]
    protos = [await connect(spec["target"], ctx) for _ in range(conns)]
    for proto in protos:
        await request(proto, payload)
    limit = spec.get("requests") or 0  # stop after this many (soak), else after duration
    duration = spec.get("duration", 0.0)
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    latencies: list[int] = []
    state = {"done": 0, "errors": 0, "running": True, "inflight": 0}

    def make_callback(proto: ClientProtocol) -> Callable[[int, int], None]:
        sent = [0]

        def on_done(status: int, now: int) -> None:
            latencies.append(now - sent[0])
            state["done"] += 1
            state["errors"] += status != 200
            if state["running"] and (not limit or state["done"] + state["inflight"] <= limit):
                sent[0] = time.monotonic_ns()
                proto.transport.write(payload)
            else:
                state["inflight"] -= 1
                if state["inflight"] == 0 and not finished.done():
                    finished.set_result(None)

        def first() -> None:
            sent[0] = time.monotonic_ns()
            proto.transport.write(payload)

        proto.on_done = on_done
        return first

    starters = [make_callback(p) for p in protos]
    cpu0 = await wait_for_go()
    start = time.monotonic()
    state["inflight"] = conns
    for first in starters:
        first()
    if duration:
        await asyncio.sleep(duration)
        counted = state["done"]
        elapsed = time.monotonic() - start
        state["running"] = False
        cpu = time.process_time() - cpu0
        await asyncio.wait_for(finished, 30)
    else:
        await asyncio.wait_for(finished, spec.get("timeout", 3600))
        counted = state["done"]
        elapsed = time.monotonic() - start
        cpu = time.process_time() - cpu0
    for proto in protos:
        proto.transport.close()
    return {
        "requests": counted,
        "total_requests": state["done"],
        "errors": state["errors"],
        "elapsed_s": elapsed,
        "client_cpu_s": cpu,
        "bytes_received": sum(p.received for p in protos),
        "latency_ns": latencies[:: max(1, len(latencies) // 20000)],
    }


OPS = {
    "latency": op_latency,
    "newconn": op_newconn,
    "sse": op_sse,
    "throughput": op_throughput,
}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = client_context(spec["target"]["ca"])
    result = await OPS[spec["op"]](spec, ctx)
    cpu0 = result.pop("cpu0", None)
    if cpu0 is not None:
        result["client_cpu_s"] = time.process_time() - cpu0
    result["completed"] = COMPLETED[0]
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    # Seen: sys.stdout.write + flush of a ~200 KB line into a pipe the parent drains late
    # lost the tail before os._exit. Raw writes, looped until the whole line is out.
    os.set_blocking(1, True)
    data = (json.dumps(result) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]
    os._exit(0)  # skip interpreter teardown; the parent only waits for the line


if __name__ == "__main__":
    main()
