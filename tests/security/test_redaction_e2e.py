"""The planted-secrets test, end to end: `oisp-sensor record` as a user runs it.

For each redaction mode, the real program runs with every sink on (JSONL, the
SQLite store, the dashboard's web API and live WebSocket) and verbose logging.
Real HTTPS clients send requests through its relay to a local fake of the
providers, with planted API keys in headers, query strings and bodies, personal
data in prompts, and a fake model that answers with more of both (text, tool-call
arguments); a capture agent sends a RawCapture through the unix-socket bridge too.
Then every byte the sensor wrote — the JSONL file, the SQLite database with its WAL
and shared-memory files, its data directory, everything it printed, every web API
response and every live WebSocket message — is searched for every planted value.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from oisp_sensor.capture.ca import LocalCA, write_bundle
from oisp_sensor.demo import FakeProvider, FakeToolCall, Script
from oisp_sensor.events import CaptureKind, RawCapture
from tests.conformance import assert_valid_file
from tests.helpers import http_request
from tests.integration.conftest import (  # noqa: F401 - fixtures
    UpstreamCerts,
    connect_to_fake,
    fake_upstream,
    upstream_certs,
)
from tests.unit.privacy import planted as p

ROOT = Path(__file__).resolve().parents[2]

PROMPT = (
    f"Please refund card {p.CARD_VISA} (IBAN {p.IBAN_DE}, SSN {p.SSN}); reach me at {p.EMAIL} "
    f"or {p.PHONE_INTL}. Staging key {p.OPENAI_LEGACY_KEY}, db "
    f"postgres://admin:{p.URL_PASSWORD}@db:5432/x, token {p.GITHUB_TOKEN}."
)
SYSTEM = f"Support bot. Escalation: {p.PHONE_US}. Internal JWT {p.JWT}"
ANSWER = f"Refunded {p.CARD_MASTERCARD}. New key {p.STRIPE_LIVE}; we will call {p.PHONE_NATIONAL}."
TOOL_ARGS = {"email": p.EMAIL, "slack": p.SLACK_TOKEN, "iban": p.IBAN_GB}
TOOL_RESULT = f"ok, aws_secret_access_key={p.AWS_SECRET_KEY} for {p.EMAIL}"
BRIDGE_PROMPT = f"from the agent: {p.ANTHROPIC_KEY} and {p.SSN}"

SECRETS = [
    p.OPENAI_PROJECT_KEY,
    p.OPENAI_LEGACY_KEY,
    p.ANTHROPIC_KEY,
    p.GOOGLE_KEY,
    p.GITHUB_TOKEN,
    p.SLACK_TOKEN,
    p.STRIPE_LIVE,
    p.JWT,
    p.AWS_SECRET_KEY,
    p.URL_PASSWORD,
]
PII = p.PII_IN_TRAFFIC
CONTENT = [
    "Please refund card",
    "Support bot",
    "Refunded",
    "aws_secret_access_key=",
    "from the agent",
]


class LiveFeed:
    """Every message the dashboard's live WebSocket pushes, collected in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/api/live"
        self.messages: list[str] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "live WebSocket did not connect"

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                self.messages.append(msg.data)

    def close(self) -> list[str]:
        self.stop.set()
        self.thread.join(10)
        return self.messages


