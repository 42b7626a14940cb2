"""Pipeline throughput: captures in, every event written by every default sink, out.

What is measured is the sensor's side of the relay's hand-off, end to end: a real
`Pipeline` built by `build_pipeline` (decoder, process/app/host/pricing enrichers,
`safe` redaction) feeding the sinks `record` runs by default — JSONL, the SQLite store
and the dashboard's live feed with one connected tab (a WebSocket client in its own
process, as a browser would be). A run counts as finished when every sink has
written every event and the tab has received every event.

Traffic is what the relay tees for keep-alive connections (`--conns` of them, their
captures interleaved): per request one `SslWrite` with the request and the response
as the socket delivered it (16 KiB TLS records; one read per SSE event for streams),
`ConnOpen`/`ConnClose` around each connection. Mixes (`--mix`):

    small     OpenAI chat, ~1 KB response (the side-by-side bench's keep-alive load)
    mixed     OpenAI and Anthropic, JSON and SSE, 1 KB and 100 KB responses
    large     OpenAI chat, ~100 KB response

Two ways to feed it:

    closed loop (default): captures are submitted as fast as the pipeline takes them
        without loss (the capture queue kept short, sinks below half full, as `replay`
        does): the sustained capacity, requests/s and events/s;
    --rate R --seconds S: open loop, R requests/s for S seconds whatever happens, as
        the relay does; reports what was dropped and how long the backlog took to drain.

Run:
    .venv/bin/python bench/pipeline_throughput.py                    # all mixes
    .venv/bin/python bench/pipeline_throughput.py --breakdown        # + per-stage CPU
    .venv/bin/python bench/pipeline_throughput.py --profile small    # cProfile, main thread
    .venv/bin/python bench/pipeline_throughput.py --rate 3800 --seconds 10
    cp -r src/oisp_sensor /tmp/before/  # then, after a change:
    .venv/bin/python bench/pipeline_throughput.py --compare /tmp/before --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.helpers: the HTTP builders the tests use

import psutil  # noqa: E402
from tests.helpers import chunk_body, http_request, http_response  # noqa: E402

from oisp_sensor import __version__  # noqa: E402
from oisp_sensor.config import Config  # noqa: E402
from oisp_sensor.counters import Counters  # noqa: E402
from oisp_sensor.events import CaptureKind, Event, RawCapture  # noqa: E402
from oisp_sensor.pipeline import Pipeline  # noqa: E402
from oisp_sensor.privacy.hashing import KeyedHasher  # noqa: E402
from oisp_sensor.sensor import build_pipeline  # noqa: E402
from oisp_sensor.sinks.jsonl import JsonlSink  # noqa: E402
from oisp_sensor.sinks.store import StoreSink  # noqa: E402
from oisp_sensor.web.app import Dashboard  # noqa: E402

HASHER = KeyedHasher(b"bench-hash-key-0123456789abcdef!")
KEY = "sk-proj-bench0000000000000000000000000000000000000000"
ANTHROPIC_KEY = "sk-ant-api03-bench000000000000000000000000000000000000000000"
RECORD = 16_384  # the largest TLS record: what one read of a socket returns at most
_SENTENCE = "The quick brown fox jumps over the lazy dog while the benchmark measures. "
_SYSTEM = "You are a helpful assistant. Answer briefly and cite your sources when you can."
_USER = "Write one sentence about foxes and dogs, please. Keep it short and friendly."

# --- traffic ---------------------------------------------------------------------------------

Exchange = tuple[bytes, list[bytes]]  # request, the response's reads


def _records(response: bytes) -> list[bytes]:
    return [response[i : i + RECORD] for i in range(0, len(response), RECORD)]


def openai_json(text_bytes: int) -> Exchange:
    request = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": _USER},
            ],
            "max_tokens": 256,
        },
        headers={
            "Authorization": f"Bearer {KEY}",
            "User-Agent": "OpenAI/Python 1.54.0",
            "Accept": "application/json",
            "X-Stainless-Lang": "python",
        },
    )
    text = (_SENTENCE * (text_bytes // len(_SENTENCE) + 1))[:text_bytes]
    body = {
        "id": "chatcmpl-AbCdEf0123456789abcdefABCDEF",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 42,
            "completion_tokens": max(1, text_bytes // 4),
            "total_tokens": 42 + max(1, text_bytes // 4),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    response = http_response(
        body,
        headers={
            "openai-processing-ms": "412",
            "x-request-id": "req_0123456789abcdef0123456789abcdef",
            "openai-version": "2020-10-01",
            "x-ratelimit-remaining-tokens": "149999",
        },
    )
    return request, _records(response)


def openai_sse(tokens: int = 40) -> Exchange:
    request = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": _USER},
            ],
        },
        headers={"Authorization": f"Bearer {KEY}", "User-Agent": "OpenAI/Python 1.54.0"},
    )
    head = {
        "id": "chatcmpl-AbCdEf0123456789abcdefABCDEF",
        "object": "chat.completion.chunk",
        "created": 1_730_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    words = _SENTENCE.split()
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": " " + words[i % len(words)]} for i in range(tokens)]
    frames = [
        {**head, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    frames.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames.append(
        {
            **head,
            "choices": [],
            "usage": {
                "prompt_tokens": 42,
                "completion_tokens": tokens,
                "total_tokens": 42 + tokens,
            },
        }
    )
    events = [b"data: " + json.dumps(f, separators=(",", ":")).encode() + b"\n\n" for f in frames]
    events.append(b"data: [DONE]\n\n")
    return request, _sse_reads(events)


def _sse_reads(events: list[bytes]) -> list[bytes]:
    """One read per server write (SSE event), as a live stream reaches the relay."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n"
        b"x-request-id: req_0123456789abcdef\r\n\r\n"
    )
    reads = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    reads[0] = head + reads[0]
    reads.append(b"0\r\n\r\n")
    assert b"".join(reads) == head + chunk_body(events)
    return reads


