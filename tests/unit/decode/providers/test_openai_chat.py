"""OpenAI Chat Completions: wire bytes in, ai.request / ai.response / agent.* events out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance import assert_valid_events
from tests.unit.decode.wire import (
    OPENAI_KEY,
    OPENAI_MODEL,
    Captures,
    json_response,
    one,
    openai_chunk,
    openai_request,
    openai_stream,
    run,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def exchange(
    body: dict[str, Any], response: bytes | list[bytes], **request_kw: Any
) -> list[dict[str, Any]]:
    caps = Captures()
    conn = caps.conn()
    conn.send(openai_request(body, **request_kw), 0)
    conn.recv(response, 300, step_ms=10)
    conn.close(2000)
    events = run(caps.raws)
    assert_valid_events(events)
    return events


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": OPENAI_MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
        **extra,
    }


# --- requests ------------------------------------------------------------------------------


def test_request_messages_string_and_content_parts() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "You are terse."},
            {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
            {"role": "assistant", "content": None, "refusal": None},
            {"role": "user", "content": "And now?", "name": "alice"},
        ],
    }
    req = one(
        exchange(body, json_response(completion({"role": "assistant", "content": "ok"}))),
        "ai.request",
    )
    data = req["data"]
    assert [m["role"] for m in data["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert data["messages"][0]["content"] == "You are terse."
    assert data["messages"][1]["content"] == "Answer in French."
    assert data["messages"][2] == {
        "role": "user",
        "content": "What is in this image?",
        "content_length": len("What is in this image?"),
        "has_images": True,
        "image_count": 2,
    }
    assert data["messages"][4]["name"] == "alice"
    assert data["messages_count"] == 5
    assert data["has_system_prompt"] is True
    assert data["system_prompt_hash"].startswith("hmac-sha256:")
    assert data["has_images"] is True and data["image_count"] == 2
    assert data["request_type"] == "chat" and data["streaming"] is False
    assert data["model"] == {"id": "gpt-4o", "family": "gpt-4o"}
    assert data["provider"] == {
        "name": "openai",
        "endpoint": "https://api.openai.com/v1/chat/completions",
    }
    assert data["estimated_tokens"] > 0
    assert req["attrs"]["api"] == "openai.chat"
    headers = req["attrs"]["http"]["request_headers"]
    assert headers["user-agent"] == "OpenAI/Python 1.54.4"
    assert "authorization" not in headers


def test_request_tools_tool_choice_and_parameters() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            WEATHER_TOOL,
            {"type": "function", "function": {"name": "get_time"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 300,
        "frequency_penalty": 0.5,
        "presence_penalty": 0,
        "stop": "\n\n",
        "n": 1,
        "seed": 42,
        "parallel_tool_calls": True,
    }
    data = one(
        exchange(body, json_response(completion({"role": "assistant", "content": "."}))),
        "ai.request",
    )["data"]
    assert data["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Current weather for a city"},
        {"type": "function", "name": "get_time"},
    ]
    assert data["tools_count"] == 2
    assert data["tool_choice"] == "specific"
    assert data["parameters"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 300,
        "frequency_penalty": 0.5,
        "presence_penalty": 0,
        "stop": ["\n\n"],
        "n": 1,
        "seed": 42,
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function"}, "specific"),
    ],
)
def test_tool_choice_values(choice: Any, expected: str) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
    }
    data = one(
        exchange(body, json_response(completion({"role": "assistant", "content": "."}))),
        "ai.request",
    )["data"]
    assert data["tool_choice"] == expected


def test_history_with_tool_calls_and_tool_results() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "22C"}],
            },
        ],
    }
    data = one(
        exchange(body, json_response(completion({"role": "assistant", "content": "."}))),
        "ai.request",
    )["data"]
    assistant = data["messages"][1]
    assert assistant["tool_calls"] == [
        {
            "type": "function",
            "id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function", "id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
    ]
    assert data["messages"][2] == {
        "role": "tool",
        "content": "18C sunny",
        "content_length": 9,
        "tool_call_id": "call_1",
    }
    assert data["messages"][3]["content"] == "22C"


def test_request_that_is_not_json_is_flagged_partial() -> None:
    caps = Captures()
    conn = caps.conn()
    raw = openai_request({"model": "x"}).replace(b'{"model":"x"}', b"{not json!!!}")
    conn.send(raw, 0).recv(json_response(completion({"role": "assistant", "content": "x"})), 10)
    events = run(caps.raws)
    assert_valid_events(events)
    req = one(events, "ai.request")
    assert req["confidence"]["completeness"] == "partial"
    assert req["confidence"]["limitations"] == ["request body is not a JSON object"]
    # The response still decodes.
    assert one(events, "ai.response")["data"]["choices"][0]["message"]["content"] == "x"


# --- non-streaming responses -------------------------------------------------------------------


def test_non_streaming_text_response() -> None:
    events = exchange(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        json_response(
            completion({"role": "assistant", "content": "Hello!", "refusal": None}),
            request_id="req_7b1c",
        ),
    )
    req, resp = one(events, "ai.request"), one(events, "ai.response")
    data = resp["data"]
    assert data["request_id"] == req["data"]["request_id"]
    assert resp["related_events"] == [{"event_id": req["event_id"], "relationship": "parent"}]
    assert data["success"] is True and data["status_code"] == 200
    assert data["provider_request_id"] == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert resp["attrs"]["provider_http_request_id"] == "req_7b1c"
    assert data["model"] == {"id": OPENAI_MODEL, "family": "gpt-4o"}
    assert data["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
    ]
    assert data["finish_reason"] == "stop"
    assert data["usage"] == {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert data["tool_calls_count"] == 0
    assert "time_to_first_token_ms" not in data  # not streamed
    assert resp["attrs"]["system_fingerprint"] == "fp_fc9f1d7035"
    assert resp["attrs"]["http"]["stream_format"] == "json"


def test_non_streaming_parallel_tool_calls_and_usage_details() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_def",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    }
    body = completion(message, "tool_calls")
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = 1024
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 64
    events = exchange(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "w"}]}, json_response(body)
    )
    data = one(events, "ai.response")["data"]
    assert data["finish_reason"] == "tool_calls"
    assert [c["id"] for c in data["tool_calls"]] == ["call_abc", "call_def"]
    assert data["tool_calls"][0]["arguments"] == '{"city": "Paris"}'
    assert data["tool_calls"][0]["arguments_hash"].startswith("hmac-sha256:")
    assert data["tool_calls_count"] == 2
    assert data["choices"][0]["message"]["tool_calls"][1]["name"] == "get_weather"
    assert data["usage"]["cached_tokens"] == 1024
    assert data["usage"]["reasoning_tokens"] == 64
    calls = [e for e in events if e["event_type"] == "agent.tool_call"]
    assert [c["data"]["call_id"] for c in calls] == ["call_abc", "call_def"]
    assert calls[1]["data"]["arguments"] == {"city": "Rome"}
    assert calls[1]["data"]["tool"] == {"name": "get_weather", "type": "other"}
    assert calls[0]["data"]["triggered_by"] == "llm_decision"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        ("something_new", "other"),
    ],
)
def test_finish_reasons(raw: str, normal: str) -> None:
    events = exchange(
        {"model": "gpt-4o", "messages": []},
        json_response(completion({"role": "assistant", "content": "x"}, raw)),
    )
    resp = one(events, "ai.response")
    assert resp["data"]["finish_reason"] == normal
    assert resp["data"]["choices"][0]["finish_reason"] == normal
    if raw != normal:
        assert resp["attrs"]["finish_reason_raw"] == raw


def test_refusal_and_deepseek_reasoning_content_non_streaming() -> None:
    refusal = exchange(
        {"model": "gpt-4o", "messages": []},
        json_response(
            completion({"role": "assistant", "content": None, "refusal": "I can't help with that."})
        ),
    )
    msg = one(refusal, "ai.response")["data"]["choices"][0]["message"]
    assert msg["content"] == "I can't help with that."
    reasoning = exchange(
        {"model": "deepseek-reasoner", "messages": []},
        json_response(
            completion(
                {"role": "assistant", "content": "42", "reasoning_content": "Let me think..."}
            )
        ),
        host="api.deepseek.com",
    )
    resp = one(reasoning, "ai.response")
    assert resp["data"]["choices"][0]["message"]["thinking"] == "Let me think..."
    assert resp["data"]["provider"]["name"] == "other"
    assert resp["attrs"]["provider_id"] == "deepseek"


def test_several_choices() -> None:
    body = completion({"role": "assistant", "content": "A"})
    body["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "B"}, "finish_reason": "length"}
    )
    data = one(
        exchange({"model": "gpt-4o", "n": 2, "messages": []}, json_response(body)), "ai.response"
    )["data"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in data["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]
    assert data["finish_reason"] == "stop"  # the first choice's


# --- streaming -------------------------------------------------------------------------------


def test_streaming_text_with_usage_chunk() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"role": "assistant", "content": "", "refusal": None}),
            openai_chunk({"content": "Hel"}),
            openai_chunk({"content": "lo"}),
            openai_chunk({"content": " world"}),
            openai_chunk({}, finish="stop"),
            openai_chunk(
                usage={
                    "prompt_tokens": 8,
                    "completion_tokens": 3,
                    "total_tokens": 11,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                }
            ),
        ]
    )
    events = exchange(
        {
            "model": "gpt-4o",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello"}],
        },
        pieces,
    )
    req, resp = one(events, "ai.request"), one(events, "ai.response")
    assert req["data"]["streaming"] is True
    data = resp["data"]
    assert data["choices"][0]["message"]["content"] == "Hello world"
    assert data["finish_reason"] == "stop"
    assert data["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 3,
        "total_tokens": 11,
        "cached_tokens": 4,
        "reasoning_tokens": 0,
    }
    assert data["provider_request_id"] == "chatcmpl-AbC123"
    assert resp["attrs"]["http"]["stream_format"] == "sse"
    assert resp["attrs"]["provider_http_request_id"] == "req_stream"
    assert resp["confidence"]["completeness"] == "full"


def test_stream_without_usage_has_no_usage_rather_than_zero() -> None:
    pieces = openai_stream([openai_chunk({"content": "x"}), openai_chunk({}, finish="stop")])
    data = one(
        exchange({"model": "gpt-4o", "stream": True, "messages": []}, pieces), "ai.response"
    )["data"]
    assert "usage" not in data


def test_streamed_parallel_tool_calls_assembled_from_deltas() -> None:
    def tc(index: int, **kw: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **kw}]}

    pieces = openai_stream(
        [
            openai_chunk({"role": "assistant", "content": None}),
            openai_chunk(
                tc(
                    0,
                    id="call_P",
                    type="function",
                    function={"name": "get_weather", "arguments": ""},
                )
            ),
            openai_chunk(tc(0, function={"arguments": '{"ci'})),
            openai_chunk(tc(0, function={"arguments": 'ty": "Pa'})),
            openai_chunk(
                tc(
                    1,
                    id="call_R",
                    type="function",
                    function={"name": "get_weather", "arguments": ""},
                )
            ),
            openai_chunk(tc(0, function={"arguments": 'ris"}'})),
            openai_chunk(tc(1, function={"arguments": '{"city": "Rome"}'})),
            openai_chunk(
                tc(
                    2,
                    id="call_T",
                    type="function",
                    function={"name": "get_time", "arguments": "{}"},
                )
            ),
            openai_chunk({}, finish="tool_calls"),
        ]
    )
    events = exchange(
        {
            "model": "gpt-4o",
            "stream": True,
            "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "Paris, Rome, time?"}],
        },
        pieces,
    )
    data = one(events, "ai.response")["data"]
    assert [(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"]] == [
        ("call_P", "get_weather", '{"city": "Paris"}'),
        ("call_R", "get_weather", '{"city": "Rome"}'),
        ("call_T", "get_time", "{}"),
    ]
    assert data["finish_reason"] == "tool_calls"
    assert data["choices"][0]["message"]["content"] == ""
    calls = [e for e in events if e["event_type"] == "agent.tool_call"]
    assert [c["data"]["arguments"] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}, {}]
    resp_id = one(events, "ai.response")["event_id"]
    assert all(
        c["related_events"] == [{"event_id": resp_id, "relationship": "caused_by"}] for c in calls
    )
    assert all(c["attrs"]["request_id"] == data["request_id"] for c in calls)


def test_streamed_reasoning_content_deepseek() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
            openai_chunk({"content": None, "reasoning_content": "First, "}),
            openai_chunk({"content": None, "reasoning_content": "add them."}),
            openai_chunk({"content": "4", "reasoning_content": None}),
            openai_chunk(
                {},
                finish="stop",
                usage={
                    "prompt_tokens": 10,
                    "completion_tokens": 20,
                    "total_tokens": 30,
                    "prompt_cache_hit_tokens": 6,
                    "prompt_cache_miss_tokens": 4,
                    "completion_tokens_details": {"reasoning_tokens": 15},
                },
            ),
        ]
    )
    events = exchange(
        {"model": "deepseek-reasoner", "stream": True, "messages": []},
        pieces,
        host="api.deepseek.com",
    )
    data = one(events, "ai.response")["data"]
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "thinking": "First, add them.",
    }
    assert data["usage"]["cached_tokens"] == 6
    assert data["usage"]["reasoning_tokens"] == 15


def test_streamed_refusal() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"refusal": "I can't"}),
            openai_chunk({"refusal": " do that."}),
            openai_chunk({}, finish="stop"),
        ]
    )
    data = one(
        exchange({"model": "gpt-4o", "stream": True, "messages": []}, pieces), "ai.response"
    )["data"]
    assert data["choices"][0]["message"]["content"] == "I can't do that."


def test_streamed_several_choices() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"content": "A"}, index=0),
            openai_chunk({"content": "B"}, index=1),
            openai_chunk({"content": "a"}, index=0),
            openai_chunk({}, index=1, finish="length"),
            openai_chunk({}, index=0, finish="stop"),
        ]
    )
    data = one(
        exchange({"model": "gpt-4o", "n": 2, "stream": True, "messages": []}, pieces), "ai.response"
    )["data"]
    assert [(c["message"]["content"], c["finish_reason"]) for c in data["choices"]] == [
        ("Aa", "stop"),
        ("B", "length"),
    ]


def test_mid_stream_error_event() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"content": "Partial"}),
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
        ],
        done=False,
    )
    data = one(
        exchange({"model": "gpt-4o", "stream": True, "messages": []}, pieces), "ai.response"
    )["data"]
    assert data["success"] is False and data["status_code"] == 200
    assert data["error"] == {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
    }
    assert data["choices"][0]["message"]["content"] == "Partial"


def test_invalid_json_event_costs_one_event_not_the_stream() -> None:
    pieces = openai_stream([openai_chunk({"content": "A"})])
    pieces.insert(2, b"1a\r\ndata: {this is not json}\n\n\r\n")
    pieces.insert(
        3,
        b"%x\r\n"
        % len(b"data: " + b'{"id":"c","choices":[{"index":0,"delta":{"content":"B"}}]}\n\n')
        + b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"B"}}]}\n\n\r\n',
    )
    resp = one(exchange({"model": "gpt-4o", "stream": True, "messages": []}, pieces), "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "AB"
    assert resp["confidence"]["completeness"] == "partial"
    assert any("invalid JSON in SSE" in r for r in resp["confidence"]["limitations"])


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "body", "error"),
    [
        (
            429,
            "Too Many Requests",
            {
                "error": {
                    "message": "Rate limit reached for gpt-4o on tokens per min (TPM).",
                    "type": "tokens",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            {
                "message": "Rate limit reached for gpt-4o on tokens per min (TPM).",
                "type": "tokens",
                "code": "rate_limit_exceeded",
            },
        ),
        (
            401,
            "Unauthorized",
            {
                "error": {
                    "message": "Incorrect API key provided: sk-proj-****abcd.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            {
                "message": "Incorrect API key provided: sk-proj-****abcd.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            },
        ),
        (
            500,
            "Internal Server Error",
            {
                "error": {
                    "message": "The server had an error while processing your request.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
            {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
            },
        ),
        (
            502,
            "Bad Gateway",
            b"<html><body>502 Bad Gateway</body></html>",
            {"type": "http_502", "message": "<html><body>502 Bad Gateway</body></html>"},
        ),
        (503, "Service Unavailable", b"", {"type": "http_503"}),
    ],
)
def test_error_responses(status: int, reason: str, body: Any, error: dict[str, str]) -> None:
    events = exchange(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        json_response(
            body,
            status=status,
            reason=reason,
            extra_headers=[("retry-after", "20")] if status == 429 else [],
        ),
    )
    resp = one(events, "ai.response")
    assert resp["data"]["success"] is False
    assert resp["data"]["status_code"] == status
    assert resp["data"]["error"] == error
    assert "choices" not in resp["data"]
    assert [e["event_type"] for e in events] == ["ai.request", "ai.response"]
    if status == 429:
        assert resp["attrs"]["http"]["response_headers"]["retry-after"] == "20"


def test_key_appears_nowhere_in_the_events() -> None:
    events = exchange(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        json_response(completion({"role": "assistant", "content": "y"})),
    )
    auth = one(events, "ai.request")["data"]["auth"]
    assert auth["type"] == "api_key" and auth["key_prefix"] == OPENAI_KEY[:8]
    import json

    text = json.dumps(events)
    assert OPENAI_KEY not in text and OPENAI_KEY[8:24] not in text