class Recording:
    """`oisp-sensor -vv record` in a subprocess, with everything it writes under `out`."""

    def __init__(self, mode: str, out: Path, fake: FakeProvider, certs: UpstreamCerts) -> None:
        self.out = out
        self.jsonl, self.db, self.socket = (
            out / "events.jsonl",
            out / "events.db",
            out / "oisp.sock",
        )
        args = [sys.executable, "-m", "oisp_sensor", "-vv", "record", "--redaction", mode]
        args += ["--output", str(self.jsonl), "--db", str(self.db), "--socket", str(self.socket)]
        args += [
            "--proxy-port",
            "0",
            "--web",
            "--port",
            "0",
            "--upstream-ca",
            str(certs.ca_path),
        ]
        for route in connect_to_fake(fake.port):
            args += ["--connect-to", route]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out
        )
        self.banner = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in self.banner and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner += line
        proxy = re.search(r"proxy\s+(http://127\.0\.0\.1:\d+)", self.banner)
        web = re.search(r"web\s+(http://127\.0\.0\.1:\d+/?)", self.banner)
        assert proxy and web, self.banner + self._stderr_now()
        self.proxy, self.web = proxy.group(1), web.group(1).rstrip("/")

    def _stderr_now(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> str:
        """SIGTERM, wait for the clean shutdown, and return everything it printed."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return self.banner + out + err


@pytest.fixture
def recordings() -> Iterator[list[Recording]]:
    started: list[Recording] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate(timeout=10)


def drive_traffic(rec: Recording, fake: FakeProvider) -> None:
    """Real HTTPS clients through the relay, and one capture over the bridge."""
    ca = LocalCA.load()
    assert ca is not None
    trust = ssl.create_default_context(cafile=str(write_bundle(ca)))
    fake.queue(
        Script(text="", tool_calls=(FakeToolCall("notify", TOOL_ARGS, id="call_planted"),)),
        Script(text=ANSWER),
        Script(text=ANSWER, thinking=f"I must not repeat {p.SSN} or {p.ANTHROPIC_KEY}"),
        Script(text=ANSWER),
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": PROMPT},
    ]
    with httpx.Client(proxy=rec.proxy, verify=trust, timeout=20) as client:
        first = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": messages},
            headers={
                "Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}",
                "Cookie": "s=sess_Zx81Kq77Lm",
            },
        )
        assert first.status_code == 200, first.text
        call = first.json()["choices"][0]["message"]["tool_calls"][0]
        follow_up = [
            *messages,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": TOOL_RESULT},
        ]
        second = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": follow_up, "stream": True},
            headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
        )
        assert second.status_code == 200
        third = client.post(
            "https://api.anthropic.com/v1/messages",
            json={
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "system": SYSTEM,
                "messages": [{"role": "user", "content": PROMPT}],
            },
            headers={"x-api-key": p.ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
        )
        assert third.status_code == 200, third.text
        fourth = client.post(
            f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent?key={p.GOOGLE_KEY}",
            json={"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
            headers={"x-goog-api-key": p.GOOGLE_KEY},
        )
        assert fourth.status_code == 200, fourth.text
    send_over_bridge(rec.socket)


def send_over_bridge(path: Path) -> None:
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": BRIDGE_PROMPT}]},
        headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
    )
    meta = {"comm": "agent", "fd": 9, "cmdline": f"agent --token={p.GITHUB_TOKEN}"}
    lines = b"".join(
        RawCapture(
            kind=kind,
            timestamp_ns=time.time_ns(),
            data=data,
            pid=os.getpid(),
            metadata=meta,
            remote_host="api.openai.com",
            remote_port=443,
        ).to_json_line()
        for kind, data in ((CaptureKind.SSL_WRITE, request), (CaptureKind.CONN_CLOSE, b""))
    )
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(lines)


def web_responses(base: str, jsonl: Path) -> dict[str, bytes]:
    """Every read endpoint of the API, and every event by id, as the dashboard fetches them."""
    out: dict[str, bytes] = {}
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=base, timeout=10) as client:
        while True:  # the store writes on its own thread: wait until it has the events
            listed = client.get("/api/events", params={"limit": 500})
            assert listed.status_code == 200, listed.text
            if len(listed.json().get("events", listed.json())) >= 8 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        out["/api/events"] = listed.content
        for path in (
            "/api/events/recent",
            "/api/stats",
            "/api/processes",
            "/api/capture",
            "/api/settings",
            "/api/health",
            "/api/facets",
        ):
            response = client.get(path)
            out[path] = response.content
        for report in ("summary", "costs", "providers", "models", "processes", "tools"):
            out[f"/api/reports/{report}"] = client.get(f"/api/reports/{report}").content
        ids = re.findall(rb'"event_id":\s*"([0-9A-Z]{26})"', listed.content)
        assert ids
        for event_id in ids:
            path = f"/api/events/{event_id.decode()}"
            response = client.get(path)
            assert response.status_code == 200
            out[path] = response.content
    return out


@pytest.mark.parametrize("mode", ["safe", "full", "minimal"])
def test_planted_secrets_reach_no_file_log_row_or_web_response(
    mode: str,
    tmp_path: Path,
    fake_upstream: FakeProvider,  # noqa: F811
    upstream_certs: UpstreamCerts,  # noqa: F811
    recordings: list[Recording],
) -> None:
    rec = Recording(mode, tmp_path, fake_upstream, upstream_certs)
    recordings.append(rec)
    feed = LiveFeed(rec.web)
    drive_traffic(rec, fake_upstream)
    written = web_responses(rec.web, rec.jsonl)
    written["live websocket"] = "\n".join(feed.close()).encode()
    written["stdout+stderr"] = rec.stop().encode()
    data_dir = Path(os.environ["OISP_DATA_DIR"])
    for directory in (tmp_path, data_dir):
        for path in directory.rglob("*"):
            if path.is_file():
                written[str(path)] = path.read_bytes()
    assert any(name.endswith("events.db") for name in written)

    events = assert_valid_file(rec.jsonl)
    types = [e["event_type"] for e in events]
    assert types.count("ai.request") == 5 and "agent.tool_result" in types, types
    assert {e["source"]["capture_method"] for e in events} == {"mitm_proxy", "tls_boundary"}
    assert all(e["confidence"]["redaction_profile"] == mode for e in events)
    assert b'"type":"events"' in written["live websocket"].replace(b" ", b"")

    must_vanish = SECRETS + ([] if mode == "full" else PII) + (CONTENT if mode == "minimal" else [])
    leaks = [
        f"{value[:24]!r} in {name}"
        for name, data in written.items()
        for value in must_vanish
        if any(form in data for form in _forms(value))
    ]
    assert not leaks, "\n".join(leaks)
    if mode == "full":  # content is kept: the test would notice if nothing were written
        assert p.EMAIL.encode() in written[str(rec.jsonl)]


def _forms(value: str) -> list[bytes]:
    """A value as it could appear: raw, JSON-escaped, and digits/letters only."""
    forms = {value, json.dumps(value)[1:-1]}
    compact = value.replace(" ", "").replace("-", "")
    if compact.isalnum():
        forms.add(compact)
    return [f.encode() for f in forms if len(f) >= 8]
