"""Planted secrets never reach a file, a store row or a log line, in any redaction mode.

Traffic full of planted API keys (in headers, URLs and bodies) and personal data
goes through the real pipeline from two capture sources at once — RawCapture lines
over the real unix-socket bridge, and direct submissions the way the TLS relay makes
them — into the real JSONL and SQLite sinks, with every log record captured through
the CLI's log filter. Then every byte the sensor wrote (JSONL, the SQLite file with
its WAL and shared-memory files, the log) is searched for every planted value.

The end-to-end variant through the relay and the web API belongs with those parts
(see the report of issue 7); this one covers every sink that exists.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from oisp_sensor.capture.bridge import Bridge
from oisp_sensor.config import Config, RedactionConfig, RedactionPattern
from oisp_sensor.counters import Counters
from oisp_sensor.events import CaptureKind, RawCapture
from oisp_sensor.privacy.logfilter import install_log_redaction
from oisp_sensor.sensor import build_pipeline
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from tests.conformance import assert_valid_file
from tests.helpers import T0, http_request, http_response, sse_events
from tests.unit.privacy import planted as p

TICKET = "INC-4471902"  # matched by a custom pattern from the config
SYSTEM = f"You help ACME support. Escalate to {p.EMAIL} or {p.PHONE_INTL}. Ticket {TICKET}."
USER = (
    f"Card {p.CARD_VISA}, IBAN {p.IBAN_DE}, SSN {p.SSN}, call {p.PHONE_US}. Old key "
    f"{p.OPENAI_LEGACY_KEY}; db postgres://admin:{p.URL_PASSWORD}@db:5432/x; "
    f"jwt {p.JWT}; stripe {p.STRIPE_LIVE}\n{p.PRIVATE_KEY}"
)
ARGUMENTS = json.dumps({"to": p.EMAIL, "token": p.GITHUB_TOKEN, "card": p.CARD_MASTERCARD})
TOOL_RESULT = f"sent. aws_secret_access_key={p.AWS_SECRET_KEY} iban {p.IBAN_GB} {p.SLACK_TOKEN}"
ANSWER = f"Done. Your new key is {p.STRIPE_RESTRICTED}; we called {p.PHONE_NATIONAL}."
THINKING = f"The user pasted {p.ANTHROPIC_KEY} and {p.SSN}; never repeat them."

SECRETS = [
    p.OPENAI_PROJECT_KEY,
    p.OPENAI_LEGACY_KEY,
    p.ANTHROPIC_KEY,
    p.GOOGLE_KEY,
    p.AWS_ACCESS_KEY,
    p.AWS_SECRET_KEY,
    p.GITHUB_TOKEN,
    p.SLACK_TOKEN,
    p.STRIPE_LIVE,
    p.STRIPE_RESTRICTED,
    p.JWT,
    p.URL_PASSWORD,
    p.QUERY_TOKEN,
    p.PEM_BODY,
    p.BEARER_OPAQUE,
    "sess_Zx81Kq77Lm",  # a cookie value
    TICKET,
]
PII = p.PII_IN_TRAFFIC
CONTENT = [SYSTEM, USER, TOOL_RESULT, ANSWER, THINKING, "You help ACME support", "never repeat"]


def exchanges() -> list[tuple[str, int, bytes, bytes]]:
    """(host, port, request, response) for every place a secret can hide in traffic."""
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "notify", "arguments": ARGUMENTS},
    }
    openai_first = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "notify", "description": f"mails {p.EMAIL}"},
                }
            ],
        },
        headers={
            "Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}",
            "Cookie": "session=sess_Zx81Kq77Lm",
            "Referer": f"https://app.example.com/u/{p.EMAIL}?token={p.QUERY_TOKEN}",
            "X-Debug-Token": p.BEARER_OPAQUE,
        },
    )
    openai_first_response = http_response(
        {
            "id": "chatcmpl-9",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320},
        }
    )
    openai_second = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "stream": True,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_9", "content": TOOL_RESULT},
            ],
        },
        headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
    )
    stream = sse_events(
        *(
            {"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": piece}}]}
            for piece in (ANSWER[:17], ANSWER[17:40], ANSWER[40:])
        ),
        "[DONE]",
    )
    openai_second_response = http_response(content_type="text/event-stream", chunks=stream)
    anthropic = http_request(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": USER}],
        },
        host="api.anthropic.com",
        headers={"x-api-key": p.ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    )
    anthropic_response = http_response(
        {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": THINKING, "signature": "s"},
                {"type": "text", "text": ANSWER},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 80, "output_tokens": 30},
        }
    )
    gemini = http_request(
        f"/v1beta/models/gemini-2.0-flash:generateContent?key={p.GOOGLE_KEY}",
        {"contents": [{"role": "user", "parts": [{"text": USER}]}]},
        host="generativelanguage.googleapis.com",
        headers={"x-goog-api-key": p.GOOGLE_KEY},
    )
    gemini_response = http_response(
        {"error": {"code": 400, "message": f"API key not valid: {p.GOOGLE_KEY}", "status": "X"}},
        status=400,
        reason="Bad Request",
    )
    bedrock = http_request(
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        {"messages": [{"role": "user", "content": [{"text": USER}]}]},
        host="bedrock-runtime.us-east-1.amazonaws.com",
        headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential={p.AWS_ACCESS_KEY}/20250101/us-east-1/"
            "bedrock/aws4_request, SignedHeaders=host, Signature=00ff"
        },
    )
    bedrock_response = http_response(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": ANSWER}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 5, "outputTokens": 6},
        }
    )
    # Broken traffic whose error messages could quote a header line or a URL.
    broken = (
        f"POST /v1/chat/completions?key={p.GOOGLE_KEY} HTTP/1.1\r\nHost: api.openai.com\r\n"
        f"Authorization Bearer {p.OPENAI_PROJECT_KEY}\r\n\r\n"
    ).encode()
    return [
        (
            "api.openai.com",
            443,
            openai_first + openai_second,
            openai_first_response + openai_second_response,
        ),
        ("api.anthropic.com", 443, anthropic, anthropic_response),
        ("generativelanguage.googleapis.com", 443, gemini, gemini_response),
        ("bedrock-runtime.us-east-1.amazonaws.com", 443, bedrock, bedrock_response),
        ("api.openai.com", 443, broken, b""),
    ]


def raws(source: str) -> list[RawCapture]:
    """Captures of every exchange, as the bridge (tls_boundary) or the relay (mitm_proxy)
    makes them."""
    out = []
    ts = T0
    for n, (host, port, request, response) in enumerate(exchanges()):
        meta = {"comm": "agent", "fd": 100 + n, "cmdline": f"agent --api-key={p.STRIPE_LIVE}"}
        method = "mitm_proxy" if source == "relay" else "tls_boundary"
        pid = 5000 if source == "relay" else 6000
        for kind, data in ((CaptureKind.SSL_WRITE, request), (CaptureKind.SSL_READ, response)):
            for i in range(0, len(data), 700):  # several reads per message
                ts += 1_000_000
                out.append(
                    RawCapture(
                        kind=kind,
                        timestamp_ns=ts,
                        data=data[i : i + 700],
                        pid=pid,
                        metadata=meta,
                        remote_host=host,
                        remote_port=port,
                        capture_method=method,
                    )
                )
        ts += 1_000_000
        out.append(
            RawCapture(
                kind=CaptureKind.CONN_CLOSE,
                timestamp_ns=ts,
                pid=pid,
                metadata=meta,
                remote_host=host,
                remote_port=port,
                capture_method=method,
            )
        )
    return out


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Every log record of every logger, at DEBUG, through the filter the CLI installs."""
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    filt = install_log_redaction(root)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for h in root.handlers:
            h.removeFilter(filt)


