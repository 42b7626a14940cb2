"""Cohere v2 Chat (streamed and not) and Embed."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import http_request, http_response, sse_events
from tests.unit.decode.providers.exchange import comparable, one, run

HOST = "api.cohere.com"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object"},
        },
    }
]
QUESTION = {"role": "user", "content": "Weather in Paris?"}
USAGE = {
    "billed_units": {"input_tokens": 30, "output_tokens": 12},
    "tokens": {"input_tokens": 530, "output_tokens": 12},
}


def request(body: dict[str, Any], path: str = "/v2/chat") -> bytes:
    return http_request(
        path,
        {"model": "command-a-03-2025", **body},
        host=HOST,
        headers={"Authorization": "Bearer co-test-key-123456"},
    )


def stream(*events: dict[str, Any]) -> bytes:
    return http_response(
        content_type="text/event-stream", chunks=sse_events(*((e["type"], e) for e in events))
    )


def cohere(exchanges: list[tuple[bytes, bytes]], splits: list[int] | None = None) -> Any:
    return run(exchanges, host=HOST, splits=splits)


CALL_REQUEST = request(
    {
        "messages": [{"role": "system", "content": "Be brief."}, QUESTION],
        "tools": TOOLS,
        "stream": True,
        "temperature": 0.3,
        "p": 0.8,
    }
)
CALL_STREAM = stream(
    {"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant"}}},
    {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look it up."}}},
    {
        "type": "tool-call-start",
        "index": 0,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "get_weather_x1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            }
        },
    },
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '{"city":'}}}},
    },
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": '"Paris"}'}}}},
    },
    {"type": "tool-call-end", "index": 0},
    {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": USAGE}},
)


def test_stream_tool_call_plan_and_billed_usage() -> None:
    events = cohere([(CALL_REQUEST, CALL_STREAM)])
    req = one(events, "ai.request")["data"]
    assert req["has_system_prompt"] is True
    assert req["parameters"] == {"temperature": 0.3, "top_p": 0.8}
    assert req["tools"][0]["name"] == "get_weather"
    assert req["provider"]["name"] == "cohere"
    response = one(events, "ai.response")
    resp = response["data"]
    assert resp["provider_request_id"] == "c-1"
    assert resp["choices"][0]["message"]["thinking"] == "I will look it up."
    assert resp["tool_calls"][0]["id"] == "get_weather_x1"
    assert resp["tool_calls"][0]["arguments"] == '{"city":"Paris"}'
    assert resp["finish_reason"] == "tool_calls"
    assert resp["usage"] == {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    assert response["attrs"]["raw_tokens"] == {"input_tokens": 530, "output_tokens": 12}


def test_tool_message_round_trip_and_documents() -> None:
    history = [
        QUESTION,
        {
            "role": "assistant",
            "tool_plan": "I will look it up.",
            "tool_calls": [
                {
                    "id": "get_weather_x1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "get_weather_x1",
            "content": [{"type": "document", "document": {"data": {"temp": 21}}}],
        },
    ]
    second = request(
        {
            "messages": history,
            "tools": TOOLS,
            "documents": [{"id": "d1", "data": {"text": "Paris is in France"}}],
        }
    )
    answer = http_response(
        {
            "id": "c-2",
            "finish_reason": "COMPLETE",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "21C in Paris."}],
            },
            "usage": USAGE,
        }
    )
    events = cohere([(CALL_REQUEST, CALL_STREAM), (second, answer)])
    call, result = one(events, "agent.tool_call"), one(events, "agent.tool_result")
    assert result["data"]["call_id"] == "get_weather_x1"
    assert result["data"]["result"] == '{"temp":21}'
    assert {"event_id": call["event_id"], "relationship": "parent"} in result["related_events"]
    req = [e for e in events if e["event_type"] == "ai.request"][1]["data"]
    assert req["has_rag_context"] is True
    assert req["messages"][1]["tool_calls"][0]["id"] == "get_weather_x1"
    resp = [e for e in events if e["event_type"] == "ai.response"][1]["data"]
    assert resp["choices"][0]["message"]["content"] == "21C in Paris."
    assert resp["finish_reason"] == "stop"


def test_text_stream_and_errors() -> None:
    text = stream(
        {"type": "message-start", "id": "c-3", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Bon"}}}},
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "jour"}}}},
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "MAX_TOKENS", "usage": USAGE}},
    )
    bad = http_response(
        {"id": "e-1", "message": "invalid request: model not found"}, status=404, reason="Not Found"
    )
    req = request({"messages": [QUESTION], "stream": True})
    events = cohere([(req, text), (req, bad)])
    ok, failed = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert ok["choices"][0]["message"]["content"] == "Bonjour" and ok["finish_reason"] == "length"
    assert failed["success"] is False
    assert failed["error"]["message"] == "invalid request: model not found"


def test_embed() -> None:
    req = request(
        {
            "model": "embed-v4.0",
            "texts": ["a", "bb"],
            "input_type": "search_document",
            "embedding_types": ["float"],
            "output_dimension": 256,
        },
        path="/v2/embed",
    )
    body = {
        "id": "e-2",
        "embeddings": {"float": [[0.1] * 256, [0.2] * 256]},
        "texts": ["a", "bb"],
        "meta": {"billed_units": {"input_tokens": 3}},
        "response_type": "embeddings_by_type",
    }
    events = cohere([(req, http_response(body))])
    request_event = one(events, "ai.request")
    assert request_event["data"]["request_type"] == "embedding"
    assert request_event["data"]["parameters"] == {
        "dimensions": 256,
        "input_type": "search_document",
    }
    assert request_event["attrs"]["input_count"] == 2
    response = one(events, "ai.response")
    assert response["attrs"]["embedding"] == {"count": 2, "dimensions": 256}
    assert response["data"]["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


WHOLE = comparable(cohere([(CALL_REQUEST, CALL_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CALL_STREAM) - 1), max_size=12))
def test_any_chunk_split_gives_the_same_events(offsets: list[int]) -> None:
    assert comparable(cohere([(CALL_REQUEST, CALL_STREAM)], splits=offsets)) == WHOLE
