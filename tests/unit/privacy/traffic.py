"""Realistic decoded events carrying planted secrets and personal data everywhere content goes.

Built by the real Decoder from HTTP bytes (tests/helpers.py), so the redaction tests
see exactly the shapes the pipeline hands to the redactor: OpenAI chat with a tool
call and its result on a second request, Anthropic with thinking, streamed deltas,
a failed call whose error quotes the key, process command lines and web context.
"""

from __future__ import annotations

import json
from typing import Any

from oisp_sensor.events import CaptureKind, Event, RawCapture
from tests.helpers import (
    T0,
    captures,
    decode,
    http_request,
    http_response,
    sse_events,
)
from tests.unit.privacy import planted as p

SYSTEM = f"You are the support bot. Escalate to {p.EMAIL} or {p.PHONE_INTL}."
USER = (
    f"My card {p.CARD_VISA} was charged twice, IBAN {p.IBAN_DE}, SSN {p.SSN}. "
    f"Our staging key is {p.OPENAI_LEGACY_KEY} and the DB is "
    f"postgres://admin:{p.URL_PASSWORD}@db.internal:5432/app"
)
ARGUMENTS = {
    "customer_email": p.EMAIL,
    "github_token": p.GITHUB_TOKEN,
    "note": f"call {p.PHONE_US}",
}
TOOL_RESULT = (
    f"Found account {p.IBAN_GB} owned by {p.EMAIL}; aws_secret_access_key={p.AWS_SECRET_KEY}"
)
ANSWER = f"I refunded {p.CARD_MASTERCARD}. Your new token is {p.SLACK_TOKEN}."
THINKING = f"The user pasted {p.ANTHROPIC_KEY}; I must not repeat {p.SSN}."

# What a user would never want stored, in every mode: secrets. And in safe/minimal: PII.
SECRET_VALUES = [
    p.OPENAI_PROJECT_KEY,
    p.OPENAI_LEGACY_KEY,
    p.ANTHROPIC_KEY,
    p.GITHUB_TOKEN,
    p.AWS_SECRET_KEY,
    p.SLACK_TOKEN,
    p.URL_PASSWORD,
    p.GOOGLE_KEY,
    p.STRIPE_LIVE,
]
PII_VALUES = [
    p.EMAIL,
    p.PHONE_INTL,
    p.PHONE_US,
    p.CARD_VISA,
    p.CARD_MASTERCARD,
    p.IBAN_DE,
    p.IBAN_GB,
    p.SSN,
]
CONTENT_VALUES = [SYSTEM, USER, TOOL_RESULT, ANSWER, THINKING, "Tell me a joke about owls"]


def openai_tool_round_trip() -> list[dict[str, Any]]:
    """Request -> tool call (arguments with PII and a token) -> request with the result."""
    first = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "lookup_customer",
                        "description": f"Looks customers up; admin contact {p.EMAIL}",
                    },
                }
            ],
        },
        headers={
            "Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}",
            "Referer": f"https://app.example.com/support/{p.EMAIL}?token={p.QUERY_TOKEN}",
            "Origin": "https://app.example.com",
        },
    )
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "lookup_customer", "arguments": json.dumps(ARGUMENTS)},
    }
    first_response = http_response(
        {
            "id": "chatcmpl-1",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        }
    )
    second = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "stream": True,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": TOOL_RESULT},
            ],
        },
        headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
    )
    chunks = sse_events(
        {
            "id": "c2",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": ANSWER[:20]}}],
        },
        {
            "id": "c2",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": ANSWER[20:]}}],
        },
        {
            "id": "c2",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        },
        "[DONE]",
    )
    second_response = http_response(content_type="text/event-stream", chunks=chunks)
    raws = captures([(first, first_response), (second, second_response)])
    meta = {
        "comm": "python3",
        "exe": "/usr/bin/python3",
        "cmdline": f"python3 agent.py --api-key={p.STRIPE_LIVE} --notify {p.EMAIL}",
        "uid": 1000,
        "fd": 7,
        "ppid": 1,
    }
    raws = [_with_meta(r, meta) for r in raws]
    return decode(raws, record_chunks=True)


def anthropic_with_thinking() -> list[dict[str, Any]]:
    request = http_request(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": [{"type": "text", "text": USER}]}],
        },
        host="api.anthropic.com",
        headers={"x-api-key": p.ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
    )
    response = http_response(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": THINKING, "signature": "sig"},
                {"type": "text", "text": ANSWER},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 50, "output_tokens": 20},
        }
    )
    return decode(captures([(request, response)], host="api.anthropic.com"))


def failed_call() -> list[dict[str, Any]]:
    """A 401 whose error message quotes the key (providers do this, partly masked or not)."""
    request = http_request(
        "/v1beta/models/gemini-2.0-flash:generateContent?key=" + p.GOOGLE_KEY,
        {"contents": [{"role": "user", "parts": [{"text": "Tell me a joke about owls"}]}]},
        host="generativelanguage.googleapis.com",
    )
    response = http_response(
        {"error": {"code": 400, "message": f"API key not valid: {p.GOOGLE_KEY}", "status": "X"}},
        status=400,
        reason="Bad Request",
    )
    return decode(captures([(request, response)], host="generativelanguage.googleapis.com"))


def all_events() -> list[dict[str, Any]]:
    return openai_tool_round_trip() + anthropic_with_thinking() + failed_call()


def fresh(events: list[dict[str, Any]]) -> list[Event]:
    """Events as the pipeline holds them (independent copies, so tests can redact each)."""
    return [Event.from_dict(json.loads(json.dumps(e))) for e in events]


def _with_meta(raw: RawCapture, meta: dict[str, Any]) -> RawCapture:
    return RawCapture(
        kind=raw.kind,
        timestamp_ns=raw.timestamp_ns,
        data=raw.data,
        pid=raw.pid,
        metadata=meta,
        remote_host=raw.remote_host,
        remote_port=raw.remote_port,
    )


def connect_event() -> RawCapture:
    return RawCapture(
        kind=CaptureKind.CONN_OPEN,
        timestamp_ns=T0,
        pid=99,
        remote_host="api.openai.com",
        remote_port=443,
        metadata={"comm": "curl", "fd": 3},
    )