@pytest.fixture
async def sock_dir() -> AsyncIterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="oisp-p-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def run_sensor(mode: str, out: Path, socket_path: Path) -> tuple[Path, Path, Counters]:
    jsonl, db = out / "events.jsonl", out / "events.db"
    config = Config(
        redaction=RedactionConfig(mode=mode, patterns=(RedactionPattern("ticket", r"INC-\d{7}"),))
    )
    counters = Counters()
    pipeline = build_pipeline(
        config, sinks=[JsonlSink(jsonl), StoreSink(db, counters=counters)], counters=counters
    )
    await pipeline.start()
    bridge = Bridge(
        socket_path, pipeline.submit, counters, has_room=lambda: not pipeline.queue.full()
    )
    await bridge.start()
    try:
        _, writer = await asyncio.open_unix_connection(str(socket_path))
        for raw in raws("bridge"):
            writer.write(raw.to_json_line())
        await writer.drain()
        for raw in raws("relay"):
            assert pipeline.submit(raw)
        writer.close()
        await writer.wait_closed()
        for _ in range(200):  # the bridge reads asynchronously: wait for every line
            if counters.get("capture.bytes") >= 2 * sum(len(r.data) for r in raws("relay")):
                break
            await asyncio.sleep(0.02)
    finally:
        await bridge.close()
        await pipeline.stop()
    return jsonl, db, counters


