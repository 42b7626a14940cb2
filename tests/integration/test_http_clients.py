"""Plain HTTP clients (httpx, requests, curl) through the relay: byte-exact, and never buffered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import httpx
import pytest
import requests

from oisp_sensor.demo import Script
from tests.integration.conftest import LiveSensor, by_type

CHAT_URL = "https://api.openai.com/v1/chat/completions"
HEADERS = {"Authorization": "Bearer sk-test-http-0123456789", "Content-Type": "application/json"}


def chat_body(stream: bool) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Count to five."}],
    }


def test_httpx_stream_is_byte_exact_and_unbuffered(live_env: LiveSensor) -> None:
    live = live_env
    live.fake.queue(Script(text="one two three four five", interval_s=0.04))
    pieces: list[tuple[int, bytes]] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", CHAT_URL, json=chat_body(True), headers=HEADERS) as response,
    ):
        assert response.status_code == 200
        pieces.extend((time.time_ns(), raw) for raw in response.iter_raw())
    sent = live.fake.sent[-1]
    assert b"".join(raw for _, raw in pieces) == sent.body
    # Each event was flushed on its own: the client saw the first long before the last was sent.
    assert pieces[0][0] < sent.chunks[-1].ts_ns
    assert len(pieces) >= len(sent.chunks) // 2, "events arrived coalesced (buffered)"

    events = live.stop()
    (response_event,) = by_type(events, "ai.response")
    assert response_event["data"]["choices"][0]["message"]["content"] == "one two three four five"


def test_httpx_keep_alive_many_requests_one_connection(live_env: LiveSensor) -> None:
    live = live_env
    with httpx.Client(timeout=10) as client:
        bodies = []
        for i in range(5):
            live.fake.queue(Script(text=f"answer {i}"))
            response = client.post(CHAT_URL, json=chat_body(False), headers=HEADERS)
            bodies.append(response.content)
    assert bodies == [ex.body for ex in live.fake.sent]
    events = live.stop()
    responses = by_type(events, "ai.response")
    assert [r["data"]["choices"][0]["message"]["content"] for r in responses] == [
        f"answer {i}" for i in range(5)
    ]
    assert len(by_type(events, "network.connect")) == 1
    assert len({r["process"]["pid"] for r in responses}) == 1


def test_requests_stream_and_plain(live_env: LiveSensor) -> None:
    live = live_env
    live.fake.queue(Script(text="streamed by requests", interval_s=0.03), Script(text="plain"))
    with requests.Session() as session:
        response = session.post(
            CHAT_URL, json=chat_body(True), headers=HEADERS, stream=True, timeout=10
        )
        first_ns, parts = 0, []
        for part in response.iter_content(chunk_size=None):
            first_ns = first_ns or time.time_ns()
            parts.append(part)
        streamed = live.fake.sent[-1]
        assert b"".join(parts) == streamed.body
        assert first_ns < streamed.chunks[-1].ts_ns
        plain = session.post(CHAT_URL, json=chat_body(False), headers=HEADERS, timeout=10)
        assert plain.content == live.fake.sent[-1].body
    events = live.stop()
    texts = [r["data"]["choices"][0]["message"]["content"] for r in by_type(events, "ai.response")]
    assert texts == ["streamed by requests", "plain"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_stream(live_sensor: LiveSensor) -> None:
    live = live_sensor
    live.fake.queue(Script(text="curl sees every piece as it comes", interval_s=0.04))
    command = ["curl", "-sS", "-N", CHAT_URL, "-d", json.dumps(chat_body(True))]
    for name, value in HEADERS.items():
        command += ["-H", f"{name}: {value}"]
    env = live.child_env()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.read1(65536)
        first_ns = time.time_ns()
        rest = proc.stdout.read()
        errors = proc.stderr.read()
        assert proc.wait(10) == 0, errors
    sent = live.fake.sent[-1]
    assert first + rest == sent.body
    assert first_ns < sent.chunks[-1].ts_ns
    events = live.stop()
    (request,) = by_type(events, "ai.request")
    assert request["process"]["name"] == "curl"
    assert request["process"]["pid"] == proc.pid
    assert request["process"]["ppid"] == os.getpid()


def test_aiohttp_with_trust_env(live_env: LiveSensor) -> None:
    """aiohttp follows HTTPS_PROXY only with trust_env=True (google-genai sets it)."""
    import asyncio
    import ssl

    import aiohttp

    live = live_env
    live.fake.queue(Script(text="aiohttp streamed", interval_s=0.03))
    trust = ssl.create_default_context(cafile=live.env["SSL_CERT_FILE"])

    async def call() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession(trust_env=True) as session,
            session.post(CHAT_URL, json=chat_body(True), headers=HEADERS, ssl=trust) as response,
        ):
            first_ns = 0
            body = b""
            async for piece in response.content.iter_any():
                first_ns = first_ns or time.time_ns()
                body += piece
            return first_ns, body

    first_ns, body = asyncio.run(call())
    sent = live.fake.sent[-1]
    assert body == sent.body
    assert first_ns < sent.chunks[-1].ts_ns
    events = live.stop()
    (response_event,) = by_type(events, "ai.response")
    assert response_event["data"]["choices"][0]["message"]["content"] == "aiohttp streamed"
