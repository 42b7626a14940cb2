"""Anthropic Messages: wire bytes in, ai.request / ai.response / agent.* events out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance import assert_valid_events
from tests.unit.decode.wire import (
    ANTHROPIC_KEY,
    ANTHROPIC_MODEL,
    MESSAGE_STOP,
    PING,
    Captures,
    anthropic_request,
    anthropic_stream,
    block_delta,
    block_start,
    block_stop,
    json_response,
    message_delta,
    message_start,
    one,
    run,
)

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


def exchange(body: dict[str, Any], response: bytes | list[bytes]) -> list[dict[str, Any]]:
    caps = Captures()
    conn = caps.conn(host="api.anthropic.com")
    conn.send(anthropic_request(body), 0)
    conn.recv(response, 400, step_ms=10)
    conn.close(3000)
    events = run(caps.raws)
    assert_valid_events(events)
    return events


def message(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, **usage},
    }


def response_json(body: Any, **kw: Any) -> bytes:
    return json_response(
        body, request_id_header="request-id", request_id="req_018EeWyXxfu5pfWkrYcMdjWG", **kw
    )


SIMPLE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hi"}],
}


# --- requests ------------------------------------------------------------------------------


def test_request_system_string_messages_tools_and_parameters() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "system": "You are a weather bot.",
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 40,
        "stop_sequences": ["END"],
        "tools": [
            WEATHER,
            {"type": "computer_20250124", "name": "computer", "display_width_px": 1024},
        ],
        "tool_choice": {"type": "any"},
        "thinking": {"type": "enabled", "budget_tokens": 1500},
        "messages": [
            {"role": "user", "content": "What's the weather in SF?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "I should call the tool.",
                        "signature": "EqQB",
                    },
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01A",
                        "name": "get_weather",
                        "input": {"location": "San Francisco, CA"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15 degrees"},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
    }
    req = one(
        exchange(body, response_json(message([{"type": "text", "text": "ok"}]))), "ai.request"
    )
    data = req["data"]
    assert data["provider"] == {
        "name": "anthropic",
        "endpoint": "https://api.anthropic.com/v1/messages",
    }
    assert data["model"] == {"id": "claude-sonnet-4-5", "family": "claude-4.5"}
    assert data["has_system_prompt"] is True
    roles = [(m["role"], m["content"]) for m in data["messages"]]
    assert roles == [
        ("system", "You are a weather bot."),
        ("user", "What's the weather in SF?"),
        ("assistant", "Let me check."),
        ("tool", "15 degrees"),
        ("user", "Thanks!"),
    ]
    assistant = data["messages"][2]
    assert assistant["thinking"] == "I should call the tool."
    assert assistant["tool_calls"] == [
        {
            "type": "function",
            "arguments": {"location": "San Francisco, CA"},
            "id": "toolu_01A",
            "name": "get_weather",
        },
    ]
    assert data["messages"][3]["tool_call_id"] == "toolu_01A"
    assert data["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the current weather in a given location",
        },
        {"type": "computer_use", "name": "computer"},
    ]
    assert data["tool_choice"] == "required"
    assert data["parameters"] == {
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 40,
        "max_tokens": 2048,
        "stop": ["END"],
        "thinking_budget_tokens": 1500,
    }
    assert data["streaming"] is False
    assert data["auth"]["key_prefix"] == ANTHROPIC_KEY[:8]
    assert req["attrs"]["http"]["request_headers"]["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in req["attrs"]["http"]["request_headers"]


def test_request_system_as_blocks_and_images() -> None:
    body = {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "Part one.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Part two."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {"type": "text", "text": "Describe."},
                ],
            }
        ],
    }
    data = one(
        exchange(body, response_json(message([{"type": "text", "text": "."}]))), "ai.request"
    )["data"]
    assert data["messages"][0] == {
        "role": "system",
        "content": "Part one.\nPart two.",
        "content_length": 19,
    }
    assert data["messages"][1]["has_images"] is True and data["messages"][1]["image_count"] == 1
    assert data["image_count"] == 1
    assert data["model"]["family"] == "claude-3.5"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "get_weather"}, "specific"),
        ({"type": "none"}, "none"),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], expected: str) -> None:
    body = {**SIMPLE, "tools": [WEATHER], "tool_choice": choice}
    data = one(
        exchange(body, response_json(message([{"type": "text", "text": "."}]))), "ai.request"
    )["data"]
    assert data["tool_choice"] == expected


# --- non-streaming responses ---------------------------------------------------------------


def test_non_streaming_text_usage_with_cache() -> None:
    body = message(
        [{"type": "text", "text": "Hello there."}],
        cache_creation_input_tokens=100,
        cache_read_input_tokens=2000,
    )
    events = exchange(SIMPLE, response_json(body))
    resp = one(events, "ai.response")
    data = resp["data"]
    assert data["success"] is True
    assert data["provider_request_id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert resp["attrs"]["provider_http_request_id"] == "req_018EeWyXxfu5pfWkrYcMdjWG"
    assert data["model"]["id"] == ANTHROPIC_MODEL
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there."},
            "finish_reason": "stop",
        }
    ]
    assert resp["attrs"]["finish_reason_raw"] == "end_turn"
    # input_tokens excludes cached input: prompt = 2095 + 100 + 2000.
    assert data["usage"] == {
        "prompt_tokens": 4195,
        "completion_tokens": 503,
        "total_tokens": 4698,
        "cached_tokens": 2000,
        "cache_creation_tokens": 100,
    }


def test_non_streaming_thinking_and_tool_use() -> None:
    body = message(
        [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "Eq=="},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "I'll check."},
            {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"},
            },
        ],
        stop="tool_use",
    )
    events = exchange({**SIMPLE, "tools": [WEATHER]}, response_json(body))
    resp = one(events, "ai.response")
    msg = resp["data"]["choices"][0]["message"]
    assert msg["content"] == "I'll check."
    assert msg["thinking"] == "The user wants weather."
    assert resp["attrs"]["redacted_thinking_blocks"] == 1
    assert resp["data"]["finish_reason"] == "tool_calls"
    call = one(events, "agent.tool_call")["data"]
    assert call["call_id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert call["arguments"] == {"location": "San Francisco, CA", "unit": "celsius"}
    assert json.loads(resp["data"]["tool_calls"][0]["arguments"]) == call["arguments"]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(raw: str, normal: str) -> None:
    data = one(
        exchange(SIMPLE, response_json(message([{"type": "text", "text": "x"}], raw))),
        "ai.response",
    )["data"]
    assert data["finish_reason"] == normal


# --- streaming -----------------------------------------------------------------------------


def thinking_tool_stream() -> list[bytes]:
    return anthropic_stream(
        [
            message_start(
                usage={
                    "input_tokens": 472,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1200,
                    "output_tokens": 2,
                }
            ),
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            block_delta(0, {"type": "thinking_delta", "thinking": "The user asks about"}),
            PING,
            block_delta(0, {"type": "thinking_delta", "thinking": " Paris weather."}),
            block_delta(
                0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}
            ),
            block_stop(0),
            block_start(1, {"type": "text", "text": ""}),
            block_delta(1, {"type": "text_delta", "text": "Okay, let me "}),
            block_delta(1, {"type": "text_delta", "text": "check."}),
            block_stop(1),
            block_start(
                2, {"type": "tool_use", "id": "toolu_01W", "name": "get_weather", "input": {}}
            ),
            block_delta(2, {"type": "input_json_delta", "partial_json": ""}),
            block_delta(2, {"type": "input_json_delta", "partial_json": '{"locat'}),
            block_delta(2, {"type": "input_json_delta", "partial_json": 'ion": "Paris"}'}),
            block_stop(2),
            block_start(
                3, {"type": "tool_use", "id": "toolu_01X", "name": "get_time", "input": {}}
            ),
            block_delta(3, {"type": "input_json_delta", "partial_json": '{"tz": "CET"}'}),
            block_stop(3),
            message_delta("tool_use", {"output_tokens": 89}),
            MESSAGE_STOP,
        ]
    )


def test_streaming_thinking_text_and_parallel_tool_use() -> None:
    events = exchange(
        {
            **SIMPLE,
            "stream": True,
            "tools": [WEATHER],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        thinking_tool_stream(),
    )
    resp = one(events, "ai.response")
    data = resp["data"]
    assert data["choices"][0]["message"]["content"] == "Okay, let me check."
    assert data["choices"][0]["message"]["thinking"] == "The user asks about Paris weather."
    assert [(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"]] == [
        ("toolu_01W", "get_weather", '{"location": "Paris"}'),
        ("toolu_01X", "get_time", '{"tz": "CET"}'),
    ]
    assert data["finish_reason"] == "tool_calls"
    assert data["usage"] == {
        "prompt_tokens": 1672,
        "completion_tokens": 89,
        "total_tokens": 1761,
        "cached_tokens": 1200,
        "cache_creation_tokens": 0,
    }
    assert data["provider_request_id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert resp["attrs"]["provider_http_request_id"] == "req_011CSHoEeqs5C35K2UUqR7Fy"
    calls = [e["data"] for e in events if e["event_type"] == "agent.tool_call"]
    assert [(c["call_id"], c["arguments"]) for c in calls] == [
        ("toolu_01W", {"location": "Paris"}),
        ("toolu_01X", {"tz": "CET"}),
    ]


def test_message_delta_with_cumulative_input_usage() -> None:
    # Newer API versions repeat input and cache counts in message_delta.
    pieces = anthropic_stream(
        [
            message_start(usage={"input_tokens": 10, "output_tokens": 1}),
            block_start(0, {"type": "text", "text": ""}),
            block_delta(0, {"type": "text_delta", "text": "Hi"}),
            block_stop(0),
            message_delta(
                "end_turn",
                {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 5,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": 7,
                },
            ),
            MESSAGE_STOP,
        ]
    )
    usage = one(exchange({**SIMPLE, "stream": True}, pieces), "ai.response")["data"]["usage"]
    assert usage == {
        "prompt_tokens": 15,
        "completion_tokens": 7,
        "total_tokens": 22,
        "cached_tokens": 5,
        "cache_creation_tokens": 0,
    }


def test_mid_stream_overloaded_error() -> None:
    pieces = anthropic_stream(
        [
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            block_delta(0, {"type": "text_delta", "text": "Once upon"}),
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ]
    )
    data = one(exchange({**SIMPLE, "stream": True}, pieces), "ai.response")["data"]
    assert data["success"] is False and data["status_code"] == 200
    assert data["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert data["choices"][0]["message"]["content"] == "Once upon"


def test_server_tool_use_in_a_stream() -> None:
    pieces = anthropic_stream(
        [
            message_start(),
            block_start(
                0,
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_01",
                    "name": "web_search",
                    "input": {"query": "weather paris"},
                },
            ),
            block_stop(0),
            message_delta("end_turn", {"output_tokens": 5}),
            MESSAGE_STOP,
        ]
    )
    data = one(exchange({**SIMPLE, "stream": True}, pieces), "ai.response")["data"]
    assert data["tool_calls"] == [
        {
            "type": "server_tool",
            "id": "srvtoolu_01",
            "name": "web_search",
            "arguments": '{"query":"weather paris"}',
            "arguments_hash": data["tool_calls"][0]["arguments_hash"],
        },
    ]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "etype", "text"),
    [
        (
            429,
            "Too Many Requests",
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (529, "Overloaded", "overloaded_error", "Overloaded"),
        (400, "Bad Request", "invalid_request_error", "max_tokens: Field required"),
        (500, "Internal Server Error", "api_error", "Internal server error"),
    ],
)
def test_error_bodies(status: int, reason: str, etype: str, text: str) -> None:
    body = {
        "type": "error",
        "error": {"type": etype, "message": text},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    data = one(exchange(SIMPLE, response_json(body, status=status, reason=reason)), "ai.response")[
        "data"
    ]
    assert data["success"] is False
    assert data["status_code"] == status
    assert data["error"] == {"type": etype, "message": text}


def test_key_appears_nowhere_in_the_events() -> None:
    text = json.dumps(exchange({**SIMPLE, "stream": True}, thinking_tool_stream()))
    assert ANTHROPIC_KEY not in text and ANTHROPIC_KEY[8:30] not in text


@pytest.mark.parametrize("whole", [True, False], ids=["one read", "one read per event"])
def test_text_keeps_its_order_around_other_events(whole: bool) -> None:
    """Text deltas of one read are handed over together; a block that starts with text of
    its own, between them, still comes in its place."""
    frames = anthropic_stream(
        [
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            block_delta(0, {"type": "text_delta", "text": "a"}),
            block_delta(0, {"type": "text_delta", "text": "b"}),
            block_stop(0),
            block_start(1, {"type": "text", "text": "C"}),
            block_delta(1, {"type": "text_delta", "text": "d"}),
            block_delta(1, {"type": "thinking_delta", "thinking": "t"}),
            block_delta(1, {"type": "text_delta", "text": "e"}),
            message_delta("end_turn", {"output_tokens": 5}),
            MESSAGE_STOP,
        ]
    )
    events = exchange({**SIMPLE, "stream": True}, b"".join(frames) if whole else frames)
    message = one(events, "ai.response")["data"]["choices"][0]["message"]
    assert (message["content"], message["thinking"]) == ("abCde", "t")
