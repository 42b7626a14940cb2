"""Google Gemini / Vertex: generateContent, both stream framings, function calls, usage."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import http_request, http_response, sse_events
from tests.unit.decode.providers.exchange import comparable, one, run

HOST = "generativelanguage.googleapis.com"
MODEL_PATH = "/v1beta/models/gemini-2.5-flash"
QUESTION = {"role": "user", "parts": [{"text": "Weather in Paris?"}]}
TOOLS = [
    {"functionDeclarations": [{"name": "get_weather", "description": "Weather", "parameters": {}}]},
    {"googleSearch": {}},
]
USAGE = {
    "promptTokenCount": 100,
    "candidatesTokenCount": 20,
    "thoughtsTokenCount": 50,
    "cachedContentTokenCount": 60,
    "totalTokenCount": 170,
}
CALL_CHUNKS = [
    {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Let me check", "thought": True}]},
                "index": 0,
            }
        ],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r-1",
    },
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r-1",
    },
]


def gemini(
    exchanges: list[tuple[bytes, bytes]], splits: list[int] | None = None, host: str = HOST
) -> Any:
    return run(exchanges, host=host, splits=splits)


def request(
    verb: str, body: dict[str, Any], query: str = "", path: str = MODEL_PATH, host: str = HOST
) -> bytes:
    return http_request(
        f"{path}:{verb}{query}",
        body,
        host=host,
        headers={"x-goog-api-key": "AIzaSyTESTKEY000000000000000000000"},
    )


def array_stream(chunks: list[dict[str, Any]]) -> bytes:
    """The default (non-SSE) stream: one JSON array, elements sent as they are ready."""
    pieces = [b"[" + json.dumps(chunks[0]).encode()]
    pieces += [b",\r\n" + json.dumps(c).encode() for c in chunks[1:]]
    pieces.append(b"]")
    return http_response(content_type="application/json; charset=UTF-8", chunks=pieces)


STREAM_REQUEST = request("streamGenerateContent", {"contents": [QUESTION], "tools": TOOLS})
SSE_REQUEST = request("streamGenerateContent", {"contents": [QUESTION], "tools": TOOLS}, "?alt=sse")
ARRAY_STREAM = array_stream(CALL_CHUNKS)
SSE_STREAM = http_response(content_type="text/event-stream", chunks=sse_events(*CALL_CHUNKS))


def test_generate_content_request_and_response() -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                ],
            },
        ],
        "tools": TOOLS,
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.9,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 1024},
        },
    }
    reply = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "Looking at pixels.", "thought": True}, {"text": "A cat."}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "abc",
    }
    events = gemini([(request("generateContent", body), http_response(reply))])
    req = one(events, "ai.request")
    data = req["data"]
    assert data["model"] == {"id": "gemini-2.5-flash", "family": "gemini-2.5"}
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("system", "You are terse."),
        ("user", "What is this?"),
    ]
    assert data["image_count"] == 1 and data["has_system_prompt"] is True
    assert data["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Weather"},
        {"type": "other", "name": "googleSearch"},
    ]
    assert data["tool_choice"] == "required"
    assert data["parameters"] == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": ["END"],
        "thinking_budget_tokens": 1024,
    }
    assert data["streaming"] is False
    assert data["auth"]["type"] == "api_key"
    resp = one(events, "ai.response")["data"]
    assert resp["choices"][0]["message"] == {
        "role": "assistant",
        "content": "A cat.",
        "thinking": "Looking at pixels.",
    }
    assert resp["finish_reason"] == "stop"
    assert resp["provider_request_id"] == "abc"
    # candidatesTokenCount excludes thoughts; completion_tokens includes them (cost = output price)
    assert resp["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 70,
        "total_tokens": 170,
        "cached_tokens": 60,
        "reasoning_tokens": 50,
    }


def test_array_and_sse_streams_give_the_same_response() -> None:
    array_events = gemini([(STREAM_REQUEST, ARRAY_STREAM)])
    sse_events_ = gemini([(SSE_REQUEST, SSE_STREAM)])
    array_resp, sse_resp = one(array_events, "ai.response"), one(sse_events_, "ai.response")
    assert array_resp["attrs"]["http"]["stream_format"] == "json_array"
    assert sse_resp["attrs"]["http"]["stream_format"] == "sse"
    assert array_resp["data"]["choices"] == sse_resp["data"]["choices"]
    data = array_resp["data"]
    assert data["choices"][0]["message"]["thinking"] == "Let me check"
    assert data["tool_calls"][0]["id"] == "oisp_call_1_0_get_weather"
    assert data["tool_calls"][0]["arguments"] == '{"city":"Paris"}'
    assert data["finish_reason"] == "tool_calls"
    assert array_resp["attrs"]["finish_reason_raw"] == "STOP"
    assert data["usage"]["completion_tokens"] == 70
    assert "time_to_first_token_ms" in data
    assert one(array_events, "agent.tool_call")["data"]["arguments"] == {"city": "Paris"}


def test_function_response_round_trip_without_ids() -> None:
    """Gemini's functionCall has no id: the derived one matches the later functionResponse."""
    history = [
        QUESTION,
        {"role": "model", "parts": [{"text": "Let me check", "thought": True}]},
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}],
        },
    ]
    second = request("generateContent", {"contents": history, "tools": TOOLS})
    answer = http_response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "21C"}]}, "finishReason": "STOP"}
            ]
        }
    )
    events = gemini([(STREAM_REQUEST, ARRAY_STREAM), (second, answer)])
    call, result = one(events, "agent.tool_call"), one(events, "agent.tool_result")
    assert result["data"]["call_id"] == call["data"]["call_id"] == "oisp_call_1_0_get_weather"
    assert result["data"]["result"] == '{"temp":21}'
    assert {"event_id": call["event_id"], "relationship": "parent"} in result["related_events"]
    messages = [e for e in events if e["event_type"] == "ai.request"][1]["data"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["id"] == "oisp_call_1_0_get_weather"


def test_explicit_ids_are_used() -> None:
    chunk = {
        "candidates": [
            {
                "content": {"parts": [{"functionCall": {"id": "fc-9", "name": "f", "args": {}}}]},
                "finishReason": "STOP",
            }
        ]
    }
    history = [
        QUESTION,
        chunk["candidates"][0]["content"] | {"role": "model"},
        {
            "role": "user",
            "parts": [{"functionResponse": {"id": "fc-9", "name": "f", "response": {}}}],
        },
    ]
    events = gemini(
        [
            (request("generateContent", {"contents": [QUESTION]}), http_response(chunk)),
            (request("generateContent", {"contents": history}), http_response(chunk)),
        ]
    )
    assert one(events, "agent.tool_result")["data"]["call_id"] == "fc-9"


def test_vertex_path_snake_case_and_region() -> None:
    host = "us-central1-aiplatform.googleapis.com"
    path = "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash-001"
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "sys"}]},
        "generation_config": {"max_output_tokens": 10},
    }
    reply = {
        "candidates": [{"content": {"parts": [{"text": "hello"}]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 10, "totalTokenCount": 13},
    }
    events = gemini(
        [(request("generateContent", body, path=path, host=host), http_response(reply))], host=host
    )
    req = one(events, "ai.request")["data"]
    assert req["model"] == {"id": "gemini-2.0-flash-001", "family": "gemini-2.0"}
    assert req["provider"]["region"] == "us-central1"
    assert req["parameters"] == {"max_tokens": 10} and req["has_system_prompt"] is True
    resp = one(events, "ai.response")["data"]
    assert resp["finish_reason"] == "length"
    assert resp["usage"] == {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}


def test_errors_json_array_wrapped_mid_stream_and_blocked() -> None:
    error = {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}
    quota = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    mid = [CALL_CHUNKS[0], {"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}]
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }
    events = gemini(
        [
            (
                request("generateContent", {"contents": [QUESTION]}),
                http_response(error, status=400, reason="Bad Request"),
            ),
            (STREAM_REQUEST, http_response([quota], status=429, reason="Too Many Requests")),
            (STREAM_REQUEST, array_stream(mid)),
            (request("generateContent", {"contents": [QUESTION]}), http_response(blocked)),
        ]
    )
    bad, limited, broken, refused = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert bad["error"] == {
        "message": "API key not valid.",
        "type": "INVALID_ARGUMENT",
        "code": "400",
    }
    assert limited["error"]["type"] == "RESOURCE_EXHAUSTED" and limited["status_code"] == 429
    assert broken["success"] is False and broken["error"]["type"] == "INTERNAL"
    assert broken["choices"][0]["message"]["thinking"] == "Let me check"
    assert refused["finish_reason"] == "content_filter" and refused["usage"]["prompt_tokens"] == 7


def test_embed_content_and_batch() -> None:
    single = request(
        "embedContent",
        {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3},
        path="/v1beta/models/gemini-embedding-001",
    )
    batch = request(
        "batchEmbedContents",
        {
            "requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}}
                for t in ("a", "b")
            ]
        },
        path="/v1beta/models/gemini-embedding-001",
    )
    events = gemini(
        [
            (single, http_response({"embedding": {"values": [0.1, 0.2, 0.3]}})),
            (batch, http_response({"embeddings": [{"values": [0.1] * 8}, {"values": [0.2] * 8}]})),
        ]
    )
    requests = [e for e in events if e["event_type"] == "ai.request"]
    assert [r["data"]["request_type"] for r in requests] == ["embedding", "embedding"]
    assert requests[0]["data"]["parameters"] == {"dimensions": 3}
    assert [r["attrs"]["input_count"] for r in requests] == [1, 2]
    first, second = (e for e in events if e["event_type"] == "ai.response")
    assert first["attrs"]["embedding"] == {"count": 1, "dimensions": 3}
    assert second["attrs"]["embedding"] == {"count": 2, "dimensions": 8}


ARRAY_WHOLE = comparable(gemini([(STREAM_REQUEST, ARRAY_STREAM)]))
SSE_WHOLE = comparable(gemini([(SSE_REQUEST, SSE_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(ARRAY_STREAM) - 1), max_size=16))
def test_any_chunk_split_of_the_json_array_stream(offsets: list[int]) -> None:
    assert comparable(gemini([(STREAM_REQUEST, ARRAY_STREAM)], splits=offsets)) == ARRAY_WHOLE


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(SSE_STREAM) - 1), max_size=12))
def test_any_chunk_split_of_the_sse_stream(offsets: list[int]) -> None:
    assert comparable(gemini([(SSE_REQUEST, SSE_STREAM)], splits=offsets)) == SSE_WHOLE
