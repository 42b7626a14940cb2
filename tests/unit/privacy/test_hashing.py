"""Keyed hashing: one local secret (0600, made on first run) behind every hash the sensor emits."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from oisp_sensor.config import Config
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.sensor import build_pipeline
from tests.conformance import assert_valid_events
from tests.helpers import captures, http_request, http_response
from tests.unit.privacy import planted as p
from tests.unit.privacy import traffic


def test_the_secret_is_created_on_first_use_readable_by_the_owner_only(data_dir: Path) -> None:
    key_file = data_dir / "hash.key"
    assert not key_file.exists()
    old_umask = os.umask(0)  # even a permissive umask must not widen it
    try:
        KeyedHasher.from_file()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert len(key_file.read_bytes()) == 32


def test_hashes_are_stable_on_one_machine(data_dir: Path) -> None:
    first = KeyedHasher.from_file()("sk-some-key")
    again = KeyedHasher.from_file()("sk-some-key")
    assert first == again
    assert first.startswith("hmac-sha256:") and len(first) == len("hmac-sha256:") + 32


def test_hashes_mean_nothing_on_another_machine(tmp_path: Path) -> None:
    one = KeyedHasher.from_file(tmp_path / "a" / "hash.key")
    other = KeyedHasher.from_file(tmp_path / "b" / "hash.key")
    assert one("same value") != other("same value")
    # And nothing that needs no key reproduces them: not a plain SHA-256 of the value.
    assert one.digest("same value") != hashlib.sha256(b"same value").hexdigest()[:32]


def test_the_hash_is_hmac_sha256_truncated_to_128_bits() -> None:
    key = b"k" * 32
    expected = hmac.new(key, "naïve".encode(), hashlib.sha256).hexdigest()[:32]
    assert KeyedHasher(key).digest("naïve") == expected
    assert (
        KeyedHasher(key).digest(b"bytes too")
        == hmac.new(key, b"bytes too", "sha256").hexdigest()[:32]
    )


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        KeyedHasher(b"short")


def _decode_and_redact(mode: str) -> list[dict[str, Any]]:
    """Through build_pipeline with no hasher given: the machine's secret is used."""
    pipeline = build_pipeline(Config(), redaction=mode)
    events = []
    request = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": traffic.SYSTEM},
                {"role": "user", "content": traffic.USER},
            ],
        },
        headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
    )
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    response = http_response(
        {
            "id": "r1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                }
            ],
        }
    )
    follow_up = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": traffic.USER},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": traffic.TOOL_RESULT},
            ],
        },
        headers={"Authorization": f"Bearer {p.OPENAI_PROJECT_KEY}"},
    )
    for raw in captures([(request, response), (follow_up, http_response({"id": "r2"}))]):
        events += pipeline.process(raw)
    events += pipeline.finish(pipeline.decoder.close_all())
    out = [e.to_dict() for e in events]
    assert_valid_events(out)
    return out


@pytest.mark.parametrize("mode", ["safe", "minimal"])
def test_every_hash_the_sensor_emits_uses_the_machine_secret(mode: str, data_dir: Path) -> None:
    events = _decode_and_redact(mode)
    machine = KeyedHasher.from_file(data_dir / "hash.key")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_type.setdefault(e["event_type"], []).append(e["data"])
    request = by_type["ai.request"][0]
    assert request["auth"]["key_hash"] == machine(p.OPENAI_PROJECT_KEY)
    assert request["system_prompt_hash"] == machine(traffic.SYSTEM)
    assert [m["content_hash"] for m in request["messages"]] == [
        machine(traffic.SYSTEM),
        machine(traffic.USER),
    ]
    assert by_type["ai.response"][0]["tool_calls"][0]["arguments_hash"] == machine('{"a": 1}')
    assert by_type["agent.tool_call"][0]["arguments_hash"] == machine('{"a": 1}')
    assert by_type["agent.tool_result"][0]["result_hash"] == machine(traffic.TOOL_RESULT)
    text = json.dumps(events)
    if mode == "safe":
        assert f"[OPENAI_KEY:{machine.digest(p.OPENAI_LEGACY_KEY)[:8]}]" in text
    else:
        marker = by_type["ai.request"][0]["messages"][1]["content"]["$redacted"]
        assert marker["hash"] == machine(traffic.USER)
    # Nothing was hashed with any other key.
    stranger = KeyedHasher(b"not-this-machine-secret-00000000")
    assert stranger(p.OPENAI_PROJECT_KEY) not in text
    assert stranger(traffic.USER) not in text


def test_decoder_and_redactor_share_one_hasher() -> None:
    pipeline = build_pipeline(Config())
    assert pipeline.redactor is not None
    assert pipeline.decoder.hasher is pipeline.redactor.hasher  # type: ignore[attr-defined]
