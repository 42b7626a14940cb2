"""Realistic traffic for store and CLI tests, decoded by the real pipeline.

Several processes and providers, a tool call answered in a follow-up request, a
streamed Anthropic reply, a rate-limit error and a model with no known price
(costs come from the real pricing enricher).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.events import Event, RawCapture
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sensor import build_pipeline
from oisp_sensor.sinks.base import Sink
from tests.helpers import HASHER, T0, captures, http_request, http_response, sse_events

CANARY = "zebra-canary-7f3a"  # a word only one process's prompts contain (purge tests)


def _chat(model: str, messages: list[dict[str, Any]], **extra: Any) -> bytes:
    return http_request(
        "/v1/chat/completions",
        {"model": model, "messages": messages, **extra},
        headers={"Authorization": "Bearer sk-test-abcdefghijklmnop"},
    )


def _completion(
    model: str, message: dict[str, Any], usage: tuple[int, int], finish: str = "stop"
) -> bytes:
    return http_response(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
    )


def _weather_agent() -> list[tuple[bytes, bytes]]:
    question = {"role": "user", "content": "What's the weather in Paris?"}
    call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": "call_weather_1", "content": "18C sunny"}
    return [
        (
            _chat("gpt-4o-mini", [question], tools=tools),
            _completion("gpt-4o-mini-2024-07-18", assistant, (50, 10), "tool_calls"),
        ),
        (
            _chat("gpt-4o-mini", [question, assistant, result], tools=tools),
            _completion(
                "gpt-4o-mini-2024-07-18",
                {"role": "assistant", "content": "It is 18C and sunny in Paris."},
                (70, 9),
            ),
        ),
        (
            _chat("gpt-4o-mini", [{"role": "user", "content": "And in Rome?"}]),
            http_response(
                {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                status=429,
                reason="Too Many Requests",
            ),
        ),
    ]


def _anthropic_stream() -> list[tuple[bytes, bytes]]:
    request = http_request(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 200,
            "stream": True,
            "messages": [{"role": "user", "content": f"Write a haiku about {CANARY} logs"}],
        },
        host="api.anthropic.com",
        headers={"x-api-key": "sk-ant-api03-secretsecretsecret"},
    )
    frames = sse_events(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5-20250929",
                    "content": [],
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Lines scroll at night"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f" / {CANARY} blooms"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 17},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    return [(request, http_response(content_type="text/event-stream", chunks=frames))]


def _unpriced() -> list[tuple[bytes, bytes]]:
    return [
        (
            _chat("corp-llama-70b", [{"role": "user", "content": "Summarise the standup notes"}]),
            _completion(
                "corp-llama-70b",
                {"role": "assistant", "content": "Three items shipped, one blocked."},
                (30, 8),
            ),
        )
    ]


def _shift(raws: list[RawCapture], t0: int, comm: str) -> list[RawCapture]:
    return [
        dataclasses.replace(
            r,
            timestamp_ns=r.timestamp_ns - T0 + t0,
            metadata={**r.metadata, "comm": comm, "exe": f"/usr/bin/{comm}"},
        )
        for r in raws
    ]


def sample_captures(t0: int = T0) -> list[RawCapture]:
    """Four connections from three processes, seconds apart, starting at `t0` (ns)."""
    s = 1_000_000_000
    return [
        *_shift(captures(_weather_agent(), pid=1001, fd=5, step_ns=40_000_000), t0, "python3"),
        *_shift(
            captures(_anthropic_stream(), pid=2002, fd=6, host="api.anthropic.com"),
            t0 + 5 * s,
            "node",
        ),
        *_shift(captures(_unpriced(), pid=3003, fd=7), t0 + 9 * s, "curl"),
    ]


def pipeline(sinks: Sequence[Sink] = ()) -> Pipeline:
    return build_pipeline(Config(), sinks=sinks, counters=Counters(), hasher=HASHER)


async def run_through(raws: Sequence[RawCapture], sinks: Sequence[Sink]) -> Pipeline:
    """Submit captures to a real, started pipeline and stop it (flushing every sink)."""
    p = pipeline(sinks)
    await p.start()
    for raw in raws:
        assert p.submit(raw)
    await p.stop()
    return p


def sample_events(t0: int = T0) -> list[Event]:
    """The sample traffic decoded synchronously (no sinks), as Event objects."""
    p = pipeline()
    out: list[Event] = []
    for raw in sample_captures(t0):
        out += p.process(raw)
    out += p.finish(p.decoder.close_all())
    return out