def _anthropic_request(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": _SYSTEM,
        "messages": [{"role": "user", "content": _USER}],
    }
    if stream:
        body["stream"] = True
    return http_request(
        "/v1/messages",
        body,
        host="api.anthropic.com",
        headers={
            "x-api-key": ANTHROPIC_KEY,
            "anthropic-version": "2023-06-01",
            "User-Agent": "Anthropic/Python 0.40.0",
        },
    )


def anthropic_json(text_bytes: int = 700) -> Exchange:
    text = (_SENTENCE * (text_bytes // len(_SENTENCE) + 1))[:text_bytes]
    body = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 38, "output_tokens": max(1, text_bytes // 4)},
    }
    response = http_response(body, headers={"request-id": "req_011CV0123456789abcdef"})
    return _anthropic_request(False), _records(response)


def anthropic_sse(tokens: int = 40) -> Exchange:
    def event(name: str, obj: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()

    words = _SENTENCE.split()
    events = [
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude-sonnet-4-5-20250929",
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 38, "output_tokens": 1},
                },
            },
        ),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": " " + words[i % len(words)]},
            },
        )
        for i in range(tokens)
    ]
    events += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": tokens},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
    return _anthropic_request(True), _sse_reads(events)


# name -> [(weight, exchange)]: which calls a connection makes, in rotation.
MIXES: dict[str, list[tuple[int, Callable[[], Exchange]]]] = {
    "small": [(1, lambda: openai_json(640))],
    "mixed": [
        (8, lambda: openai_json(640)),
        (4, openai_sse),
        (4, anthropic_json),
        (3, anthropic_sse),
        (1, lambda: openai_json(100_000)),
    ],
    "large": [(1, lambda: openai_json(100_000))],
}


def rotation(mix: str) -> list[Exchange]:
    out: list[Exchange] = []
    for weight, make in MIXES[mix]:
        out += [make()] * weight
    # Spread the kinds out so a short run still sees every one.
    return [out[(i * 7) % len(out)] for i in range(len(out))] if len(out) % 7 else out


class Traffic:
    """Captures of `conns` keep-alive connections making `requests` calls in all, interleaved
    request by request the way concurrent clients reach the relay."""

    def __init__(self, mix: str, requests: int, conns: int) -> None:
        self.exchanges = rotation(mix)
        self.requests = requests
        self.conns = conns
        self.pid = os.getpid()  # a real process, so the process enricher does real work
        self.meta = {"comm": "python3", "exe": sys.executable, "uid": os.getuid()}

    def _raw(self, kind: CaptureKind, conn: str, host: str, data: bytes = b"") -> RawCapture:
        return RawCapture(
            kind=kind,
            timestamp_ns=time.time_ns(),
            data=data,
            pid=self.pid,
            conn_id=conn,
            metadata=self.meta,
            remote_host=host,
            remote_port=443,
            capture_method="mitm_proxy",
        )

    def _open(self, conn: str, host: str) -> RawCapture:
        net = {"dest": {"domain": host, "port": 443}, "protocol": "tcp"}
        return RawCapture(
            kind=CaptureKind.CONN_OPEN,
            timestamp_ns=time.time_ns(),
            pid=self.pid,
            conn_id=conn,
            metadata={**self.meta, "net": net, "intercepted": True},
            remote_host=host,
            remote_port=443,
            capture_method="mitm_proxy",
        )

    def requests_iter(self) -> Iterator[list[RawCapture]]:
        """The captures of one call at a time; a connection's ConnOpen rides with its first
        call, and every connection is closed at the end."""
        opened: dict[str, str] = {}
        sent = i = 0
        while sent < self.requests:
            for c in range(self.conns):
                if sent == self.requests:
                    break
                request, reads = self.exchanges[(i + c) % len(self.exchanges)]
                host = (
                    "api.anthropic.com"
                    if request.startswith(b"POST /v1/messages")
                    else ("api.openai.com")
                )
                conn = f"bench-{c}-{host}"
                out = []
                if conn not in opened:
                    opened[conn] = host
                    out.append(self._open(conn, host))
                out.append(self._raw(CaptureKind.SSL_WRITE, conn, host, request))
                out += [self._raw(CaptureKind.SSL_READ, conn, host, r) for r in reads]
                sent += 1
                yield out
            i += 1
        for conn, host in opened.items():
            yield [self._raw(CaptureKind.CONN_CLOSE, conn, host)]


