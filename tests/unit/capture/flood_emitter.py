"""A bridge emitter that sends as fast as the socket takes it (run as a separate process).

Usage: python flood_emitter.py SOCKET COUNT PAD — COUNT chat exchanges on one
connection, each request carrying PAD bytes of prompt.
"""

from __future__ import annotations

import base64
import json
import socket
import sys

T0 = 1_767_225_600_000_000_000


def line(kind: str, data: bytes, ts: int) -> bytes:
    record = {
        "timestamp_ns": ts,
        "kind": kind,
        "pid": 4242,
        "remote_host": "api.openai.com",
        "remote_port": 443,
        "metadata": {"fd": 7},
        "data": base64.b64encode(data).decode(),
    }
    return json.dumps(record).encode() + b"\n"


def exchange(n: int, pad: int) -> tuple[bytes, bytes]:
    prompt = {"role": "user", "content": "p" * pad}
    body = json.dumps({"model": "gpt-4o-mini", "messages": [prompt]}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "ok"},
        "finish_reason": "stop",
    }
    answer = json.dumps(
        {
            "id": f"c{n}",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(answer)
    ) + answer
    return request, response


def main() -> None:
    path, count, pad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        ts = T0
        for n in range(count):
            request, response = exchange(n, pad)
            s.sendall(line("SslWrite", request, ts) + line("SslRead", response, ts + 1000))
            ts += 2000


if __name__ == "__main__":
    main()
