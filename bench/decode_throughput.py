"""Decoder throughput: MB/s of realistic SSE streams through `Decoder.feed`.

What is measured is everything between a capture source and the sinks: HTTP/1.1
chunked framing, SSE parsing, the provider's stream assembler (JSON parse of every
event, text and tool-call assembly), and event construction at the end of each
response. The streams copy the wire format of the real APIs (OpenAI Chat
Completions chunks with `obfuscation`-free payloads as of 2025, Anthropic
Messages events), and are cut into reads of a given size the way a TLS reader
would hand them over (16 KiB is the largest TLS record).

Run:  .venv/bin/python bench/decode_throughput.py [--mb 20] [--profile]
Target (issue 2): >= 50 MB/s of SSE, so decoding is never the bottleneck.

Before/after a change, on a machine too noisy for two separate runs to compare:

    cp -r src/oisp_sensor /tmp/before/          # before changing anything
    .venv/bin/python bench/decode_throughput.py --compare /tmp/before --rounds 7

runs both versions (each in its own interpreter, the old one from /tmp/before via
PYTHONPATH) in interleaved rounds, alternating which goes first, and prints the
median and range of each and of the per-round ratio after/before.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

from oisp_sensor import __version__
from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.events import CaptureKind, Event, RawCapture
from oisp_sensor.privacy.hashing import KeyedHasher

T0 = 1_767_225_600_000_000_000
HASHER = KeyedHasher(b"bench-hash-key-0123456789abcdef!")
WORDS = "the quick brown fox jumps over a lazy dog while streaming tokens arrive".split()


def _chunked(head: bytes, frames: Iterable[bytes]) -> list[bytes]:
    """One HTTP chunk per SSE event, as OpenAI's and Anthropic's servers send them: the
    pieces the server writes (head with the first event, one event each, last chunk)."""
    pieces = [b"%x\r\n%s\r\n" % (len(f), f) for f in frames]
    pieces[0] = head + pieces[0]
    pieces[-1] += b"0\r\n\r\n"
    return pieces


def _request(host: str, path: str, body: dict[str, object]) -> bytes:
    raw = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer sk-bench-0000000000\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


def openai_exchange(tokens: int) -> tuple[bytes, list[bytes]]:
    """A streamed chat completion of `tokens` content chunks plus a final usage chunk."""
    request = _request(
        "api.openai.com",
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        },
    )
    head = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "system_fingerprint": "fp_eb9dce56a8",
    }
    frames = [
        b"data: "
        + json.dumps(
            {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            separators=(",", ":"),
        ).encode()
        + b"\n\n"
    ]
    for i in range(tokens):
        chunk = {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": " " + WORDS[i % len(WORDS)]},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        frames.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    final = {
        **head,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    usage = {
        **head,
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens},
    }
    frames += [
        b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        for obj in (final, usage)
    ]
    frames.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\nx-request-id: req_bench\r\n\r\n"
    )
    return request, _chunked(head, frames)


def anthropic_exchange(tokens: int) -> tuple[bytes, list[bytes]]:
    request = _request(
        "api.anthropic.com",
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        },
    )

    def event(name: str, obj: dict[str, object]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()

    frames = [
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
                    "usage": {"input_tokens": 25, "output_tokens": 1},
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
        event("ping", {"type": "ping"}),
    ]
    frames += [
        event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": " " + WORDS[i % len(WORDS)]},
            },
        )
        for i in range(tokens)
    ]
    frames += [
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
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\nrequest-id: req_bench\r\n\r\n"
    )
    return request, _chunked(head, frames)


def captures(exchange: tuple[bytes, list[bytes]], read_size: int, conn: int) -> list[RawCapture]:
    """The exchange as a TLS reader reports it: the request, then reads of the response,
    `read_size` bytes each, or (0) one read per server write, as a live stream arrives."""
    request, pieces = exchange
    response = b"".join(pieces)
    reads = (
        pieces
        if read_size == 0
        else [response[i : i + read_size] for i in range(0, len(response), read_size)]
    )
    meta = {"comm": "bench", "fd": conn, "uid": 1000}

    def raw(kind: CaptureKind, ts: int, data: bytes = b"") -> RawCapture:
        return RawCapture(
            kind=kind,
            timestamp_ns=ts,
            data=data,
            pid=4242,
            metadata=meta,
            remote_host="api.example",
            remote_port=443,
        )

    out = [raw(CaptureKind.SSL_WRITE, T0, request)]
    ts = T0 + 200_000_000
    for data in reads:
        out.append(raw(CaptureKind.SSL_READ, ts, data))
        ts += 1_000_000
    out.append(raw(CaptureKind.CONN_CLOSE, ts))
    return out


Feed = Callable[[RawCapture], list[Event]]


def decoder_feed() -> Feed:
    """Decoder.feed alone: HTTP, content coding, SSE, the provider's assembler, events."""
    return Decoder(hasher=HASHER, counters=Counters()).feed


