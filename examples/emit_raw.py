#!/usr/bin/env python3
"""Feed the sensor plaintext you captured yourself: a minimal unix-socket bridge emitter.

Any capture agent (an eBPF/uprobe tracer, an SSL_write hook, a language-runtime
patch) can hand its plaintext to oisp-sensor by writing JSON lines to the sensor's
socket (default /tmp/oisp.sock; `oisp-sensor record --socket PATH`). The sensor does
the rest: HTTP parsing, provider decoding, attribution fields, redaction, sinks.

One JSON object per line, UTF-8, newline-terminated:

    {"timestamp_ns": 1703123456789000000,   # capture time, ns since the epoch (required)
     "kind": "SslWrite",                    # SslWrite = app sent, SslRead = app received,
                                            # ConnOpen / ConnClose (required)
     "data": "<base64 of the plaintext>",   # required for SslWrite/SslRead
     "pid": 12345, "tid": 12346,
     "metadata": {"comm": "python3", "exe": "/usr/bin/python3", "uid": 501, "fd": 5, "ppid": 1},
     "remote_host": "api.openai.com", "remote_port": 443,
     "conn_id": "optional id, when (pid, fd) does not identify the connection"}

Rules worth knowing:
- Bytes of one connection must arrive in order; split them however your hook saw them.
- A connection is (pid, fd) when `metadata.fd` is given, else (pid, remote_host,
  remote_port, conn_id). Send ConnClose when it closes, so a response without a
  length is completed at once.
- A bad line is skipped and counted (`bridge.bad_lines`); your connection stays open.
  Lines longer than 16 MiB are skipped too: split large writes into several lines.
- When the sensor is busy it stops reading, so `sendall` blocks: that is the
  backpressure, nothing is dropped. Use one connection per thread, or a lock.
- The socket is mode 0600: run the emitter as the sensor's user (or root).

Run it (with `oisp-sensor record` running) to see one OpenAI chat call appear:

    python examples/emit_raw.py [--socket /tmp/oisp.sock]

Standard library only, so it can be copied anywhere.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator


def capture_line(kind: str, data: bytes = b"", **fields: object) -> bytes:
    """One bridge line. `fields` are the optional keys (pid, metadata, remote_host...)."""
    record = {
        "timestamp_ns": time.time_ns(),
        "kind": kind,
        "data": base64.b64encode(data).decode("ascii"),
        **fields,
    }
    return json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"


def openai_chat_exchange(api_key: str = "sk-example-not-a-real-key") -> tuple[bytes, bytes]:
    """The plaintext of one non-streaming Chat Completions call: request and response."""
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Say hello from the bridge."},
            ],
        }
    ).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\n"
        b"Host: api.openai.com\r\n"
        b"Authorization: Bearer " + api_key.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    answer = json.dumps(
        {
            "id": "chatcmpl-bridge-example",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bridge!"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26},
        }
    ).encode()
    response = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
    )
    return request, response


def exchange_lines(pid: int, fd: int, request: bytes, response: bytes) -> Iterator[bytes]:
    """The lines a TLS-boundary hook would produce for one request/response."""
    common = {
        "pid": pid,
        "tid": pid,
        "metadata": {"comm": "emit_raw", "exe": sys.executable, "uid": os.getuid(), "fd": fd},
        "remote_host": "api.openai.com",
        "remote_port": 443,
    }
    yield capture_line("ConnOpen", **common)
    # A hook sees the bytes in whatever pieces the application wrote or read them.
    half = len(request) // 2
    yield capture_line("SslWrite", request[:half], **common)
    yield capture_line("SslWrite", request[half:], **common)
    yield capture_line("SslRead", response, **common)
    yield capture_line("ConnClose", **common)


def connect(path: str) -> socket.socket:
    """Connect, after checking the socket is the sensor's and not a stranger's.

    In a shared directory such as /tmp, anyone could create the path first; plaintext
    must only go to a socket owned by us or by root.
    """
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid not in (os.getuid(), 0):
        raise SystemExit(f"{path} is not a socket owned by this user or root; not sending")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=os.environ.get("OISP_SOCKET", "/tmp/oisp.sock"))
    parser.add_argument("--count", type=int, default=1, help="exchanges to send")
    parser.add_argument("--pid", type=int, default=os.getpid(), help="pid to report")
    args = parser.parse_args(argv)
    try:
        sock = connect(args.socket)
    except FileNotFoundError:
        print(
            f"no sensor socket at {args.socket}: is `oisp-sensor record` running?", file=sys.stderr
        )
        return 1
    with sock:
        for n in range(args.count):
            request, response = openai_chat_exchange()
            for line in exchange_lines(args.pid, 100 + n, request, response):
                sock.sendall(line)
    print(f"sent {args.count} exchange(s) to {args.socket}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