# --- the live tab (a separate process, as a browser is) ---------------------------------------

TAB = r"""
import asyncio, sys
import aiohttp, orjson

async def main(url, origin):
    state = {"total": 0, "shown": -1}

    async def report():
        while True:
            await asyncio.sleep(0.005)
            if state["total"] != state["shown"]:
                state["shown"] = state["total"]
                print(state["total"], flush=True)

    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, headers={"Origin": origin}, max_msg_size=0) as ws:
            print("ready", flush=True)
            reporter = asyncio.create_task(report())
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                body = orjson.loads(msg.data)
                if body.get("type") == "events":
                    state["total"] += len(body["events"])
                elif body.get("type") == "gap":
                    print("gap", body["missed"], flush=True)
            reporter.cancel()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class Tab:
    def __init__(self) -> None:
        self.received = 0
        self.gaps = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, url: str, origin: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TAB, url, origin, stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert line.strip() == b"ready", line
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == b"gap":
                self.gaps += int(parts[1])
            elif parts:
                self.received = int(parts[0])

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# --- per-stage accounting (--breakdown) --------------------------------------------------------


class Stages:
    """CPU seconds of the calling thread spent in each wrapped stage."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock, cpu = time.thread_time, self.cpu

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[name] = cpu.get(name, 0.0) + clock() - start

        return timed

    def wrap_async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """For a sink's `write` that does its work before its first await (JSONL, live)."""
        clock, cpu = time.thread_time, self.cpu

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            coro = fn(*args, **kwargs)
            try:
                return await coro
            finally:
                cpu[name] = cpu.get(name, 0.0) + clock() - start

        return timed


class _TimedEnricher:
    def __init__(self, inner: Any, stages: Stages) -> None:
        self.enrich = stages.wrap(f"enrich.{type(inner).__name__}", inner.enrich)


class _TimedRedactor:
    def __init__(self, inner: Any, stages: Stages) -> None:
        self.inner = inner
        self.redact = stages.wrap("redact", inner.redact)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def instrument(pipeline: Pipeline, stages: Stages) -> None:
    decoder = pipeline.decoder
    decoder.feed = stages.wrap("decode", decoder.feed)  # type: ignore[method-assign]
    pipeline.enrichers = [_TimedEnricher(e, stages) for e in pipeline.enrichers]
    pipeline.redactor = _TimedRedactor(pipeline.redactor, stages)
    if hasattr(Event, "seal"):  # serialising once, after redaction (before: in every sink)
        Event.seal = stages.wrap("serialise (seal)", Event.seal)  # type: ignore[method-assign]
    for runner in pipeline.runners:
        sink: Any = runner.sink
        if isinstance(sink, StoreSink):
            # The rows are built and written on the store's own thread.
            for name in ("_write", "_write_batch"):
                if hasattr(sink, name):
                    setattr(
                        sink, name, stages.wrap("sink.store (writer thread)", getattr(sink, name))
                    )
        for name in ("write_sync", "_write_file"):
            if isinstance(sink, JsonlSink) and hasattr(sink, name):
                setattr(sink, name, stages.wrap(f"sink.{sink.name}", getattr(sink, name)))
        if sink.name == "live":
            sink.write = stages.wrap_async("sink.live", sink.write)


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = names.get(t.id, "other")
        if name.startswith("oisp-store"):
            name = "oisp-store"
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


# --- one run -----------------------------------------------------------------------------------