def pipeline_process() -> Feed:
    """Pipeline.process as `record` builds it: decoding plus the default enrichers
    (process, app, host, pricing) and `safe` redaction - everything but the sinks."""
    from oisp_sensor.config import Config
    from oisp_sensor.sensor import build_pipeline

    return build_pipeline(Config(), hasher=HASHER).process


def measure(
    make: Callable[[int], tuple[bytes, list[bytes]]],
    read_size: int,
    target_mb: float,
    repeat: int,
    build: Callable[[], Feed] = decoder_feed,
) -> tuple[float, float, int]:
    """Best-of-`repeat` MB/s of response bytes decoded, bytes per SSE event, reads per response.

    CPU time of this process, not wall time: the machine running it may be shared.
    """
    exchange = make(2000)  # ~0.5 MB per response: a long answer
    per_conn = sum(map(len, exchange[1]))
    conns = max(1, int(target_mb * 1e6 / per_conn))
    batches = [captures(exchange, read_size, c) for c in range(conns)]
    best = 0.0
    events = 0
    for _ in range(repeat):
        feed = build()
        events = 0
        start = time.process_time()
        for batch in batches:
            for raw in batch:
                events += len(feed(raw))
        elapsed = time.process_time() - start
        best = max(best, conns * per_conn / elapsed / 1e6)
    assert events == 2 * conns, f"expected a request and a response per stream, got {events}"
    bytes_per_event = per_conn / len(exchange[1])  # one SSE event per server write
    return best, bytes_per_event, len(batches[0]) - 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=20.0, help="MB of SSE per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    parser.add_argument(
        "--read-sizes", default="0,256,1024,4096,16384,65536", help="0: one read per event"
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="measure Pipeline.process (with enrichers and redaction) instead of Decoder.feed",
    )
    parser.add_argument(
        "--profile", choices=["openai", "anthropic"], help="cProfile one run instead"
    )
    parser.add_argument("--profile-read-size", type=int, default=16384)
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="a directory holding an older `oisp_sensor` package: measure it and this tree "
        "side by side, in interleaved rounds",
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds for --compare")
    parser.add_argument("--streams", default="openai,anthropic")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    build = pipeline_process if args.pipeline else decoder_feed
    if args.compare:
        return compare(args)

    if args.profile:
        make = openai_exchange if args.profile == "openai" else anthropic_exchange
        exchange = make(2000)
        batches = [captures(exchange, args.profile_read_size, c) for c in range(40)]
        feed = build()
        prof = cProfile.Profile()
        prof.enable()
        for batch in batches:
            for raw in batch:
                feed(raw)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0

    what = "Pipeline.process" if args.pipeline else "Decoder.feed"
    if not args.json:
        print(
            f"oisp-sensor {__version__}, Python {sys.version.split()[0]}, {what}; "
            f"best of {args.repeat}, CPU time"
        )
        print(f"{'stream':<12} {'read size':>10} {'reads/resp':>11} {'MB/s':>8} {'events/s':>10}")
    for name in args.streams.split(","):
        make = STREAMS[name]
        for size in (int(s) for s in args.read_sizes.split(",")):
            mbps, per_event, reads = measure(make, size, args.mb, args.repeat, build)
            label = "per event" if size == 0 else str(size)
            rate = mbps * 1e6 / per_event
            if args.json:
                print(json.dumps({"stream": name, "read_size": size, "mbps": mbps}), flush=True)
            else:
                print(f"{name:<12} {label:>10} {reads:>11} {mbps:>8.1f} {rate / 1000:>9.0f}k")
    return 0


STREAMS = {"openai": openai_exchange, "anthropic": anthropic_exchange}


def compare(args: argparse.Namespace) -> int:
    """This tree against an older copy of the package, in interleaved rounds."""
    here = os.path.dirname(os.path.abspath(__file__))
    base = [sys.executable, os.path.join(here, "decode_throughput.py"), "--json"]
    base += ["--repeat", "1", "--mb", str(args.mb), "--read-sizes", args.read_sizes]
    base += ["--streams", args.streams] + (["--pipeline"] if args.pipeline else [])
    variants = {"before": args.compare, "after": None}
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
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
                key = (row["stream"], row["read_size"])
                results.setdefault(key, {}).setdefault(variant, []).append(row["mbps"])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    what = "Pipeline.process" if args.pipeline else "Decoder.feed"
    print(
        f"{what}, MB/s of response bytes per CPU second; {args.rounds} interleaved rounds, "
        f"{args.mb:g} MB each; median [min-max]"
    )
    print("| stream | read size | before | after | after/before (per round) |")
    print("|---|---:|---:|---:|---:|")
    for (stream, size), got in results.items():
        before, after = got["before"], got["after"]
        ratios = [a / b for a, b in zip(after, before, strict=True)]
        label = "per event" if size == 0 else str(size)
        print(
            f"| {stream} | {label} | {_spread(before)} | {_spread(after)} | "
            f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] |"
        )
    return 0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


if __name__ == "__main__":
    raise SystemExit(main())
