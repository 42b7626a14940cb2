"""The openai, anthropic and google-genai Python SDKs, unmodified, through the relay.

Each test lets the SDK talk to what it believes is the real provider (api.openai.com
...), routed to the local fake, and checks three things: the SDK got exactly what
the fake sent, a stream arrived piece by piece (the first piece before the fake sent
the last), and the events say what the SDK itself parsed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from oisp_sensor.demo import FakeToolCall, Script
from tests.integration.conftest import LiveSensor, by_type

T = TypeVar("T")

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
OPENAI_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def closing() -> Iterator[Callable[[T], T]]:
    """Close every SDK client a test makes (an open pooled connection warns at exit)."""
    clients: list[Any] = []

    def register(client: T) -> T:
        clients.append(client)
        return client

    yield register
    for client in clients:
        client.close()


def one_exchange(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    requests, responses = by_type(events, "ai.request"), by_type(events, "ai.response")
    assert len(requests) == 1 and len(responses) == 1, [e["event_type"] for e in events]
    assert responses[0]["data"]["request_id"] == requests[0]["data"]["request_id"]
    return requests[0], responses[0]


def assert_ours(event: dict[str, Any]) -> None:
    """Attributed to this very process, through its socket."""
    assert event["process"]["pid"] == os.getpid()
    assert event["confidence"]["process_attribution"] == "socket_inode"
    assert event["source"]["capture_method"] == "mitm_proxy"


def assert_secret_absent(path: Any, secret: str) -> None:
    assert secret not in path.read_text()


# --- openai --------------------------------------------------------------------------------


def test_openai_streaming_chat_arrives_chunk_by_chunk(
    live_env: LiveSensor, closing: Callable[[Any], Any]
) -> None:
    live = live_env
    script = Script(
        text="The capital of France is Paris, of course.",
        interval_s=0.03,
        cached_tokens=5,
        reasoning_tokens=3,
    )
    live.fake.queue(script)
    client = closing(openai.OpenAI(api_key=OPENAI_KEY, max_retries=0))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    first_ns, parts, chunks, usage = 0, [], 0, None
    for chunk in stream:
        first_ns = first_ns or time.time_ns()
        chunks += 1
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    sent = live.fake.sent[-1]
    assert chunks == len(sent.chunks) - 1  # every event but [DONE] became one SDK chunk
    assert first_ns < sent.chunks[-1].ts_ns, "the stream was buffered"
    text = "".join(parts)
    assert text == script.text
    assert usage is not None

    events = live.stop()
    request, response = one_exchange(events)
    assert_ours(request)
    assert request["data"]["streaming"] is True
    assert request["data"]["model"]["id"] == "gpt-4o-mini"
    assert request["data"]["auth"]["key_prefix"].startswith("sk-")
    data = response["data"]
    assert data["success"] is True and data["status_code"] == 200
    assert data["choices"][0]["message"]["content"] == text
    assert data["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == usage.prompt_tokens
    assert data["usage"]["completion_tokens"] == usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert data["usage"]["cached_tokens"] == usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details is not None
    assert data["usage"]["reasoning_tokens"] == usage.completion_tokens_details.reasoning_tokens
    assert data["time_to_first_token_ms"] >= 0
    connects = by_type(events, "network.connect")
    assert connects and connects[0]["data"]["dest"]["domain"] == "api.openai.com"
    assert connects[0]["attrs"]["intercepted"] is True
    assert_secret_absent(live.jsonl, OPENAI_KEY)


def test_openai_tool_calls_non_streaming(
    live_env: LiveSensor, closing: Callable[[Any], Any]
) -> None:
    live = live_env
    live.fake.queue(Script(text="", tool_calls=(FakeToolCall("get_weather", WEATHER_ARGS),)))
    client = closing(openai.OpenAI(api_key=OPENAI_KEY, max_retries=0))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[OPENAI_TOOL],
    )
    assert raw.http_response.content == live.fake.sent[-1].body
    completion = raw.parse()
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"

    events = live.stop()
    request, response = one_exchange(events)
    assert request["data"]["tools"][0]["name"] == "get_weather"
    data = response["data"]
    assert data["finish_reason"] == "tool_calls"
    assert data["tool_calls_count"] == 1
    assert data["tool_calls"][0]["id"] == call.id
    assert data["tool_calls"][0]["name"] == call.function.name
    assert data["tool_calls"][0]["arguments"] == call.function.arguments
    assert completion.usage is not None
    assert data["usage"]["prompt_tokens"] == completion.usage.prompt_tokens
    assert data["usage"]["completion_tokens"] == completion.usage.completion_tokens
    (tool_call,) = by_type(events, "agent.tool_call")
    assert tool_call["data"]["tool"]["name"] == "get_weather"
    assert tool_call["data"]["call_id"] == call.id
    assert tool_call["data"]["arguments"] == WEATHER_ARGS


def test_openai_streamed_tool_call_and_round_trip(
    live_env: LiveSensor, closing: Callable[[Any], Any]
) -> None:
    live = live_env
    live.fake.queue(
        Script(text="", tool_calls=(FakeToolCall("get_weather", WEATHER_ARGS),), interval_s=0.01),
        Script(text="It is 18 degrees and sunny in Paris."),
    )
    client = closing(openai.OpenAI(api_key=OPENAI_KEY, max_retries=0))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    stream = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[OPENAI_TOOL], stream=True
    )
    call_id, name, arguments = "", "", ""
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            call_id = delta.id or call_id
            if delta.function is not None:
                name = delta.function.name or name
                arguments += delta.function.arguments or ""
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C, sunny"},
    ]
    final = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[OPENAI_TOOL])

    events = live.stop()
    responses = by_type(events, "ai.response")
    assert len(responses) == 2
    streamed = responses[0]["data"]["tool_calls"][0]
    assert (streamed["id"], streamed["name"], streamed["arguments"]) == (call_id, name, arguments)
    assert responses[1]["data"]["choices"][0]["message"]["content"] == (
        final.choices[0].message.content
    )
    (tool_call,) = by_type(events, "agent.tool_call")
    (tool_result,) = by_type(events, "agent.tool_result")
    assert tool_result["data"]["call_id"] == call_id == tool_call["data"]["call_id"]
    assert tool_result["data"]["result"] == "18C, sunny"


def test_openai_provider_error_is_relayed_untouched(
    live_env: LiveSensor, closing: Callable[[Any], Any]
) -> None:
    live = live_env
    client = closing(openai.OpenAI(api_key=OPENAI_KEY, max_retries=0))
    try:
        client.chat.completions.create(
            model="fake-error-429", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.RateLimitError as e:
        assert e.status_code == 429
        assert e.response.content == live.fake.sent[-1].body
    else:
        raise AssertionError("the 429 did not reach the SDK")
    events = live.stop()
    _, response = one_exchange(events)
    assert response["data"]["status_code"] == 429
    assert response["data"]["success"] is False
    assert response["data"]["error"]["type"]


# --- anthropic -----------------------------------------------------------------------------


def test_anthropic_stream_with_thinking_and_tool_use(
    live_env: LiveSensor, closing: Callable[[Any], Any]
) -> None:
    live = live_env
    script = Script(
        text="Let me check the weather for you.",
        thinking="The user wants the weather; call the tool.",
        tool_calls=(FakeToolCall("get_weather", WEATHER_ARGS),),
        interval_s=0.02,
        cached_tokens=7,
    )
    live.fake.queue(script)
    client = closing(anthropic.Anthropic(api_key=ANTHROPIC_KEY, max_retries=0))
    first_ns = 0
    with client.messages.stream(
        model="claude-sonnet-5",
        max_tokens=512,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        for _ in stream:
            first_ns = first_ns or time.time_ns()
        final = stream.get_final_message()
    sent = live.fake.sent[-1]
    assert first_ns < sent.chunks[-1].ts_ns, "the stream was buffered"
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    text = final.content[1].text  # type: ignore[union-attr]
    tool = final.content[2]
    assert tool.type == "tool_use"
    assert tool.input == WEATHER_ARGS

    events = live.stop()
    request, response = one_exchange(events)
    assert_ours(request)
    data = response["data"]
    message = data["choices"][0]["message"]
    assert message["content"] == text
    assert message["thinking"] == final.content[0].thinking  # type: ignore[union-attr]
    assert data["finish_reason"] == "tool_calls"
    assert data["tool_calls"][0]["id"] == tool.id
    assert data["tool_calls"][0]["name"] == tool.name
    u = final.usage
    assert data["usage"]["prompt_tokens"] == (
        u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    )
    assert data["usage"]["cached_tokens"] == u.cache_read_input_tokens == 7
    assert data["usage"]["completion_tokens"] == u.output_tokens
    (tool_call,) = by_type(events, "agent.tool_call")
    assert tool_call["data"]["arguments"] == WEATHER_ARGS
    assert_secret_absent(live.jsonl, ANTHROPIC_KEY)


def test_anthropic_non_streaming(live_env: LiveSensor, closing: Callable[[Any], Any]) -> None:
    live = live_env
    live.fake.queue(Script(text="Bonjour!"))
    client = closing(anthropic.Anthropic(api_key=ANTHROPIC_KEY, max_retries=0))
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        system="Answer in French.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert raw.http_response.content == live.fake.sent[-1].body
    message = raw.parse()
    events = live.stop()
    request, response = one_exchange(events)
    assert request["data"]["has_system_prompt"] is True
    assert response["data"]["choices"][0]["message"]["content"] == message.content[0].text  # type: ignore[union-attr]
    assert response["data"]["usage"]["completion_tokens"] == message.usage.output_tokens
    assert response["data"]["finish_reason"] == "stop"


# --- google-genai --------------------------------------------------------------------------


def test_gemini_stream_and_generate(live_env: LiveSensor, closing: Callable[[Any], Any]) -> None:
    live = live_env
    live.fake.queue(
        Script(text="Gemini says hello in pieces.", interval_s=0.03, reasoning_tokens=4),
        Script(text="", tool_calls=(FakeToolCall("get_weather", WEATHER_ARGS),)),
    )
    client = closing(genai.Client(api_key="AIza-test-key-0123456789"))
    first_ns, parts, last = 0, [], None
    for chunk in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Say hello"
    ):
        first_ns = first_ns or time.time_ns()
        parts.append(chunk.text or "")
        last = chunk
    streamed_text = "".join(parts)
    sent = live.fake.sent[-1]
    assert "alt=sse" in sent.path
    assert first_ns < sent.chunks[-1].ts_ns, "the stream was buffered"
    assert streamed_text == "Gemini says hello in pieces."
    assert last is not None and last.usage_metadata is not None

    tool = genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(
                name="get_weather",
                parameters=genai_types.Schema(type=genai_types.Type.OBJECT, properties={}),
            )
        ]
    )
    result = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Weather in Paris?",
        config=genai_types.GenerateContentConfig(tools=[tool]),
    )
    assert result.function_calls and result.function_calls[0].args == WEATHER_ARGS

    events = live.stop()
    responses = by_type(events, "ai.response")
    assert len(responses) == 2
    stream_event, call_event = responses
    assert stream_event["data"]["choices"][0]["message"]["content"] == streamed_text
    meta = last.usage_metadata
    assert stream_event["data"]["usage"]["prompt_tokens"] == meta.prompt_token_count
    assert stream_event["data"]["usage"]["reasoning_tokens"] == meta.thoughts_token_count
    assert stream_event["data"]["model"]["id"] == "gemini-2.5-flash"
    assert call_event["data"]["tool_calls"][0]["name"] == "get_weather"
    (tool_call,) = by_type(events, "agent.tool_call")
    assert tool_call["data"]["arguments"] == WEATHER_ARGS
    assert "AIza-test-key-0123456789" not in live.jsonl.read_text()