async def build(folder: Path, counters: Counters) -> tuple[Pipeline, Dashboard]:
    """What `Sensor.start` assembles, minus relay and bridge: default sinks and dashboard."""
    config = Config().replace("web", port=0, bind="127.0.0.1")
    dashboard = Dashboard(config, counters, db_path=folder / "events.db", config_path=folder / "c")
    sinks = [
        JsonlSink(folder / "events.jsonl"),
        StoreSink(folder / "events.db", counters=counters),
        dashboard.live,
    ]
    pipeline = build_pipeline(config, sinks=sinks, counters=counters, hasher=HASHER)
    await pipeline.start()
    await dashboard.start(pipeline)
    return pipeline, dashboard


def settled(pipeline: Pipeline, counters: Counters, tab: Tab) -> bool:
    total = counters.get("events.total")
    if not pipeline.queue.empty():
        return False
    for runner in pipeline.runners:
        name = runner.sink.name
        if name == "live":
            continue
        done = sum(counters.get(f"sink.{name}.{k}") for k in ("written", "dropped", "errors"))
        if done < total:
            return False
    return tab.received + counters.get("sink.live.dropped") >= total


async def feed_closed_loop(pipeline: Pipeline, traffic: Traffic) -> None:
    """As fast as the pipeline takes it without loss: short capture queue, sinks half empty."""
    queue = pipeline.queue
    for captures in traffic.requests_iter():
        for raw in captures:
            while not pipeline.submit(raw):  # never: the queue is kept short
                await asyncio.sleep(0.001)
        if queue.qsize() > 1024:
            while queue.qsize() > 256:
                await asyncio.sleep(0)  # one turn of the loop: a slice (or a capture) decoded
            await pipeline.wait_for_sinks()


async def feed_open_loop(pipeline: Pipeline, traffic: Traffic, rate: float) -> None:
    """`rate` requests/s on the clock, whatever the pipeline does (the relay never waits)."""
    start = time.perf_counter()
    for n, captures in enumerate(traffic.requests_iter()):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        for raw in captures:
            pipeline.submit(raw)
        if n % 64 == 0:
            await asyncio.sleep(0)


