"""Process, actor, host and app objects recur in every event of a connection; the redactor
scans each distinct clean one once. What every event gets must not change for it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from oisp_sensor.counters import Counters
from oisp_sensor.events import Event
from oisp_sensor.privacy.redact import EventRedactor
from tests.conformance import assert_valid_events
from tests.helpers import HASHER
from tests.unit.privacy import planted as p

CLEAN = {
    "pid": 7,
    "name": "python3",
    "exe": "/usr/bin/python3",
    "cmdline": "python3 agent.py --verbose",
    "cmdline_args": ["python3", "agent.py", "--verbose"],
    "ppid": 1,
    "parent": {"pid": 1, "name": "bash", "cmdline": "bash -c agent"},
    "ancestors": [{"pid": 1, "name": "bash"}],
}
SECRET = {
    **CLEAN,
    "cmdline": f"python3 agent.py --api-key={p.STRIPE_LIVE}",
    "cmdline_args": ["python3", "agent.py", f"--api-key={p.STRIPE_LIVE}"],
}
HOST = {"hostname": "vm", "os": "linux", "container": {"runtime": "docker"}}


def event(process: dict[str, Any], **kw: Any) -> Event:
    return Event(
        event_type="ai.request",
        ts_ns=1_767_225_600_000_000_000,
        data={"request_type": "chat"},
        process=copy.deepcopy(process),
        actor={"uid": 1000, "user": "alice"},
        host=copy.deepcopy(HOST),
        app={"app_id": "python", "name": "python3"},
        **kw,
    )


def test_every_event_of_a_clean_process_gets_its_own_equal_copy() -> None:
    redactor = EventRedactor("safe", HASHER)
    inputs = [event(CLEAN) for _ in range(3)]
    outs = [redactor.redact(e) for e in inputs]
    for out in outs:
        assert out.process == CLEAN and out.host == HOST
        assert out.confidence["redaction_applied"] is False
    first, second = outs[0].process, outs[1].process
    assert first is not None and second is not None
    assert first is not second
    assert first["parent"] is not second["parent"]
    assert first["cmdline_args"] is not second["cmdline_args"]
    assert first["ancestors"][0] is not second["ancestors"][0]
    first["cmdline_args"].append("changed")  # a change to one event reaches no other
    assert outs[2].process == CLEAN and redactor.redact(event(CLEAN)).process == CLEAN
    assert_valid_events([o.to_dict() for o in outs])


@pytest.mark.parametrize("mode", ["safe", "full", "minimal"])
def test_a_secret_in_a_command_line_is_masked_and_counted_in_every_event(mode: str) -> None:
    counters = Counters()
    redactor = EventRedactor(mode, HASHER, counters=counters)
    for _ in range(3):  # a clean process in between must not change anything
        out = redactor.redact(event(SECRET)).to_dict()
        assert p.STRIPE_LIVE not in str(out)
        assert "secret_redacted" in out["confidence"]["reasons"]
        assert out["attrs"]["redaction"]["findings"] == [{"type": "stripe_key", "count": 2}]
        assert redactor.redact(event(CLEAN)).to_dict()["confidence"]["redaction_applied"] is (
            mode == "minimal"
        )
    assert counters.get("redaction.stripe_key") == 6
    assert redactor.clean_meta  # the clean objects were remembered...
    assert not any(p.STRIPE_LIVE.encode() in key for key in redactor.clean_meta)  # ...only they


def test_minimal_trims_the_arguments_of_every_event_of_a_process() -> None:
    redactor = EventRedactor("minimal", HASHER)
    for _ in range(3):
        out = redactor.redact(event(CLEAN)).to_dict()
        assert out["process"]["cmdline"] == "python3"
        assert out["process"]["cmdline_args"] == ["python3"]
        assert out["process"]["parent"]["cmdline"] == "bash"
        assert "content_redacted" in out["confidence"]["reasons"]


def test_objects_json_cannot_round_trip_are_walked_as_before() -> None:
    redactor = EventRedactor("safe", HASHER)
    odd = {**CLEAN, "cmdline_args": ("python3", "agent.py"), "nice": float("nan")}
    for _ in range(2):
        out = redactor.redact(event(odd))
        assert out.process is not None
        assert out.process["cmdline_args"] == ["python3", "agent.py"]  # a list, as walked
    assert redactor.clean_meta and all(b"NaN" not in k for k in redactor.clean_meta)
    assert not any(b'"nice"' in key for key in redactor.clean_meta)


def test_a_huge_command_line_is_not_remembered() -> None:
    redactor = EventRedactor("safe", HASHER)
    huge = {**CLEAN, "cmdline": "java -cp " + ":".join(f"/opt/lib/l{i}.jar" for i in range(2000))}
    for _ in range(2):
        out = redactor.redact(event(huge))
        assert out.process == huge
    assert redactor.clean_meta and max(len(k) for k in redactor.clean_meta) < 16 * 1024
