"""The decoder's central promise: however the bytes were cut into reads, the events are the same.

Golden exchanges (wire-faithful provider traffic) are fed whole, split at every byte,
and split wherever hypothesis likes; `stable()` drops only the per-run ids. Every
piece of one message carries the same capture time, so timings are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.events import CaptureKind, RawCapture
from tests.conformance import assert_valid_events
from tests.helpers import T0, stable
from tests.unit.decode.wire import (
    MESSAGE_STOP,
    PING,
    anthropic_frames,
    anthropic_request,
    anthropic_stream,
    block_delta,
    block_start,
    block_stop,
    json_response,
    message_delta,
    message_start,
    openai_chunk,
    openai_request,
    openai_stream,
    run,
    sse_response,
)

Exchange = tuple[str, bytes, bytes]  # host, request, response

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CHAT = {
    "model": "gpt-4o",
    "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Weather? ☀"}],
}
CLAUDE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 512,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}


def _openai_tools_stream() -> bytes:
    def tc(index: int, **kw: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **kw}]}

    return b"".join(
        openai_stream(
            [
                openai_chunk({"role": "assistant", "content": ""}),
                openai_chunk({"content": "Let me check. "}),
                openai_chunk(
                    tc(
                        0,
                        id="call_1",
                        type="function",
                        function={"name": "get_weather", "arguments": ""},
                    )
                ),
                openai_chunk(tc(0, function={"arguments": '{"city":'})),
                openai_chunk(
                    tc(
                        1,
                        id="call_2",
                        type="function",
                        function={"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    )
                ),
                openai_chunk(tc(0, function={"arguments": '"Paris"}'})),
                openai_chunk({}, finish="tool_calls"),
                openai_chunk(
                    usage={
                        "prompt_tokens": 30,
                        "completion_tokens": 20,
                        "total_tokens": 50,
                        "prompt_tokens_details": {"cached_tokens": 10},
                        "completion_tokens_details": {"reasoning_tokens": 0},
                    }
                ),
            ]
        )
    )


def _anthropic_thinking_tool_stream() -> bytes:
    return b"".join(
        anthropic_stream(
            [
                message_start(
                    usage={
                        "input_tokens": 50,
                        "cache_read_input_tokens": 20,
                        "cache_creation_input_tokens": 5,
                        "output_tokens": 1,
                    }
                ),
                block_start(0, {"type": "thinking", "thinking": ""}),
                block_delta(0, {"type": "thinking_delta", "thinking": "Need the tool — "}),
                PING,
                block_delta(0, {"type": "thinking_delta", "thinking": "call it."}),
                block_stop(0),
                block_start(1, {"type": "text", "text": ""}),
                block_delta(1, {"type": "text_delta", "text": "Checking…"}),
                block_stop(1),
                block_start(
                    2, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ),
                block_delta(2, {"type": "input_json_delta", "partial_json": '{"location": '}),
                block_delta(2, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
                block_stop(2),
                message_delta("tool_use", {"output_tokens": 40}),
                MESSAGE_STOP,
            ]
        )
    )


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


GOLDEN: dict[str, list[Exchange]] = {
    "openai-stream-tools": [
        (
            "api.openai.com",
            openai_request({**CHAT, "stream": True, "tools": [TOOL]}),
            _openai_tools_stream(),
        ),
    ],
    "anthropic-stream-thinking-tools": [
        (
            "api.anthropic.com",
            anthropic_request({**CLAUDE, "stream": True}),
            _anthropic_thinking_tool_stream(),
        ),
    ],
    # Some servers end SSE lines with CRLF; a CR at the end of a read must pair with
    # the LF at the start of the next one.
    "anthropic-stream-crlf": [
        (
            "api.anthropic.com",
            anthropic_request({**CLAUDE, "stream": True}),
            b"".join(
                sse_response(
                    [
                        f.replace(b"\n", b"\r\n")
                        for f in anthropic_frames(
                            [
                                message_start(),
                                block_start(0, {"type": "text", "text": ""}),
                                *[
                                    block_delta(0, {"type": "text_delta", "text": f"w{i} "})
                                    for i in range(6)
                                ],
                                block_stop(0),
                                message_delta("end_turn", {"output_tokens": 6}),
                                MESSAGE_STOP,
                            ]
                        )
                    ],
                    request_id="req_crlf",
                    request_id_header="request-id",
                )
            ),
        ),
    ],
    "gzip-json": [
        ("api.openai.com", openai_request(CHAT), json_response(_completion("zip é"), gzip=True))
    ],
    "chunked-json-and-request": [
        (
            "api.openai.com",
            openai_request(CHAT, chunked=True),
            json_response(_completion("c"), chunked=True),
        ),
    ],
    "error-429": [
        (
            "api.openai.com",
            openai_request(CHAT),
            json_response(
                {
                    "error": {
                        "message": "Rate limit",
                        "type": "requests",
                        "code": "rate_limit_exceeded",
                    }
                },
                status=429,
                reason="Too Many Requests",
            ),
        ),
    ],
    "keep-alive-3": [
        (
            "api.openai.com",
            openai_request({**CHAT, "messages": [{"role": "user", "content": f"q{i}"}]}),
            json_response(_completion(f"a{i}")),
        )
        for i in range(3)
    ],
}


def captures(
    exchanges: Sequence[Exchange], cuts: Sequence[Sequence[int]] | None
) -> list[RawCapture]:
    """Each request and response cut at its own offsets; one capture time per message."""
    out: list[RawCapture] = []
    meta = {"comm": "agent", "uid": 1000, "fd": 9}
    for i, (host, request, response) in enumerate(exchanges):
        for j, (kind, data) in enumerate(
            ((CaptureKind.SSL_WRITE, request), (CaptureKind.SSL_READ, response))
        ):
            offsets = cuts[2 * i + j] if cuts is not None else ()
            points = sorted({c for c in offsets if 0 < c < len(data)})
            for a, b in zip([0, *points], [*points, len(data)], strict=True):
                out.append(
                    RawCapture(
                        kind=kind,
                        timestamp_ns=T0 + (2 * i + j) * 150_000_000,
                        data=data[a:b],
                        pid=77,
                        metadata=meta,
                        remote_host=host,
                        remote_port=443,
                    )
                )
    return out


def decode(
    exchanges: Sequence[Exchange], cuts: Sequence[Sequence[int]] | None = None
) -> list[dict[str, Any]]:
    return stable(run(captures(exchanges, cuts)))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_exchange_is_valid_and_complete(name: str) -> None:
    events = run(captures(GOLDEN[name], None))
    assert_valid_events(events)
    assert all(e["confidence"]["completeness"] == "full" for e in events)
    assert sum(e["event_type"] == "ai.response" for e in events) == len(GOLDEN[name])


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_split_at_every_byte_gives_the_same_events(name: str) -> None:
    exchanges = GOLDEN[name]
    every = [range(1, len(msg)) for _, req, resp in exchanges for msg in (req, resp)]
    assert decode(exchanges, every) == decode(exchanges)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(GOLDEN)))
def test_any_split_gives_the_same_events(data: st.DataObject, name: str) -> None:
    exchanges = GOLDEN[name]
    cuts = [
        data.draw(st.lists(st.integers(1, len(msg) - 1), max_size=25), label=f"cuts{k}")
        for k, msg in enumerate(m for _, req, resp in exchanges for m in (req, resp))
    ]
    assert decode(exchanges, cuts) == decode(exchanges)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_whole_golden_set_on_one_connection_in_any_split(data: st.DataObject) -> None:
    """All golden exchanges back to back on one keep-alive connection, cut anywhere."""
    exchanges = [ex for name in sorted(GOLDEN) for ex in GOLDEN[name] if ex[0] == "api.openai.com"]
    cuts = [
        data.draw(st.lists(st.integers(1, len(msg) - 1), max_size=10))
        for _, req, resp in exchanges
        for msg in (req, resp)
    ]
    assert decode(exchanges, cuts) == decode(exchanges)