async def run_once(args: argparse.Namespace, mix: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oisp-pipebench-") as tmp:
        folder = Path(tmp)
        counters = Counters()
        pipeline, dashboard = await build(folder, counters)
        stages = Stages()
        if args.breakdown:
            instrument(pipeline, stages)
        tab = Tab()
        await tab.open(dashboard.url.rstrip("/") + "/api/live", dashboard.url.rstrip("/"))
        requests = args.requests if args.rate is None else int(args.rate * args.seconds)
        if mix == "large" and args.rate is None:
            requests = max(200, requests // 20)
        traffic = Traffic(mix, requests, args.conns)
        # CPU time of this thread, not wall time: the machine is shared, and other
        # threads' turns with the GIL are not this thread's cost.
        prof = cProfile.Profile(time.thread_time) if args.profile == mix else None
        cpu0, threads0 = time.process_time(), thread_cpu()
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        if args.rate is None:
            await feed_closed_loop(pipeline, traffic)
        else:
            await feed_open_loop(pipeline, traffic, args.rate)
        fed = time.perf_counter()
        deadline = time.perf_counter() + args.timeout
        while not settled(pipeline, counters, tab):
            if time.perf_counter() > deadline:
                raise SystemExit(
                    f"not settled after {args.timeout} s: tab {tab.received} {counters.snapshot()}"
                )
            await asyncio.sleep(0.001)
        t1 = time.perf_counter()
        if prof:
            prof.disable()
        cpu1, threads1 = time.process_time(), thread_cpu()
        await tab.close()
        await dashboard.close()
        await pipeline.stop()
        snap = counters.snapshot()
        elapsed = t1 - t0
        events = snap.get("events.total", 0)
        drops = {k: v for k, v in snap.items() if ("dropped" in k) and v}
        result = {
            "mix": mix,
            "requests": requests,
            "events": events,
            "seconds": elapsed,
            "req_per_s": requests / elapsed,
            "events_per_s": events / elapsed,
            "cpu_s": cpu1 - cpu0,
            "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / requests,
            # The thread that decodes, enriches, redacts and serves the sinks: its CPU per
            # request bounds the rate (the GIL), whatever else the machine is doing.
            "main_ms_per_req": (threads1.get("MainThread", 0.0) - threads0.get("MainThread", 0.0))
            * 1000
            / requests,
            "drain_s": t1 - fed,
            "drops": drops,
            "written": {
                r.sink.name: snap.get(f"sink.{r.sink.name}.written", 0) for r in pipeline.runners
            },
            "tab_received": tab.received,
            "responses": snap.get("events.ai_response", 0),
            "threads": {k: threads1.get(k, 0.0) - threads0.get(k, 0.0) for k in threads1},
            "stages": stages.cpu,
        }
        if prof:
            stats = pstats.Stats(prof)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)
        return result


def render(result: dict[str, Any]) -> str:
    r = result
    lines = [
        f"{r['mix']:<6} {r['requests']:>7} req {r['events']:>7} events  "
        f"{r['req_per_s']:>7.0f} req/s {r['events_per_s']:>8.0f} events/s  "
        f"{r['cpu_ms_per_req']:.3f} CPU ms/req (main thread {r['main_ms_per_req']:.3f})  "
        f"drain {r['drain_s']:.2f} s  "
        f"written {r['written']} tab {r['tab_received']}"
        + (f"  DROPS {r['drops']}" if r["drops"] else "")
    ]
    if r["stages"]:
        main = r["threads"].get("MainThread", 0.0)
        store = r["threads"].get("oisp-store", 0.0)
        lines.append(
            "   threads (CPU s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["threads"].items() if v > 0.005)
        )
        known = 0.0
        for name, cpu in sorted(r["stages"].items(), key=lambda kv: -kv[1]):
            per_req = cpu * 1e6 / r["requests"]
            where = store if "writer thread" in name else main
            share = cpu / where * 100 if where else 0.0
            lines.append(
                f"   {name:<28} {cpu:7.2f} s  {per_req:7.1f} us/req  {share:5.1f} % of its thread"
            )
            if "writer thread" not in name:
                known += cpu
        other = main - known
        share = other / main * 100 if main else 0.0
        lines.append(
            f"   {'main loop: rest':<28} {other:7.2f} s  {other * 1e6 / r['requests']:7.1f} us/req"
            f"  {share:5.1f} % (queues, publish, tasks, live sends, web)"
        )
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for mix in args.mix.split(","):
        result = await run_once(args, mix)
        results.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(render(result), flush=True)
    return results


def compare(args: argparse.Namespace) -> int:
    """This tree against an older copy of the package, in interleaved rounds."""
    base = [sys.executable, str(Path(__file__).resolve()), "--json", "--mix", args.mix]
    base += ["--requests", str(args.requests), "--conns", str(args.conns)]
    if args.rate is not None:
        base += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    variants = {"before": args.compare, "after": None}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for variant in order:
            env = dict(os.environ)
            if variants[variant]:
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (variants[variant], env.get("PYTHONPATH")) if p
                )
            out = subprocess.run(base, env=env, capture_output=True, text=True, check=True)
            for line in out.stdout.splitlines():
                row = json.loads(line)
                results.setdefault(row["mix"], {}).setdefault(variant, []).append(row)
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(f"{args.rounds} interleaved rounds; median [min-max]; {args.conns} connections")
    print("| mix | metric | before | after | after/before (per round) |")
    print("|---|---|---:|---:|---:|")
    for mix, got in results.items():
        for metric in ("req_per_s", "events_per_s", "cpu_ms_per_req", "main_ms_per_req"):
            before = [row[metric] for row in got["before"]]
            after = [row[metric] for row in got["after"]]
            ratios = [a / b for a, b in zip(after, before, strict=True)]
            print(
                f"| {mix} | {metric} | {_spread(before)} | {_spread(after)} | "
                f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] |"
            )
        for variant in ("before", "after"):
            drops = [row["drops"] for row in got[variant] if row["drops"]]
            if drops:
                print(f"| {mix} | drops ({variant}) | {drops} | | |")
    return 0


def _spread(values: list[float]) -> str:
    fmt = "{:.3f}" if max(values) < 10 else "{:,.0f}"
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} [{low}-{high}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mix", default="small,mixed,large", help="comma-separated mixes")
    parser.add_argument("--requests", type=int, default=6000, help="calls per mix (large: /20)")
    parser.add_argument("--conns", type=int, default=10, help="keep-alive connections")
    parser.add_argument("--rate", type=float, help="open loop: requests/s offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="open loop: for how long")
    parser.add_argument("--breakdown", action="store_true", help="CPU per stage and thread")
    parser.add_argument("--profile", metavar="MIX", help="cProfile the main thread for MIX")
    parser.add_argument("--compare", metavar="DIR", help="an older `oisp_sensor` to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0, help="for the sinks to settle")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(args)
    if not args.json:
        feed = (
            f"open loop {args.rate:g} req/s for {args.seconds:g} s" if args.rate else "closed loop"
        )
        print(
            f"oisp-sensor {__version__} ({Path(str(sys.modules['oisp_sensor'].__file__)).parent}), "
            f"Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}, {feed}"
        )
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)  # as `record` runs
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