def everything_written(out: Path, log: str) -> dict[str, bytes]:
    files = {f.name: f.read_bytes() for f in sorted(out.iterdir()) if f.is_file()}
    files["log"] = log.encode()
    return files


@pytest.mark.parametrize("mode", ["safe", "full", "minimal"])
async def test_no_planted_value_is_written_anywhere(
    mode: str, tmp_path: Path, sock_dir: Path, log_text: io.StringIO
) -> None:
    jsonl, db, counters = await run_sensor(mode, tmp_path, sock_dir / "oisp.sock")
    events = assert_valid_file(jsonl)
    types = [e["event_type"] for e in events]
    assert types.count("ai.request") >= 10 and "agent.tool_result" in types  # both sources decoded
    assert {e["source"]["capture_method"] for e in events} == {"mitm_proxy", "tls_boundary"}
    assert counters.get("decode.internal_errors") == 0 and counters.get("redaction.errors") == 0
    written = everything_written(tmp_path, log_text.getvalue())
    assert any(name.startswith("events.db") for name in written)
    must_vanish = SECRETS + ([] if mode == "full" else PII) + (CONTENT if mode == "minimal" else [])
    for name, data in written.items():
        for value in must_vanish:
            for form in _forms(value):
                assert form not in data, f"{mode}: {value[:24]!r} found in {name}"


@pytest.mark.parametrize("mode", ["safe", "full", "minimal"])
async def test_what_is_kept_is_still_useful(
    mode: str, tmp_path: Path, sock_dir: Path, log_text: io.StringIO
) -> None:
    jsonl, _, _ = await run_sensor(mode, tmp_path, sock_dir / "oisp.sock")
    events = assert_valid_file(jsonl)
    request = next(e for e in events if e["event_type"] == "ai.request")
    assert request["data"]["auth"]["key_prefix"] == p.OPENAI_PROJECT_KEY[:8]
    assert request["data"]["auth"]["key_hash"].startswith("hmac-sha256:")
    assert request["confidence"]["redaction_profile"] == mode
    response = next(e for e in events if e["event_type"] == "ai.response")
    assert response["data"]["usage"]["total_tokens"] == 320
    # Both capture sources were redacted identically.
    by_source: dict[str, list[object]] = {}
    for e in events:
        if e["event_type"] == "ai.request":
            by_source.setdefault(e["source"]["capture_method"], []).append(e["data"]["messages"])
    assert by_source["mitm_proxy"] == by_source["tls_boundary"]
    content = request["data"]["messages"][1]["content"]
    if mode == "minimal":
        assert content["$redacted"]["original_length"] == len(USER)
    else:
        assert content.startswith("Card ")
        assert ("[CREDIT_CARD:" in content) is (mode == "safe")


def _forms(value: str) -> list[bytes]:
    """A value as it could appear in bytes: raw, JSON-escaped, and without separators."""
    forms = {value, json.dumps(value)[1:-1]}
    if " " in value or "-" in value:
        compact = value.replace(" ", "").replace("-", "")
        if compact.isdigit() or compact.isalnum():
            forms.add(compact)
    return [f.encode() for f in forms if len(f) >= 8]
