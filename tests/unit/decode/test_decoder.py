"""The whole decoder: connections, correlation, timing, tool round trips, bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder, Limits
from oisp_sensor.events import CaptureKind, RawCapture
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, T0
from tests.unit.decode.wire import (
    ANTHROPIC_KEY,
    MESSAGE_STOP,
    OPENAI_KEY,
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
    openai_chunk,
    openai_request,
    openai_stream,
    run,
)

HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


def ok(content: str = "Hello!", **extra: Any) -> bytes:
    return json_response(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
        **extra,
    )


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def decoded(caps: Captures, **kw: Any) -> list[dict[str, Any]]:
    events = run(caps.raws, **kw)
    if events:
        assert_valid_events(events)
    return events


# --- correlation and timing --------------------------------------------------------------


def test_request_and_response_share_request_id_and_are_linked() -> None:
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).recv(ok(), 850).close(900)
    events = decoded(caps)
    assert types(events) == ["ai.request", "ai.response"]
    req, resp = events
    assert req["data"]["request_id"] == resp["data"]["request_id"]
    assert req["data"]["request_id"].startswith("req_")
    assert resp["related_events"] == [{"event_id": req["event_id"], "relationship": "parent"}]
    assert req["ts"] == "2026-01-01T00:00:00.000000Z"
    assert resp["ts"] == "2026-01-01T00:00:00.850000Z"
    assert resp["data"]["latency_ms"] == 850
    assert req["source"]["capture_point"] == "ssl_write"
    assert resp["source"]["capture_point"] == "ssl_read"
    assert req["process"] == {"pid": 4242, "ppid": 1, "exe": "/usr/bin/python3", "name": "python3"}
    assert req["actor"] == {"uid": 1000}


def test_latency_and_time_to_first_token_from_capture_timestamps() -> None:
    # Request written in two pieces (0 ms, 40 ms); the stream's head arrives at 300 ms
    # with a role-only chunk (no content yet), the first token at 520 ms, the last byte
    # at 1400 ms, and the connection closes much later.
    request = openai_request({**HI, "stream": True})
    pieces = openai_stream(
        [
            openai_chunk({"role": "assistant", "content": ""}),
            openai_chunk({"content": "Hel"}),
            openai_chunk({"content": "lo"}),
            openai_chunk({}, finish="stop"),
        ]
    )
    head, role, first, *rest = pieces
    caps = Captures()
    conn = caps.conn()
    conn.send(request[:100], 0).send(request[100:], 40)
    conn.recv(head + role, 300).recv(first, 520).recv(b"".join(rest), 1400).close(9000)
    resp = one(decoded(caps), "ai.response")["data"]
    assert resp["latency_ms"] == 1400  # last response byte - first request byte
    assert resp["time_to_first_token_ms"] == 480  # first content - last request byte


def test_time_to_first_token_counts_thinking_and_tool_calls_as_content() -> None:
    pieces = anthropic_stream(
        [
            message_start(),
            block_start(0, {"type": "thinking", "thinking": ""}),
            block_delta(0, {"type": "thinking_delta", "thinking": "Hmm"}),
            block_stop(0),
            message_delta("end_turn", {"output_tokens": 3}),
            MESSAGE_STOP,
        ]
    )
    caps = Captures()
    conn = caps.conn(host="api.anthropic.com")
    conn.send(
        anthropic_request(
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            }
        ),
        10,
    )
    conn.recv(pieces[:3], 100).recv(pieces[3], 250).recv(pieces[4:], 300, step_ms=5)
    resp = one(decoded(caps), "ai.response")["data"]
    assert resp["time_to_first_token_ms"] == 240


def test_latency_of_a_close_delimited_response_ends_at_its_last_byte() -> None:
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]})
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).recv(response, 100).recv(body.encode(), 700).close(5000)
    resp = one(decoded(caps), "ai.response")
    assert resp["data"]["latency_ms"] == 700
    assert resp["data"]["choices"][0]["message"]["content"] == "x"
    assert resp["confidence"]["completeness"] == "full"


def test_keep_alive_with_three_calls_on_one_connection() -> None:
    caps = Captures()
    conn = caps.conn()
    for i in range(3):
        conn.send(
            openai_request({**HI, "messages": [{"role": "user", "content": f"q{i}"}]}), i * 1000
        )
        conn.recv(ok(f"a{i}"), i * 1000 + 200 + i)
    conn.close(5000)
    events = decoded(caps)
    assert types(events) == ["ai.request", "ai.response"] * 3
    for i in range(3):
        req, resp = events[2 * i], events[2 * i + 1]
        assert req["data"]["messages"][0]["content"] == f"q{i}"
        assert resp["data"]["choices"][0]["message"]["content"] == f"a{i}"
        assert resp["data"]["request_id"] == req["data"]["request_id"]
        assert resp["data"]["latency_ms"] == 200 + i
    assert len({e["data"]["request_id"] for e in events}) == 3


def test_pipelined_requests_are_answered_in_order() -> None:
    caps = Captures()
    conn = caps.conn()
    conn.send(
        b"".join(
            openai_request({**HI, "messages": [{"role": "user", "content": f"q{i}"}]})
            for i in range(3)
        ),
        0,
    )
    conn.recv(ok("a0") + ok("a1") + ok("a2"), 100)
    events = decoded(caps)
    assert types(events) == ["ai.request"] * 3 + ["ai.response"] * 3
    by_id = {e["data"]["request_id"]: e for e in events if e["event_type"] == "ai.request"}
    for resp in events[3:]:
        question = by_id[resp["data"]["request_id"]]["data"]["messages"][0]["content"]
        assert resp["data"]["choices"][0]["message"]["content"] == "a" + question[1:]


def test_interleaved_connections_do_not_mix() -> None:
    caps = Captures()
    a, b = caps.conn(fd=5), caps.conn(fd=6, host="api.anthropic.com")
    a.send(openai_request({**HI, "stream": True}), 0)
    b.send(
        anthropic_request(
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            }
        ),
        1,
    )
    oa = openai_stream([openai_chunk({"content": f"{i} "}) for i in range(5)])
    ob = anthropic_stream(
        [
            message_start(),
            block_start(0, {"type": "text", "text": ""}),
            *[block_delta(0, {"type": "text_delta", "text": f"{i}."}) for i in range(5)],
            block_stop(0),
            message_delta("end_turn", {"output_tokens": 5}),
            MESSAGE_STOP,
        ]
    )
    for i in range(max(len(oa), len(ob))):
        if i < len(oa):
            a.recv(oa[i], 100 + i)
        if i < len(ob):
            b.recv(ob[i], 100 + i)
    events = decoded(caps)
    texts = {
        e["data"]["provider"]["name"]: e["data"]["choices"][0]["message"]["content"]
        for e in events
        if e["event_type"] == "ai.response"
    }
    assert texts == {"openai": "0 1 2 3 4 ", "anthropic": "0.1.2.3.4."}


# --- conversations and tool round trips -------------------------------------------------------


def tool_call_response(calls: list[tuple[str, str, str]]) -> bytes:
    return json_response(
        {
            "id": "chatcmpl-tools",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": cid,
                                "type": "function",
                                "function": {"name": name, "arguments": args},
                            }
                            for cid, name, args in calls
                        ],
                    },
                }
            ],
        }
    )


def turn_messages(results: list[tuple[str, str]], *, extra_user: str | None = None) -> list[Any]:
    calls = [
        {"id": cid, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
        for cid, _ in results
    ]
    messages: list[Any] = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the bug."},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *[{"role": "tool", "tool_call_id": cid, "content": out} for cid, out in results],
    ]
    if extra_user:
        messages.append({"role": "user", "content": extra_user})
    return messages


def test_tool_results_matched_by_call_id_on_another_connection() -> None:
    caps = Captures()
    first = caps.conn(fd=5)
    first.send(openai_request({"model": "gpt-4o", "messages": turn_messages([])[:2]}), 0)
    first.recv(
        tool_call_response(
            [("call_A", "read_file", '{"path":"a.py"}'), ("call_B", "bash", '{"cmd":"ls"}')]
        ),
        500,
    )
    first.close(600)
    # The agent ran the tools for 1.5 s, then sent the results on a fresh connection.
    second = caps.conn(fd=9)
    results = [("call_A", "print('hi')\n"), ("call_B", "a.py\nb.py")]
    second.send(openai_request({"model": "gpt-4o", "messages": turn_messages(results)}), 2000)
    second.recv(ok("Done."), 2600)
    # A third turn re-sends the same results with the history: no new tool_result.
    second.send(
        openai_request(
            {"model": "gpt-4o", "messages": turn_messages(results, extra_user="Thanks")}
        ),
        3000,
    )
    second.recv(ok("Bye."), 3300).close(4000)
    events = decoded(caps)
    assert types(events) == [
        "ai.request",
        "ai.response",
        "agent.tool_call",
        "agent.tool_call",
        "ai.request",
        "agent.tool_result",
        "agent.tool_result",
        "ai.response",
        "ai.request",
        "ai.response",
    ]
    calls = [e for e in events if e["event_type"] == "agent.tool_call"]
    results_ev = [e for e in events if e["event_type"] == "agent.tool_result"]
    request2 = events[4]
    assert [r["data"]["call_id"] for r in results_ev] == ["call_A", "call_B"]
    for call, result in zip(calls, results_ev, strict=True):
        assert result["related_events"] == [
            {"event_id": call["event_id"], "relationship": "parent"},
            {"event_id": request2["event_id"], "relationship": "related"},
        ]
        assert result["data"]["duration_ms"] == 1500  # results sent - tool call received
        assert result["data"]["success"] is True
        assert result["attrs"]["request_id"] == request2["data"]["request_id"]
    assert results_ev[0]["data"]["result"] == "print('hi')\n"
    assert results_ev[0]["data"]["result_size_bytes"] == len("print('hi')\n")
    assert results_ev[0]["data"]["tool"] == {"name": "read_file", "type": "file_read"}
    assert results_ev[1]["data"]["tool"] == {"name": "bash", "type": "shell"}
    assert calls[1]["data"]["tool"]["type"] == "shell"


def test_anthropic_tool_result_with_is_error() -> None:
    caps = Captures()
    conn = caps.conn(host="api.anthropic.com")
    base = {"model": "claude-sonnet-4-5", "max_tokens": 100}
    conn.send(anthropic_request({**base, "messages": [{"role": "user", "content": "ls"}]}), 0)
    conn.recv(
        json_response(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "bash",
                        "input": {"command": "ls /x"},
                    }
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 5, "output_tokens": 5},
            }
        ),
        100,
    )
    conn.send(
        anthropic_request(
            {
                **base,
                "messages": [
                    {"role": "user", "content": "ls"},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "toolu_9",
                                "name": "bash",
                                "input": {"command": "ls /x"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "toolu_9",
                                "is_error": True,
                                "content": [{"type": "text", "text": "No such file"}],
                            }
                        ],
                    },
                ],
            }
        ),
        350,
    )
    conn.recv(
        json_response(
            {
                "id": "msg_2",
                "type": "message",
                "role": "assistant",
                "model": "x",
                "content": [{"type": "text", "text": "It failed."}],
                "stop_reason": "end_turn",
                "usage": {},
            }
        ),
        400,
    )
    result = one(decoded(caps), "agent.tool_result")["data"]
    assert result["call_id"] == "toolu_9"
    assert result["success"] is False
    assert result["result"] == "No such file"
    assert result["duration_ms"] == 250
    assert result["tool"] == {"name": "bash", "type": "shell"}


def test_conversation_id_is_stable_across_turns_and_distinct_between_threads() -> None:
    caps = Captures()
    conn = caps.conn()
    history: list[Any] = [{"role": "system", "content": "S"}, {"role": "user", "content": "first"}]
    for turn in range(3):
        conn.send(openai_request({"model": "gpt-4o", "messages": history}), turn * 100)
        conn.recv(ok(f"answer {turn}"), turn * 100 + 50)
        history = [
            *history,
            {"role": "assistant", "content": f"answer {turn}"},
            {"role": "user", "content": f"follow-up {turn}"},
        ]
    # Another thread: same process, different opening message; and same thread, other process.
    conn.send(
        openai_request(
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "other"},
                ],
            }
        ),
        900,
    )
    conn.recv(ok(), 950)
    other = caps.conn(pid=777, fd=3)
    other.send(openai_request({"model": "gpt-4o", "messages": history[:2]}), 1000).recv(ok(), 1050)
    events = decoded(caps)
    conv = [e["data"]["conversation_id"] for e in events if e["event_type"] == "ai.request"]
    assert conv[0] == conv[1] == conv[2]
    assert len(set(conv)) == 3
    responses = [e for e in events if e["event_type"] == "ai.response"]
    assert [r["data"]["conversation_id"] for r in responses[:3]] == conv[:3]


# --- errors, damage and limits ------------------------------------------------------------------


def test_garbage_on_one_connection_leaves_the_others_alone() -> None:
    counters = Counters()
    caps = Captures()
    good, bad = caps.conn(fd=5), caps.conn(fd=6)
    good.send(openai_request(HI), 0)
    bad.send(openai_request(HI), 1)
    bad.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 50)
    bad.send(b"\x16\x03\x01\x00\xa5garbage", 60)
    good.recv(ok(), 100)
    events = decoded(caps, counters=counters)
    assert types(events) == ["ai.request", "ai.request", "ai.response", "ai.response"]
    broken = next(e for e in events[2:] if "decode_error" in e.get("attrs", {}))
    assert "conflicting Content-Length" in broken["attrs"]["decode_error"]
    assert broken["confidence"]["completeness"] == "partial"
    assert broken["data"]["success"] is False and "status_code" not in broken["data"]
    fine = next(e for e in events[2:] if e is not broken)
    assert fine["confidence"]["completeness"] == "full"
    assert fine["data"]["choices"][0]["message"]["content"] == "Hello!"
    assert counters.get("decode.errors") == 1


def test_bytes_after_a_decode_error_are_ignored_until_close() -> None:
    counters = Counters()
    caps = Captures()
    conn = caps.conn()
    conn.send(b"NOT HTTP AT ALL\r\n\r\n", 0)
    conn.send(openai_request(HI), 10).recv(ok(), 20).close(30)
    assert decoded(caps, counters=counters) == []
    assert counters.get("decode.errors") == 1  # an AI host: counted as a decode error


def test_truncated_stream_emits_what_was_assembled_flagged_partial() -> None:
    pieces = openai_stream([openai_chunk({"content": "Once "}), openai_chunk({"content": "upon"})])
    caps = Captures()
    caps.conn().send(openai_request({**HI, "stream": True}), 0).recv(
        pieces[:3], 100, step_ms=10
    ).close(500)
    counters = Counters()
    resp = one(decoded(caps, counters=counters), "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "Once upon"
    assert resp["confidence"]["completeness"] == "partial"
    assert "stream ended inside a message" in resp["attrs"]["decode_error"]
    assert resp["data"]["status_code"] == 200


def test_connection_closed_before_any_response() -> None:
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).close(3000)
    events = decoded(caps)
    req, resp = events
    assert resp["data"]["success"] is False
    assert resp["data"]["error"]["type"] == "no_response"
    assert "status_code" not in resp["data"] and "latency_ms" not in resp["data"]
    assert resp["confidence"]["completeness"] == "partial"


def test_truncated_request_body_is_flagged() -> None:
    request = openai_request(HI)
    caps = Captures()
    caps.conn().send(request[:-10], 0).close(100)
    events = decoded(caps)
    req = one(events, "ai.request")
    assert req["confidence"]["completeness"] == "partial"
    assert "stream ended inside a message" in req["attrs"]["decode_error"]


def test_early_response_before_the_request_body_ended() -> None:
    request = openai_request(HI)
    caps = Captures()
    conn = caps.conn()
    conn.send(request[: len(request) - 5], 0)
    conn.recv(
        json_response(
            {
                "error": {
                    "message": "Invalid key",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            status=401,
            reason="Unauthorized",
        ),
        5,
    )
    conn.send(request[len(request) - 5 :], 6).close(10)
    events = decoded(caps)
    req, resp = one(events, "ai.request"), one(events, "ai.response")
    assert "response began before the request ended" in req["confidence"]["limitations"]
    assert resp["data"]["error"]["code"] == "invalid_api_key"


def test_unpaired_response_is_counted_not_decoded() -> None:
    counters = Counters()
    caps = Captures()
    caps.conn().recv(ok(), 0).close(5)
    assert decoded(caps, counters=counters) == []
    assert counters.get("decode.unpaired_responses") == 1


def test_gzip_and_chunked_responses_and_gzip_request_body() -> None:
    caps = Captures()
    conn = caps.conn()
    conn.send(openai_request(HI, content_encoding="gzip"), 0).recv(ok("zipped", gzip=True), 10)
    conn.send(openai_request(HI, chunked=True), 20).recv(ok("chunked", chunked=True), 30)
    events = decoded(caps)
    reqs = [e for e in events if e["event_type"] == "ai.request"]
    assert [r["data"]["messages"][0]["content"] for r in reqs] == ["Hi", "Hi"]
    texts = [
        e["data"]["choices"][0]["message"]["content"]
        for e in events
        if e["event_type"] == "ai.response"
    ]
    assert texts == ["zipped", "chunked"]
    assert all(e["confidence"]["completeness"] == "full" for e in events)


def test_unknown_request_content_encoding_costs_the_body_not_the_connection() -> None:
    request = openai_request(HI).replace(
        b"Content-Type:", b"Content-Encoding: compress\r\nContent-Type:"
    )
    caps = Captures()
    caps.conn().send(request, 0).recv(ok("one"), 10).send(openai_request(HI), 20).recv(
        ok("two"), 30
    )
    events = decoded(caps)
    assert types(events) == ["ai.request", "ai.response"] * 2
    assert events[0]["confidence"]["completeness"] == "partial"
    assert any("unsupported Content-Encoding" in r for r in events[0]["confidence"]["limitations"])
    assert events[3]["data"]["choices"][0]["message"]["content"] == "two"


def test_corrupt_gzip_response_is_flagged_and_the_connection_goes_on() -> None:
    bad = ok().replace(
        b"Content-Type: application/json",
        b"Content-Type: application/json\r\nContent-Encoding: gzip",
    )
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).recv(bad, 10).send(openai_request(HI), 20).recv(
        ok("next"), 30
    )
    events = decoded(caps)
    assert events[1]["confidence"]["completeness"] == "partial"
    assert any("bad gzip data" in r for r in events[1]["confidence"]["limitations"])
    assert events[3]["data"]["choices"][0]["message"]["content"] == "next"


def test_response_body_over_the_limit_is_flagged() -> None:
    counters = Counters()
    big = ok("x" * 5000, gzip=True)
    caps = Captures()
    caps.conn().send(openai_request(HI), 0).recv(big, 10)
    resp = one(decoded(caps, counters=counters, limits=Limits(max_body_bytes=1000)), "ai.response")
    assert resp["confidence"]["completeness"] == "partial"
    assert counters.get("decode.body_over_limit") == 1


def test_request_body_over_the_limit_is_flagged() -> None:
    counters = Counters()
    caps = Captures()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * 5000}]}
    caps.conn().send(openai_request(body), 0).recv(ok(), 10)
    req = one(decoded(caps, counters=counters, limits=Limits(max_body_bytes=1000)), "ai.request")
    assert req["confidence"]["completeness"] == "partial"
    assert "request_body" in req["confidence"]["missing"]
    assert counters.get("decode.body_over_limit") == 1


def test_streamed_text_over_the_limit_is_cut_and_flagged() -> None:
    pieces = openai_stream([openai_chunk({"content": "abcdefghij"}) for _ in range(10)])
    caps = Captures()
    caps.conn().send(openai_request({**HI, "stream": True}), 0).recv(pieces, 10)
    resp = one(decoded(caps, limits=Limits(max_text_chars=35)), "ai.response")
    assert resp["data"]["choices"][0]["message"]["content"] == "abcdefghij" * 3
    assert "response text over the limit; the rest is not kept" in resp["confidence"]["limitations"]


def test_non_ai_hosts_and_reads_produce_no_events() -> None:
    counters = Counters()
    caps = Captures()
    caps.conn(host="example.com", fd=3).send(openai_request(HI, host="example.com"), 0).recv(
        ok(), 5
    )
    models = (
        b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer "
        + OPENAI_KEY.encode()
        + b"\r\n\r\n"
    )
    caps.conn(fd=4).send(models, 0).recv(json_response({"data": []}), 5)
    assert decoded(caps, counters=counters) == []
    assert counters.get("decode.non_ai_requests") == 1
    assert counters.get("decode.ignored_requests") == 1


def test_unknown_endpoint_on_an_ai_host_is_still_reported() -> None:
    request = openai_request(HI).replace(b"/v1/chat/completions", b"/v1/brand_new_api")
    caps = Captures()
    caps.conn().send(request, 0).recv(json_response({"ok": True}), 10)
    events = decoded(caps)
    req, resp = events
    assert req["attrs"]["api"] == "unknown"
    assert req["confidence"]["completeness"] == "partial"
    assert resp["data"]["status_code"] == 200


def test_websocket_upgrade_on_an_ai_host_is_counted() -> None:
    counters = Counters()
    upgrade = (
        b"GET /v1/realtime?model=gpt-4o-realtime HTTP/1.1\r\nHost: api.openai.com\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n"
    )
    caps = Captures()
    conn = caps.conn()
    conn.send(upgrade, 0).recv(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi", 5
    )
    conn.send(b"\x81\x85\x00\x00\x00\x00hello", 6).close(10)
    assert decoded(caps, counters=counters) == []
    assert counters.get("decode.upgraded_connections") == 1
    assert counters.get("decode.errors") == 0


def test_conn_open_gives_network_connect() -> None:
    caps = Captures()
    caps.conn(host="api.anthropic.com").open(0)
    event = one(decoded(caps), "network.connect")
    assert event["data"] == {
        "dest": {"domain": "api.anthropic.com", "port": 443},
        "protocol": "tcp",
    }
    assert event["attrs"]["provider_id"] == "anthropic"
    assert event["confidence"]["completeness"] == "metadata_only"


def test_conn_open_on_a_key_still_in_use_starts_a_new_connection() -> None:
    # pid and fd reused while the first connection's close was lost: its half-read
    # response must not be glued to the new connection's bytes.
    caps = Captures()
    old = caps.conn(fd=5).open(0)
    old.send(openai_request(HI), 1).recv(ok()[:40], 10)
    new = caps.conn(fd=5).open(50)
    new.send(openai_request(HI), 51).recv(ok("fresh"), 60).close(70)
    events = decoded(caps)
    assert types(events) == [
        "network.connect",
        "ai.request",
        "ai.response",
        "network.connect",
        "ai.request",
        "ai.response",
    ]
    assert events[2]["confidence"]["completeness"] == "partial"
    assert events[5]["data"]["choices"][0]["message"]["content"] == "fresh"
    assert events[5]["confidence"]["completeness"] == "full"


def test_record_chunks_emits_valid_streaming_chunks() -> None:
    pieces = openai_stream(
        [
            openai_chunk({"content": "a"}),
            openai_chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ]
                }
            ),
            openai_chunk({"content": "b"}),
        ]
    )
    caps = Captures()
    caps.conn().send(openai_request({**HI, "stream": True}), 0).recv(pieces, 10, step_ms=1)
    events = decoded(caps, record_chunks=True)
    chunks = [e for e in events if e["event_type"] == "ai.streaming_chunk"]
    assert [c["data"]["chunk_index"] for c in chunks] == [0, 1, 2]
    assert [c["data"]["delta"] for c in chunks] == [
        {"content": "a"},
        {"tool_calls": [{"arguments": "{}"}]},
        {"content": "b"},
    ]
    assert all(c["data"]["request_id"] == events[0]["data"]["request_id"] for c in chunks)


def test_unknown_attribution_value_becomes_unknown() -> None:
    raw = RawCapture(
        kind=CaptureKind.SSL_WRITE,
        timestamp_ns=T0,
        data=openai_request(HI),
        pid=5,
        metadata={"fd": 1, "comm": "x", "attribution": "psychic"},
        remote_host="api.openai.com",
        remote_port=443,
    )
    events = run([raw])
    assert_valid_events(events)
    assert events[0]["confidence"]["process_attribution"] == "unknown"


def test_least_recently_active_connection_is_evicted_at_the_limit() -> None:
    counters = Counters()
    caps = Captures()
    for fd in range(4):
        caps.conn(fd=fd).send(openai_request(HI), fd)
    events = decoded(caps, counters=counters, limits=Limits(max_connections=2))
    assert counters.get("decode.connections_evicted") == 2
    # Opening the 3rd and 4th connections evicts the 1st and 2nd, whose responses never came.
    assert types(events) == [
        "ai.request", "ai.request",
        "ai.response", "ai.request",
        "ai.response", "ai.request",
        "ai.response", "ai.response",
    ]  # fmt: skip
    evicted = [events[2], events[4]]
    assert [e["related_events"][0]["event_id"] for e in evicted] == [
        events[0]["event_id"],
        events[1]["event_id"],
    ]
    for event in evicted:
        assert "connection evicted: too many open connections" in event["confidence"]["limitations"]


def test_idle_connections_expire_and_emit_what_they_hold() -> None:
    decoder = Decoder(hasher=HASHER, counters=Counters())
    caps = Captures()
    caps.conn().send(openai_request(HI), 0)
    for raw in caps.raws:
        decoder.feed(raw)
    assert decoder.open_connections == 1
    assert decoder.expire_idle(T0 + 10**9, idle_ns=5 * 10**9) == []
    expired = decoder.expire_idle(T0 + 10 * 10**9, idle_ns=5 * 10**9)
    assert [e.event_type for e in expired] == ["ai.response"]
    assert decoder.open_connections == 0


def test_gap_marks_the_exchange_in_flight_partial() -> None:
    decoder = Decoder(hasher=HASHER, counters=Counters())
    caps = Captures()
    conn = caps.conn()
    conn.send(openai_request({**HI, "stream": True}), 0)
    conn.recv(openai_stream([openai_chunk({"content": "a"})])[:2], 10)
    for raw in caps.raws:
        decoder.feed(raw)
    events = decoder.mark_gap(caps.raws[0].connection_key, T0 + 20_000_000)
    resp = [e for e in events if e.event_type == "ai.response"]
    assert resp and resp[0].confidence["completeness"] == "partial"
    assert decoder.mark_gap(caps.raws[0].connection_key, T0) == []  # already broken


@pytest.mark.parametrize(
    ("header", "value", "kind", "key"),
    [
        ("Authorization", f"Bearer {OPENAI_KEY}", "api_key", OPENAI_KEY),
        ("x-api-key", ANTHROPIC_KEY, "api_key", ANTHROPIC_KEY),
        (
            "api-key",
            "0123456789abcdef0123456789abcdef",
            "api_key",
            "0123456789abcdef0123456789abcdef",
        ),
        (
            "Authorization",
            "Bearer ya29.a0AfB_byC7xQ9zJ2kLmNoPqRsTuVwXyZ0123456789abcdef",
            "oauth",
            "ya29.a0AfB_byC7xQ9zJ2kLmNoPqRsTuVwXyZ0123456789abcdef",
        ),
    ],
)
def test_no_secret_reaches_any_event(header: str, value: str, kind: str, key: str) -> None:
    request = openai_request(HI).replace(
        f"Authorization: Bearer {OPENAI_KEY}".encode(), f"{header}: {value}".encode()
    )
    request = request.replace(
        b"Connection: keep-alive",
        b"Cookie: session=" + key.encode() + b"\r\nProxy-Authorization: Basic " + key.encode(),
    )
    caps = Captures()
    # A second request whose head is broken on the key's line while the first one awaits
    # its response: the error message lands in the first exchange's events.
    broken = request[:200] + b"\r\n" + key.encode() + b"\r\n\r\n"
    caps.conn().send(request, 0).send(broken, 5).recv(ok(), 10).close(30)
    events = decoded(caps)
    assert any("malformed header line" in e["attrs"].get("decode_error", "") for e in events)
    auth = one(events, "ai.request")["data"]["auth"]
    assert auth["type"] == kind
    assert len(auth["key_prefix"]) <= 8 and key.startswith(auth["key_prefix"])
    assert auth["key_hash"] == HASHER(key)
    text = json.dumps(events)
    for i in range(0, len(key) - 12, 4):  # no 12-character run of the key, anywhere
        assert key[i : i + 12] not in text, (header, key[i : i + 12])
