"""`oisp-sensor replay` on realistic capture files, run as users run it: a subprocess.

The files in tests/fixtures/captures/ are RawCapture JSONL (the bridge format) made
by tests/fixtures/make_captures.py from wire-faithful HTTP bytes. Every event file
written here passes the OISP v0.1 conformance check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import assert_valid_file
from tests.fixtures import make_captures
from tests.helpers import stable
from tests.unit.decode.wire import ANTHROPIC_KEY, OPENAI_KEY

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"


def replay(path: Path, out: Path | None, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "oisp_sensor", "replay", str(path), *extra]
    if out is not None:
        args += ["-o", str(out)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def events_of(name: str, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    out = tmp_path / f"{name}.events.jsonl"
    result = replay(CAPTURES / name, out)
    assert result.returncode == 0, result.stderr
    return assert_valid_file(out), result.stderr


def of(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


def text(response: dict[str, Any]) -> str:
    return str(response["data"]["choices"][0]["message"]["content"])


def test_fixtures_match_their_generator(tmp_path: Path) -> None:
    make_captures.main([str(tmp_path)])
    for name in make_captures.FILES:
        assert (tmp_path / name).read_bytes() == (CAPTURES / name).read_bytes(), (
            f"{name} is stale: run python tests/fixtures/make_captures.py"
        )


def test_openai_streaming_tool_calls_and_results(tmp_path: Path) -> None:
    events, stderr = events_of("openai_stream_tools.jsonl", tmp_path)
    assert "decode errors=0" in stderr and "bad lines=0" in stderr
    assert [e["event_type"] for e in events] == [
        "network.connect",
        "ai.request",
        "ai.response",
        "agent.tool_call",
        "agent.tool_call",
        "network.connect",
        "ai.request",
        "agent.tool_result",
        "agent.tool_result",
        "ai.response",
    ]
    first, second = of(events, "ai.response")
    assert first["data"]["finish_reason"] == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in first["data"]["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert first["data"]["usage"]["total_tokens"] == 128
    assert first["data"]["time_to_first_token_ms"] >= 0
    calls = of(events, "agent.tool_call")
    results = of(events, "agent.tool_result")
    assert [r["data"]["call_id"] for r in results] == [c["data"]["call_id"] for c in calls]
    assert results[0]["related_events"][0] == {
        "event_id": calls[0]["event_id"],
        "relationship": "parent",
    }
    assert all(r["data"]["duration_ms"] > 0 for r in results)
    assert text(second) == "It's 18°C and sunny in Paris, and 22°C and clear in Rome."
    assert second["data"]["usage"]["cached_tokens"] == 64
    requests = of(events, "ai.request")
    assert requests[0]["data"]["conversation_id"] == requests[1]["data"]["conversation_id"]
    assert {r["data"]["request_id"] for r in requests} == {
        r["data"]["request_id"] for r in of(events, "ai.response")
    }


def test_anthropic_streaming_thinking_and_tool_use(tmp_path: Path) -> None:
    events, _ = events_of("anthropic_stream_thinking_tools.jsonl", tmp_path)
    first, second = of(events, "ai.response")
    msg = first["data"]["choices"][0]["message"]
    assert (
        msg["thinking"]
        == "The user wants to know about rain in London. I should check the weather."
    )
    assert msg["content"] == "Let me check the weather in London."
    assert first["data"]["tool_calls"][0]["name"] == "get_weather"
    assert json.loads(first["data"]["tool_calls"][0]["arguments"]) == {"city": "London"}
    assert first["data"]["finish_reason"] == "tool_calls"
    assert first["data"]["usage"]["completion_tokens"] == 96
    result = of(events, "agent.tool_result")[0]["data"]
    assert result["call_id"] == "toolu_01D7FLrfh4GYq7yT1ULmeyUj"
    assert result["result"] == "Light rain, 12°C, 90% chance of showers"
    assert text(second) == "Yes — light rain is expected (90%). Take an umbrella."
    assert second["data"]["usage"]["cached_tokens"] == 512
    assert second["data"]["usage"]["prompt_tokens"] == 572


def test_error_responses(tmp_path: Path) -> None:
    events, _ = events_of("errors.jsonl", tmp_path)
    responses = sorted(of(events, "ai.response"), key=lambda e: e["ts"])
    got = [
        (
            r["data"]["status_code"],
            r["data"]["success"],
            r["data"]["error"].get("type"),
            r["data"]["error"].get("code"),
        )
        for r in responses
    ]
    assert got == [
        (429, False, "tokens", "rate_limit_exceeded"),
        (500, False, "api_error", None),
        (529, False, "overloaded_error", None),
        (500, False, "server_error", None),
    ]
    assert responses[0]["data"]["error"]["message"].startswith("Rate limit reached for gpt-4o")
    assert responses[0]["attrs"]["http"]["response_headers"]["retry-after"] == "2"


def test_gzip_response(tmp_path: Path) -> None:
    events, _ = events_of("gzip.jsonl", tmp_path)
    response = of(events, "ai.response")[0]
    assert text(response).startswith("Bytes fold into bytes,")
    assert response["attrs"]["http"]["response_headers"]["content-encoding"] == "gzip"
    assert response["confidence"]["completeness"] == "full"


def test_chunked_non_streaming_response(tmp_path: Path) -> None:
    events, _ = events_of("chunked.jsonl", tmp_path)
    request, response = of(events, "ai.request")[0], of(events, "ai.response")[0]
    assert text(response) == "2, 3 and 5."
    assert response["data"]["model"]["id"] == "claude-opus-4-1-20250805"
    system = request["data"]["messages"][0]
    assert (system["role"], system["content"], system["content_length"]) == (
        "system",
        "Be concise.",
        11,
    )
    assert response["confidence"]["completeness"] == "full"


def test_keep_alive_three_calls_on_one_connection(tmp_path: Path) -> None:
    events, _ = events_of("keepalive.jsonl", tmp_path)
    responses = of(events, "ai.response")
    assert [text(r) for r in responses] == ["4", "12", "twelve"]
    assert [r["attrs"]["http"]["stream_format"] for r in responses] == ["json", "sse", "json"]
    requests = of(events, "ai.request")
    assert [r["data"]["request_id"] for r in requests] == [
        r["data"]["request_id"] for r in responses
    ]
    assert len({r["data"]["conversation_id"] for r in requests}) == 1


def test_garbage_is_counted_not_fatal_and_valid_connections_still_decode(tmp_path: Path) -> None:
    events, stderr = events_of("garbage.jsonl", tmp_path)
    assert "bad lines=11" in stderr
    assert "decode errors=4" in stderr
    assert "garbage.jsonl:2: skipped: not JSON" in stderr
    assert "bad base64 in data" in stderr
    assert "Traceback" not in stderr
    responses = {r["data"].get("provider_request_id"): r for r in of(events, "ai.response")}
    good, fine = responses["chatcmpl-Good"], responses["msg_fine"]
    assert text(good) == "One, two, three, four, five."
    assert text(fine) == "OK."
    assert good["confidence"]["completeness"] == fine["confidence"]["completeness"] == "full"
    cut = responses["chatcmpl-Cut"]
    assert text(cut) == "Once upon"
    assert cut["confidence"]["completeness"] == "partial"
    assert "stream ended inside a message" in cut["attrs"]["decode_error"]
    bad_sse = responses["chatcmpl-Bad"]
    assert text(bad_sse).startswith("Hel")
    assert any("invalid JSON in SSE" in r for r in bad_sse["confidence"]["limitations"])
    broken = [r for r in of(events, "ai.response") if "decode_error" in r.get("attrs", {})]
    assert len(broken) == 3  # conflicting lengths, server noise, the cut stream


def test_replay_to_stdout_gives_the_same_events(tmp_path: Path) -> None:
    path = CAPTURES / "keepalive.jsonl"
    result = replay(path, None)
    assert result.returncode == 0, result.stderr
    to_stdout = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    out = tmp_path / "events.jsonl"
    assert replay(path, out).returncode == 0
    assert stable(to_stdout) == stable(assert_valid_file(out))


def test_replay_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        assert replay(CAPTURES / "anthropic_stream_thinking_tools.jsonl", out).returncode == 0
    assert stable(assert_valid_file(a)) == stable(assert_valid_file(b))


@pytest.mark.parametrize("name", sorted(make_captures.FILES))
def test_no_api_key_reaches_the_event_file(name: str, tmp_path: Path) -> None:
    events, _ = events_of(name, tmp_path)
    dump = json.dumps(events)
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        for i in range(8, len(key) - 12, 6):
            assert key[i : i + 12] not in dump


def test_replay_writes_every_event_of_a_file_larger_than_a_sink_queue(tmp_path: Path) -> None:
    # 1500 processes x (connect + 3 requests + 3 responses) = 10 500 events: more than a
    # sink's queue holds (10 000), so replay must let the sink drain as it goes.
    rec = make_captures.Recorder()
    for i in range(1500):
        rec.pid = 10_000 + i
        make_captures.keepalive(rec)
    big = tmp_path / "big.jsonl"
    rec.write(big)
    out = tmp_path / "big.events.jsonl"
    result = replay(big, out)
    assert result.returncode == 0, result.stderr
    assert "total=10500" in result.stderr
    assert len(assert_valid_file(out)) == 10_500


def test_file_without_a_single_valid_line_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"nope\n[]\n{}\n")
    result = replay(bad, tmp_path / "out.jsonl")
    assert result.returncode == 1
    assert "no valid capture lines in the file" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = replay(tmp_path / "missing.jsonl", None)
    assert result.returncode == 2
    assert "does not exist" in result.stderr
