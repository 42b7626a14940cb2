"""OpenAI Responses API: request items, output items, `response.*` stream events, errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import http_request, http_response, sse_events
from tests.unit.decode.providers.exchange import comparable, one, run

TOOLS = [
    {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {}},
    {"type": "web_search_preview"},
    {"type": "computer_use_preview", "display_width": 1024, "display_height": 768},
]
USAGE = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 100},
    "output_tokens": 50,
    "output_tokens_details": {"reasoning_tokens": 30},
    "total_tokens": 170,
}


def request(body: dict[str, Any]) -> bytes:
    return http_request("/v1/responses", {"model": "gpt-5", **body})


def streamed(*events: dict[str, Any]) -> bytes:
    return http_response(
        content_type="text/event-stream",
        chunks=sse_events(*((e["type"], e) for e in events)),
    )


def completed(output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "output": output,
        "usage": USAGE,
        **extra,
    }


CALL_STREAM = streamed(
    {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "output": []}},
    {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "reasoning", "id": "rs_1", "summary": []},
    },
    {
        "type": "response.reasoning_summary_text.delta",
        "output_index": 0,
        "summary_index": 0,
        "item_id": "rs_1",
        "delta": "Need the ",
    },
    {
        "type": "response.reasoning_summary_text.delta",
        "output_index": 0,
        "summary_index": 0,
        "item_id": "rs_1",
        "delta": "weather.",
    },
    {
        "type": "response.output_item.added",
        "output_index": 1,
        "item": {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_w1",
            "name": "get_weather",
            "arguments": "",
        },
    },
    {
        "type": "response.function_call_arguments.delta",
        "output_index": 1,
        "item_id": "fc_1",
        "delta": '{"city":',
    },
    {
        "type": "response.function_call_arguments.delta",
        "output_index": 1,
        "item_id": "fc_1",
        "delta": '"Paris"}',
    },
    {
        "type": "response.function_call_arguments.done",
        "output_index": 1,
        "item_id": "fc_1",
        "arguments": '{"city":"Paris"}',
    },
    {
        "type": "response.output_item.done",
        "output_index": 1,
        "item": {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_w1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
    },
    {
        "type": "response.completed",
        "response": completed(
            [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}]},
                {
                    "type": "function_call",
                    "call_id": "call_w1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
            ]
        ),
    },
)
CALL_REQUEST = request(
    {"instructions": "Be brief.", "input": "Weather in Paris?", "tools": TOOLS, "stream": True}
)


def test_request_items_instructions_tools_and_parameters() -> None:
    body = {
        "instructions": "You are terse.",
        "input": [
            {"role": "developer", "content": "Answer in French."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
        ],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 500,
        "temperature": 0.2,
        "reasoning": {"effort": "low"},
        "previous_response_id": "resp_0",
    }
    reply = completed(
        [{"type": "message", "content": [{"type": "output_text", "text": "Un chat."}]}]
    )
    events = run([(request(body), http_response(reply))])
    req = one(events, "ai.request")["data"]
    assert [(m["role"], m["content"]) for m in req["messages"]] == [
        ("system", "You are terse."),
        ("system", "Answer in French."),
        ("user", "What is this?"),
    ]
    assert req["has_system_prompt"] is True and req["image_count"] == 1
    assert req["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Weather"},
        {"type": "other", "name": "web_search_preview"},
        {"type": "computer_use", "name": "computer_use_preview"},
    ]
    assert req["tool_choice"] == "specific"
    assert req["parameters"] == {"max_tokens": 500, "temperature": 0.2, "reasoning_effort": "low"}
    assert req["model"] == {"id": "gpt-5", "family": "gpt-5"}
    assert one(events, "ai.request")["attrs"]["previous_response_id"] == "resp_0"
    resp = one(events, "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "Un chat."
    assert resp["data"]["finish_reason"] == "stop"
    assert resp["data"]["provider_request_id"] == "resp_1"
    assert resp["data"]["model"]["id"] == "gpt-5-2025-08-07"
    assert resp["data"]["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 50,
        "total_tokens": 170,
        "cached_tokens": 100,
        "reasoning_tokens": 30,
    }


def test_stream_reasoning_and_function_call() -> None:
    events = run([(CALL_REQUEST, CALL_STREAM)])
    resp = one(events, "ai.response")["data"]
    message = resp["choices"][0]["message"]
    assert message["thinking"] == "Need the weather."  # deltas, not repeated from done/completed
    assert resp["tool_calls"] == [
        {
            "type": "function",
            "id": "call_w1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "arguments_hash": resp["tool_calls"][0]["arguments_hash"],
        }
    ]
    assert resp["finish_reason"] == "tool_calls"
    assert one(events, "ai.response")["attrs"]["finish_reason_raw"] == "completed"
    assert resp["usage"]["reasoning_tokens"] == 30
    call = one(events, "agent.tool_call")["data"]
    assert call["call_id"] == "call_w1" and call["arguments"] == {"city": "Paris"}


def test_stream_text_only_in_done_events_is_not_lost() -> None:
    """Servers that skip deltas still produce the text (from output_item.done)."""
    item = {"type": "message", "content": [{"type": "output_text", "text": "Hi there"}]}
    stream = streamed(
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": completed([item])},
    )
    resp = one(run([(request({"input": "hi", "stream": True}), stream)]), "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "Hi there"


def test_text_deltas_and_server_side_tool() -> None:
    search = {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"query": "q"},
    }
    stream = streamed(
        {"type": "response.output_item.added", "output_index": 0, "item": search},
        {"type": "response.output_item.done", "output_index": 0, "item": search},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "Found "},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "it."},
        {"type": "response.completed", "response": completed([search])},
    )
    events = run([(request({"input": "search", "stream": True}), stream)])
    resp = one(events, "ai.response")["data"]
    assert resp["choices"][0]["message"]["content"] == "Found it."
    assert resp["tool_calls"][0]["type"] == "server_tool"
    assert resp["tool_calls"][0]["name"] == "web_search"
    assert resp["finish_reason"] == "stop"  # a server-side tool is not a hand-off to the caller
    assert one(events, "agent.tool_call")["data"]["tool"]["name"] == "web_search"


def test_function_call_output_round_trip() -> None:
    second = request(
        {
            "input": [
                {"role": "user", "content": "Weather in Paris?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call",
                    "call_id": "call_w1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_w1", "output": '{"temp":21}'},
            ],
            "instructions": "Be brief.",
        }
    )
    answer = completed([{"type": "message", "content": [{"type": "output_text", "text": "21C"}]}])
    events = run([(CALL_REQUEST, CALL_STREAM), (second, http_response(answer))])
    call = one(events, "agent.tool_call")
    result = one(events, "agent.tool_result")
    assert result["data"]["call_id"] == "call_w1"
    assert result["data"]["result"] == '{"temp":21}'
    assert result["data"]["tool"]["name"] == "get_weather"
    assert result["data"]["duration_ms"] >= 0
    assert {"event_id": call["event_id"], "relationship": "parent"} in result["related_events"]
    history = [e for e in events if e["event_type"] == "ai.request"][1]["data"]["messages"]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool"]
    assert history[2]["tool_calls"][0]["id"] == "call_w1"
    assert history[3]["tool_call_id"] == "call_w1"


def test_http_error() -> None:
    body = {"error": {"message": "Invalid model", "type": "invalid_request_error", "code": "x"}}
    events = run([(request({"input": "hi"}), http_response(body, status=400, reason="Bad"))])
    resp = one(events, "ai.response")["data"]
    assert resp["success"] is False and resp["status_code"] == 400
    assert resp["error"] == {
        "message": "Invalid model",
        "type": "invalid_request_error",
        "code": "x",
    }


def test_stream_failed_error_and_incomplete() -> None:
    failed = streamed(
        {"type": "response.created", "response": {"id": "resp_f", "output": []}},
        {
            "type": "response.failed",
            "response": {
                "id": "resp_f",
                "status": "failed",
                "output": [],
                "error": {"code": "server_error", "message": "boom"},
            },
        },
    )
    errored = streamed({"type": "error", "code": "rate_limit_exceeded", "message": "slow down"})
    incomplete = streamed(
        {"type": "response.output_text.delta", "output_index": 0, "delta": "partial"},
        {
            "type": "response.incomplete",
            "response": completed(
                [], status="incomplete", incomplete_details={"reason": "max_output_tokens"}
            ),
        },
    )
    req = request({"input": "hi", "stream": True})
    events = run([(req, failed), (req, errored), (req, incomplete)])
    first, second, third = (e["data"] for e in events if e["event_type"] == "ai.response")
    assert first["success"] is False and first["finish_reason"] == "error"
    assert first["error"] == {"type": "server_error", "message": "boom", "code": "server_error"}
    assert second["success"] is False
    assert second["error"]["type"] == "rate_limit_exceeded"
    assert second["error"]["message"] == "slow down"
    assert third["success"] is True and third["finish_reason"] == "length"
    assert third["choices"][0]["message"]["content"] == "partial"


WHOLE = comparable(run([(CALL_REQUEST, CALL_STREAM)]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CALL_STREAM) - 1), max_size=12))
def test_any_chunk_split_gives_the_same_events(offsets: list[int]) -> None:
    assert comparable(run([(CALL_REQUEST, CALL_STREAM)], splits=offsets)) == WHOLE
