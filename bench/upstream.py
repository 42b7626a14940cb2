"""A local TLS stand-in for the OpenAI API, cheap enough that it is never the bottleneck.

The side-by-side benchmark needs an upstream whose own cost is small and constant,
so that what differs between "direct", "through oisp-sensor" and "through mitmdump"
is the proxy alone. So this is a raw asyncio protocol (uvloop when installed), not a
web framework: keep-alive, Content-Length, responses pre-rendered to bytes once.

What it serves (the query flag picks the shape, every path is accepted):

    POST /v1/chat/completions              ~1 KB chat.completion JSON
    POST /v1/chat/completions?bench=large  a chat.completion whose text is ~100 KB
    POST /v1/chat/completions?bench=sse    text/event-stream, chunked: a role chunk,
                                           50 content chunks every --sse-interval-ms,
                                           a finish chunk, a usage chunk, [DONE]

Every SSE chunk carries `"bench_sent_ns": <time.monotonic_ns() just before the
write>` so a client on this machine (CLOCK_MONOTONIC is system-wide) can compute the
delay each chunk picked up on the way, whichever proxy sat in between.

    python bench/upstream.py --cert-chain CHAIN.pem --key KEY.pem [--port 0]

prints `PORT <n>` on stdout once it listens. `make_certs(dir)` writes a trustme CA
and a leaf for api.openai.com / localhost / 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MODEL = "gpt-4o-mini-2024-07-18"
SSE_CHUNKS = 50


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA the clients/proxies trust for the upstream, and the upstream's own cert."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="oisp bench upstream CA")
    leaf = ca.issue_cert("api.openai.com", "localhost", "127.0.0.1")
    paths = {
        "ca": directory / "upstream-ca.pem",
        "chain": directory / "upstream-chain.pem",
        "key": directory / "upstream-key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    with paths["chain"].open("wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    return paths


def _completion(text: str) -> bytes:
    body = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1_730_000_000,
        "model": MODEL,
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
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": 42 + max(1, len(text) // 4),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_bench00000",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"openai-processing-ms: 1\r\n"
        b"x-request-id: req_bench\r\n"
        b"Connection: keep-alive\r\n\r\n" + body
    )


_SENTENCE = "The quick brown fox jumps over the lazy dog while the benchmark measures. "
SMALL_BODY = _completion((_SENTENCE * 9)[:640])  # the whole body comes to ~1 KB
LARGE_BODY = _completion((_SENTENCE * 1400)[:100_000])
SMALL_RESPONSE = _response(SMALL_BODY)
LARGE_RESPONSE = _response(LARGE_BODY)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Cache-Control: no-cache\r\n"
    b"x-request-id: req_bench\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
_CHUNK_PREFIX = (
    b'{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion.chunk",'
    b'"created":1730000000,"model":"' + MODEL.encode() + b'","system_fingerprint":"fp_bench00000",'
)
_USAGE = (
    b'"usage":{"prompt_tokens":42,"completion_tokens":50,"total_tokens":92,'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def sse_event(index: int, sent_ns: int) -> bytes:
    """The index-th event of the stream (0 = role, 1..50 = content, 51 = finish, 52 = usage)."""
    stamp = b',"bench_sent_ns":' + str(sent_ns).encode() + b"}"
    if index == 0:
        choice = b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        choice += b'"logprobs":null,"finish_reason":null}],"usage":null'
    elif index <= SSE_CHUNKS:
        choice = b'"choices":[{"index":0,"delta":{"content":"tok' + str(index).encode()
        choice += b' "},"logprobs":null,"finish_reason":null}],"usage":null'
    elif index == SSE_CHUNKS + 1:
        choice = b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
        choice += b'"usage":null'
    else:
        choice = b'"choices":[],' + _USAGE
    return b"data: " + _CHUNK_PREFIX + choice + stamp + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SERVED = {"small": 0, "large": 0, "sse": 0, "connections": 0}


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: parse requests (Content-Length bodies), answer in order."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.transport: Any = None  # asyncio's or uvloop's SSL transport
        self.buf = b""
        self.stream_index = -1  # >= 0 while an SSE response is being sent
        self.stream_start = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        SERVED["connections"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        self._serve()

    def _serve(self) -> None:
        while self.stream_index < 0 and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            target = head[: head.find(b"\r\n")]
            self.buf = self.buf[total:]
            if b"bench=sse" in target:
                SERVED["sse"] += 1
                self.transport.write(SSE_HEAD)
                self.stream_index = 0
                self.stream_start = self.loop.time()
                self._next_chunk()
            elif b"bench=large" in target:
                SERVED["large"] += 1
                self.transport.write(LARGE_RESPONSE)
            else:
                SERVED["small"] += 1
                self.transport.write(SMALL_RESPONSE)

    def _next_chunk(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        index = self.stream_index
        data = http_chunk(sse_event(index, time.monotonic_ns()))
        if index == SSE_CHUNKS + 2:
            data += http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        self.transport.write(data)
        if index == SSE_CHUNKS + 2:
            self.stream_index = -1
            self._serve()  # a request that arrived while streaming
            return
        self.stream_index = index + 1
        # Absolute deadlines: a late wake-up does not push every later chunk back.
        when = self.stream_start + self.stream_index * self.interval_s
        self.timer = self.loop.call_at(when, self._next_chunk)


def server_context(chain: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(chain), str(key))
    return ctx


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    ctx = server_context(args.cert_chain, args.key)
    interval_s = args.sse_interval_ms / 1000
    server = await loop.create_server(
        lambda: UpstreamProtocol(interval_s),
        args.host,
        args.port,
        ssl=ctx,
        backlog=1024,
        reuse_port=args.port != 0,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    # The harness cross-checks these against what the clients and the sensor counted.
    print("SERVED " + json.dumps(SERVED), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert-chain", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--make-certs", type=Path, help="write CA + leaf into DIR and exit")
    parser.add_argument("--sse-interval-ms", type=float, default=20.0)
    args = parser.parse_args()
    if args.make_certs:
        for name, path in make_certs(args.make_certs).items():
            print(name, path)
        return
    if not (args.cert_chain and args.key):
        parser.error("--cert-chain and --key are required (or --make-certs DIR)")
    run_loop(serve(args))


def run_loop(main_coro: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed (what a production proxy would run on), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_coro)
    return uvloop.run(main_coro)


if __name__ == "__main__":
    main()
