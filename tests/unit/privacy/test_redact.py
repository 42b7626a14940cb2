"""The event redactor: what each mode keeps, masks and removes, on real decoded events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oisp_sensor.config import Config, RedactionConfig, RedactionPattern
from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.privacy import detectors
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.privacy.redact import EventRedactor, RedactionMode, build_redactor
from oisp_sensor.sensor import build_pipeline
from tests.conformance import assert_valid_events
from tests.helpers import HASHER, captures, decode, http_request, http_response
from tests.unit.privacy import planted as p
from tests.unit.privacy import traffic


def redact_all(
    mode: str, events: list[dict[str, Any]] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    redactor = EventRedactor(mode, HASHER, **kw)
    out = [redactor.redact(e).to_dict() for e in traffic.fresh(events or traffic.all_events())]
    assert_valid_events(out)
    return out


def dump(events: list[dict[str, Any]]) -> str:
    return json.dumps(events, ensure_ascii=False)


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


# --- what survives, per mode -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["safe", "full", "minimal"])
def test_no_secret_survives_in_any_mode(mode: str) -> None:
    text = dump(redact_all(mode))
    for value in traffic.SECRET_VALUES:
        assert value not in text, (mode, value)


@pytest.mark.parametrize("mode", ["safe", "minimal"])
def test_no_personal_data_survives_in_safe_and_minimal(mode: str) -> None:
    # Process metadata (the command line the user typed) is scanned for secrets only.
    events = [{k: v for k, v in e.items() if k != "process"} for e in redact_all(mode)]
    text = dump(events)
    for value in traffic.PII_VALUES:
        assert value not in text, (mode, value)


def test_full_mode_keeps_personal_data_and_content() -> None:
    events = redact_all("full")
    request = of_type(events, "ai.request")[0]
    assert p.EMAIL in request["data"]["messages"][0]["content"]
    user = request["data"]["messages"][1]["content"]
    assert p.CARD_VISA in user and p.SSN in user
    assert p.OPENAI_LEGACY_KEY not in user and "[OPENAI_KEY:" in user


def test_minimal_mode_keeps_no_content_at_all() -> None:
    text = dump(redact_all("minimal"))
    for content in traffic.CONTENT_VALUES:
        assert content not in text
    for fragment in ("support bot", "charged twice", "refunded", "must not repeat", "owls"):
        assert fragment not in text


def test_safe_mode_keeps_content_with_typed_placeholders() -> None:
    request = of_type(redact_all("safe"), "ai.request")[0]
    user = request["data"]["messages"][1]["content"]
    assert user.startswith("My card [CREDIT_CARD:")
    for label in ("IBAN", "US_SSN", "OPENAI_KEY", "URL_PASSWORD"):
        assert f"[{label}:" in user
    assert "postgres://admin:[URL_PASSWORD:" in user


# --- placeholders and hashes -----------------------------------------------------------


def test_equal_values_get_equal_placeholders_across_events() -> None:
    text = dump(redact_all("safe"))
    placeholder = f"[EMAIL:{HASHER.digest(p.EMAIL.lower())[:8]}]"
    # system prompt (twice), tool description, arguments (x3 shapes), tool result, referer
    assert text.count(placeholder) >= 6


def test_an_api_key_pasted_into_a_prompt_matches_the_auth_key_hash() -> None:
    events = redact_all("safe", traffic.openai_tool_round_trip())
    request = of_type(events, "ai.request")[0]
    key_hash = request["data"]["auth"]["key_hash"]
    assert key_hash == HASHER(p.OPENAI_PROJECT_KEY)
    assert f"[OPENAI_KEY:{HASHER.digest(p.OPENAI_PROJECT_KEY)[:8]}]" == (
        f"[OPENAI_KEY:{key_hash.removeprefix('hmac-sha256:')[:8]}]"
    )


def test_placeholders_depend_on_the_machine_key() -> None:
    other = KeyedHasher(b"another-machine-another-key-0001")
    a = EventRedactor("safe", HASHER).redact(traffic.fresh(traffic.anthropic_with_thinking())[0])
    b = EventRedactor("safe", other).redact(traffic.fresh(traffic.anthropic_with_thinking())[0])
    text_a, text_b = dump([a.to_dict()]), dump([b.to_dict()])
    assert f"[EMAIL:{HASHER.digest(p.EMAIL.lower())[:8]}]" in text_a
    assert f"[EMAIL:{other.digest(p.EMAIL.lower())[:8]}]" in text_b
    assert HASHER.digest(p.EMAIL.lower())[:8] not in text_b


def test_content_hashes_are_of_the_original_content_in_every_mode() -> None:
    hashes = {}
    for mode in ("safe", "full", "minimal"):
        request = of_type(redact_all(mode), "ai.request")[0]
        hashes[mode] = [m["content_hash"] for m in request["data"]["messages"]]
    assert hashes["safe"] == hashes["full"] == hashes["minimal"]
    assert hashes["safe"] == [HASHER(traffic.SYSTEM), HASHER(traffic.USER)]


# --- minimal mode in detail ------------------------------------------------------------


def test_minimal_messages_are_role_length_hash_and_the_spec_marker() -> None:
    request = of_type(redact_all("minimal"), "ai.request")[0]
    data = request["data"]
    assert data["messages_count"] == 2
    system, user = data["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content_length"] == len(traffic.USER)
    assert user["content"] == {
        "$redacted": {
            "reason": "policy",
            "original_length": len(traffic.USER),
            "hash": HASHER(traffic.USER),
            "redaction_profile": "minimal",
        }
    }
    assert data["system_prompt_hash"] == HASHER(traffic.SYSTEM)
    assert data["tools"] == [{"type": "function", "name": "lookup_customer"}]
    assert request["confidence"]["completeness"] == "redacted"
    assert request["confidence"]["redaction_applied"] is True
    assert "content_redacted" in request["confidence"]["reasons"]


def test_minimal_tool_calls_keep_hash_and_size_only() -> None:
    events = redact_all("minimal")
    response = of_type(events, "ai.response")[0]
    (call,) = response["data"]["tool_calls"]
    arguments = json.dumps(traffic.ARGUMENTS)
    assert "arguments" not in call
    assert call["arguments_hash"] == HASHER(arguments)
    assert call["arguments_length"] == len(arguments)
    tool_call = of_type(events, "agent.tool_call")[0]
    assert "arguments" not in tool_call["data"]
    assert tool_call["data"]["arguments_hash"] == HASHER(arguments)
    result = of_type(events, "agent.tool_result")[0]["data"]
    assert "result" not in result
    assert result["result_hash"] == HASHER(traffic.TOOL_RESULT)
    assert result["result_size_bytes"] == len(traffic.TOOL_RESULT.encode())


def test_minimal_removes_response_text_and_thinking() -> None:
    events = redact_all("minimal", traffic.anthropic_with_thinking())
    message = of_type(events, "ai.response")[0]["data"]["choices"][0]["message"]
    assert message["content"]["$redacted"]["hash"] == HASHER(traffic.ANSWER)
    assert message["thinking"]["$redacted"]["original_length"] == len(traffic.THINKING)
    assert message["content_length"] == len(traffic.ANSWER)


def test_minimal_streaming_chunks_keep_length_and_hash() -> None:
    chunks = of_type(redact_all("minimal"), "ai.streaming_chunk")
    assert [c["data"]["delta"]["content_length"] for c in chunks] == [20, len(traffic.ANSWER) - 20]
    assert all("content" not in c["data"]["delta"] for c in chunks)


def test_minimal_keeps_metadata_needed_for_costs_and_timing() -> None:
    response = of_type(redact_all("minimal"), "ai.response")[0]["data"]
    assert response["usage"]["total_tokens"] == 150
    assert response["model"]["id"] == "gpt-4o"
    assert response["tool_calls_count"] == 1
    assert "latency_ms" in response


def test_a_partial_event_stays_partial_and_says_content_was_redacted() -> None:
    request = http_request("/v1/chat/completions", {"model": "gpt-4o", "messages": []})
    events = decode(captures([(request[:-5], b"")], close=True))
    out = redact_all("minimal", events)
    partial = [e for e in out if e["confidence"]["completeness"] == "partial"]
    assert partial


# --- every field that can carry user content -------------------------------------------


def test_process_command_lines_lose_secrets_but_keep_everything_else() -> None:
    for mode in ("safe", "full"):
        request = of_type(redact_all(mode), "ai.request")[0]
        cmdline = request["process"]["cmdline"]
        assert p.STRIPE_LIVE not in cmdline
        assert cmdline.startswith("python3 agent.py --api-key=[STRIPE_KEY:")
        assert p.EMAIL in cmdline  # secrets only: paths and names are attribution, not content
    minimal = of_type(redact_all("minimal"), "ai.request")[0]["process"]
    assert minimal["cmdline"] == "python3"  # minimal: the program, not its arguments


def test_web_context_is_scanned() -> None:
    request = of_type(redact_all("safe"), "ai.request")[0]
    assert p.EMAIL not in request["web_context"]["referer"]
    assert "[EMAIL:" in request["web_context"]["referer"]


def test_minimal_keeps_only_the_origin_of_the_referring_page() -> None:
    request = of_type(redact_all("minimal"), "ai.request")[0]
    assert request["web_context"]["referer"] == "https://app.example.com/"


def test_provider_error_messages_lose_the_key() -> None:
    response = of_type(redact_all("full", traffic.failed_call()), "ai.response")[0]
    assert "[GOOGLE_API_KEY:" in response["data"]["error"]["message"]


def test_attrs_are_scanned_defensively() -> None:
    event = traffic.fresh(traffic.failed_call())[0]
    event.attrs["decode_error"] = f"malformed header line b'authorization: Bearer {p.JWT}'"
    event.attrs["nested"] = {"list": [f"mail {p.EMAIL}"]}
    out = EventRedactor("safe", HASHER).redact(event).to_dict()
    assert p.JWT not in dump([out]) and p.EMAIL not in dump([out])


def test_tool_argument_keys_are_scanned_too() -> None:
    event = traffic.fresh(traffic.openai_tool_round_trip())[2]
    assert event.event_type == "agent.tool_call"
    event.data["arguments"] = {p.EMAIL: {"nested": [p.GITHUB_TOKEN]}}
    data = EventRedactor("safe", HASHER).redact(event).data
    assert p.EMAIL not in dump([data]) and p.GITHUB_TOKEN not in dump([data])
    assert list(data["arguments"])[0].startswith("[EMAIL:")


# --- what was done is said, never what was found ---------------------------------------


def test_findings_are_counted_by_type_without_values() -> None:
    counters = Counters()
    events = redact_all("safe", counters=counters)
    request = of_type(events, "ai.request")[0]
    findings = {f["type"]: f["count"] for f in request["attrs"]["redaction"]["findings"]}
    assert findings["email"] >= 3 and findings["credit_card"] == 1 and findings["openai_key"] == 1
    assert {"secret_redacted", "pii_redacted"} <= set(request["confidence"]["reasons"])
    assert request["confidence"]["redaction_profile"] == "safe"
    assert counters.get("redaction.email") >= 3
    assert counters.get("redaction.openai_key") >= 1


def test_an_event_with_nothing_to_mask_says_so() -> None:
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me a joke about owls"}]},
    )
    response = http_response(
        {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hoot."}}]}
    )
    out = redact_all("safe", decode(captures([(request, response)])))
    for event in out:
        assert event["confidence"]["redaction_applied"] is False
        assert event["confidence"]["redaction_profile"] == "safe"
        assert "redaction" not in event.get("attrs", {})
    assert out[0]["data"]["messages"][0]["content"] == "Tell me a joke about owls"


def test_network_connect_events_pass_through() -> None:
    decoded = decode([traffic.connect_event()])
    out = redact_all("minimal", decoded)
    assert out[0]["event_type"] == "network.connect"
    assert out[0]["confidence"]["completeness"] == "metadata_only"


# --- robustness ------------------------------------------------------------------------


def test_a_failing_redaction_reduces_the_event_to_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: detectors.Scanner, text: str, placeholder: Any) -> Any:
        raise RuntimeError(f"bug while scanning {text}")

    monkeypatch.setattr(detectors.Scanner, "redact", broken)
    counters = Counters()
    out = redact_all("safe", counters=counters)
    text = dump(out)
    for value in traffic.SECRET_VALUES + traffic.PII_VALUES + traffic.CONTENT_VALUES:
        assert value not in text
    assert counters.get("redaction.errors") == len(out)
    request = of_type(out, "ai.request")[0]
    assert request["confidence"]["reasons"] == ["redaction_failed"]
    assert request["data"]["model"]["id"] == "gpt-4o"


def test_custom_patterns_from_the_config_apply_in_every_mode() -> None:
    event = traffic.fresh(traffic.anthropic_with_thinking())[0]
    event.data["messages"][0]["content"] = "Ticket INC-0042917 about Project Falcon"
    for mode in ("safe", "full", "minimal"):
        redactor = build_redactor(
            mode,
            HASHER,
            [
                RedactionPattern("ticket", r"INC-\d{7}"),
                RedactionPattern("codename", r"Project \w+"),
            ],
        )
        out = redactor.redact(traffic.fresh([event.to_dict()])[0]).to_dict()
        assert "INC-0042917" not in dump([out]) and "Falcon" not in dump([out])
        if mode != "minimal":
            assert out["data"]["messages"][0]["content"].startswith("Ticket [TICKET:")


def test_short_values_matching_a_custom_pattern_are_masked_too() -> None:
    event = traffic.fresh(traffic.anthropic_with_thinking())[0]
    event.data["messages"][0]["content"] = "X42"
    redactor = build_redactor("full", HASHER, [RedactionPattern("code", r"X\d\d")])
    out = redactor.redact(event).to_dict()
    assert out["data"]["messages"][0]["content"].startswith("[CODE:")


def test_unknown_modes_are_refused() -> None:
    with pytest.raises(ValueError):
        EventRedactor("paranoid", HASHER)


def test_build_pipeline_installs_the_configured_redactor() -> None:
    config = Config(
        redaction=RedactionConfig(mode="minimal", patterns=(RedactionPattern("x", "y+"),))
    )
    pipeline = build_pipeline(config, hasher=HASHER)
    assert isinstance(pipeline.redactor, EventRedactor)
    assert pipeline.redactor.mode is RedactionMode.MINIMAL
    assert pipeline.redactor.content_scanner.custom[0].label == "X"
    override = build_pipeline(config, hasher=HASHER, redaction="full")
    assert isinstance(override.redactor, EventRedactor)
    assert override.redactor.mode is RedactionMode.FULL


def test_the_pipeline_redacts_before_any_sink_sees_an_event() -> None:
    pipeline = build_pipeline(Config(), hasher=HASHER)
    seen: list[Event] = []
    pipeline.add_listener(seen.append)
    raws = captures(
        [
            (
                http_request(
                    "/v1/chat/completions",
                    {"model": "gpt-4o", "messages": [{"role": "user", "content": traffic.USER}]},
                    headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
                ),
                http_response({"id": "x", "choices": []}),
            )
        ]
    )
    for raw in raws:
        pipeline.publish(pipeline.process(raw))
    assert seen
    text = dump([e.to_dict() for e in seen])
    for value in (p.OPENAI_PROJECT_KEY, p.OPENAI_LEGACY_KEY, p.CARD_VISA, p.SSN):
        assert value not in text


def test_minimal_keeps_the_program_but_not_its_arguments() -> None:
    """A CLI agent's argv can be the prompt; minimal keeps only which program ran."""
    prompt = "summarise the merger memo for Alice"

    def event() -> Event:
        return Event(
            event_type="ai.request",
            ts_ns=1_767_225_600_000_000_000,
            data={"request_type": "chat"},
            process={
                "pid": 7,
                "name": "claude",
                "cmdline": f"/usr/bin/claude -p {prompt}",
                "cmdline_args": ["/usr/bin/claude", "-p", prompt],
                "parent": {"pid": 1, "name": "bash", "cmdline": f"bash -c claude -p {prompt}"},
            },
        )

    out = EventRedactor("minimal", HASHER).redact(event()).to_dict()
    assert_valid_events([out])
    assert prompt not in dump([out])
    assert out["process"]["cmdline"] == "/usr/bin/claude"
    assert out["process"]["cmdline_args"] == ["/usr/bin/claude"]
    assert out["process"]["parent"]["cmdline"] == "bash"
    assert out["process"]["name"] == "claude"
    kept = EventRedactor("safe", HASHER).redact(event()).process
    assert kept is not None and prompt in kept["cmdline"]
