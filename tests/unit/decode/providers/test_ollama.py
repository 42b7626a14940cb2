"""Ollama's native API: /api/chat, /api/generate (NDJSON streams), /api/embed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import http_request, http_response
from tests.unit.decode.providers.exchange import comparable, one, run

HOST = "localhost"
PORT = 11434
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather"}}]
QUESTION = {"role": "user", "content": "Weather in Paris and Rome?"}
DONE = {
    "done": True,
    "done_reason": "stop",
    "total_duration": 4_883_583_458,
    "load_duration": 1_334_875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342_546_000,
    "eval_count": 12,
    "eval_duration": 4_535_599_000,
}
CALLS = [
    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
    {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
]


def request(path: str, body: dict[str, Any]) -> bytes:
    return http_request(path, {"model": "llama3.2", **body}, host=f"{HOST}:{PORT}")


def ndjson(*lines: dict[str, Any]) -> bytes:
    chunks = [json.dumps({"model": "llama3.2", **line}).encode() + b"\n" for line in lines]
    return http_response(content_type="application/x-ndjson", chunks=chunks)


def ollama(exchanges: list[tuple[bytes, bytes]], splits: list[int] | None = None) -> Any:
    return run(exchanges, host=HOST, port=PORT, splits=splits)


CHAT = request(
    "/api/chat",
    {"messages": [QUESTION], "tools": TOOLS, "options": {"temperature": 0.1, "num_predict": 64}},
)
CHAT_STREAM = ndjson(
    {"message": {"role": "assistant", "content": "", "thinking": "Two cities."}, "done": False},
    {"message": {"role": "assistant", "content": "", "tool_calls": CALLS}, "done": False},
    {"message": {"role": "assistant", "content": ""}, **DONE},
)


def test_chat_stream_with_thinking_tool_calls_and_counters() -> None:
    events = ollama([(CHAT, CHAT_STREAM)])
    req = one(events, "ai.request")["data"]
    assert req["streaming"] is True  # Ollama streams unless "stream": false
    assert req["parameters"] == {"temperature": 0.1, "max_tokens": 64}
    assert req["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather"}]
    assert req["provider"]["name"] == "ollama"
    response = one(events, "ai.response")
    resp = response["data"]
    assert resp["choices"][0]["message"]["thinking"] == "Two cities."
    assert [(c["id"], c["arguments"]) for c in resp["tool_calls"]] == [
        ("oisp_call_1_0_get_weather", '{"city":"Paris"}'),
        ("oisp_call_1_1_get_weather", '{"city":"Rome"}'),
    ]
    assert resp["finish_reason"] == "tool_calls"
    assert response["attrs"]["finish_reason_raw"] == "stop"
    assert resp["usage"] == {"prompt_tokens": 26, "completion_tokens": 12, "total_tokens": 38}
    assert response["attrs"]["durations_ns"]["total_duration"] == 4_883_583_458
    assert response["attrs"]["http"]["stream_format"] == "ndjson"
    assert len([e for e in events if e["event_type"] == "agent.tool_call"]) == 2


def test_tool_results_by_name_and_order_round_trip() -> None:
    history = [
        QUESTION,
        {"role": "assistant", "content": "", "tool_calls": CALLS},
        {"role": "tool", "content": "18C", "tool_name": "get_weather"},
        {"role": "tool", "content": "24C", "tool_name": "get_weather"},
    ]
    second = request("/api/chat", {"messages": history, "tools": TOOLS, "stream": False})
    answer = http_response(
        {
            "model": "llama3.2",
            "message": {"role": "assistant", "content": "Rome is warmer."},
            **DONE,
        }
    )
    events = ollama([(CHAT, CHAT_STREAM), (second, answer)])
    calls = [e for e in events if e["event_type"] == "agent.tool_call"]
    results = [e for e in events if e["event_type"] == "agent.tool_result"]
    assert [r["data"]["result"] for r in results] == ["18C", "24C"]
    for call, result in zip(calls, results, strict=True):
        assert result["data"]["call_id"] == call["data"]["call_id"]
        assert {"event_id": call["event_id"], "relationship": "parent"} in result["related_events"]
    messages = [e for e in events if e["event_type"] == "ai.request"][1]["data"]["messages"]
    assert messages[1]["tool_calls"][1]["id"] == "oisp_call_1_1_get_weather"
    assert messages[3]["tool_call_id"] == "oisp_call_1_1_get_weather"
    assert one(events[-3:], "ai.response")["data"]["finish_reason"] == "stop"


def test_tool_results_in_one_conversation_do_not_answer_another() -> None:
    """Derived ids repeat across conversations; a result matches its own conversation only."""
    other = request(
        "/api/chat",
        {
            "messages": [
                {"role": "user", "content": "Other question"},
                {"role": "assistant", "content": "", "tool_calls": CALLS[:1]},
                {"role": "tool", "content": "1C", "tool_name": "get_weather"},
            ]
        },
    )
    events = ollama([(CHAT, CHAT_STREAM), (other, ndjson({"message": {"content": "ok"}, **DONE}))])
    assert not [e for e in events if e["event_type"] == "agent.tool_result"]


def test_generate_not_streamed_with_system_and_images() -> None:
    req = request(
        "/api/generate",
        {
            "prompt": "What is in this picture?",
            "system": "Be short.",
            "images": ["iVBOR"],
            "stream": False,
            "context": [1, 2, 3],
            "options": {"seed": 7, "stop": ["\n"]},
        },
    )
    body = {
        "model": "llava",
        "response": "A cat.",
        "done": True,
        "done_reason": "length",
        "context": [1, 2],
        "prompt_eval_count": 5,
        "eval_count": 3,
    }
    events = ollama([(req, http_response(body))])
    request_event = one(events, "ai.request")
    data = request_event["data"]
    assert data["request_type"] == "completion" and data["streaming"] is False
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("system", "Be short."),
        ("user", "What is in this picture?"),
    ]
    assert data["image_count"] == 1 and data["parameters"] == {"seed": 7, "stop": ["\n"]}
    assert request_event["attrs"]["context_tokens"] == 3
    resp = one(events, "ai.response")["data"]
    assert resp["choices"][0]["message"]["content"] == "A cat."
    assert resp["finish_reason"] == "length" and resp["model"]["id"] == "llava"
    assert resp["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_embed_and_legacy_embeddings() -> None:
    embed = request("/api/embed", {"model": "nomic-embed-text", "input": ["a", "b"]})
    embed_body = {
        "model": "nomic-embed-text",
        "embeddings": [[0.1, 0.2], [0.3, 0.4]],
        "total_duration": 14_143_917,
        "prompt_eval_count": 8,
    }
    legacy = request("/api/embeddings", {"model": "nomic-embed-text", "prompt": "a"})
    events = ollama(
        [(embed, http_response(embed_body)), (legacy, http_response({"embedding": [0.5] * 5}))]
    )
    first, second = (e for e in events if e["event_type"] == "ai.response")
    assert first["attrs"]["embedding"] == {"count": 2, "dimensions": 2}
    assert first["data"]["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert second["attrs"]["embedding"] == {"count": 1, "dimensions": 5}
    assert "usage" not in second["data"]
    assert [e["data"]["request_type"] for e in events if e["event_type"] == "ai.request"] == [
        "embedding",
        "embedding",
    ]


def test_errors_whole_and_mid_stream() -> None:
    missing = http_response({"error": "model 'nope' not found"}, status=404, reason="Not Found")
    broken = ndjson({"message": {"content": "Hel"}, "done": False}, {"error": "out of memory"})
    events = ollama([(CHAT, missing), (CHAT, broken)])
    first, second = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert first["success"] is False and first["error"]["message"] == "model 'nope' not found"
    assert second["success"] is False and second["error"]["message"] == "out of memory"
    assert second["choices"][0]["message"]["content"] == "Hel"


WHOLE = comparable(ollama([(CHAT, CHAT_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CHAT_STREAM) - 1), max_size=12))
def test_any_chunk_split_gives_the_same_events(offsets: list[int]) -> None:
    assert comparable(ollama([(CHAT, CHAT_STREAM)], splits=offsets)) == WHOLE
