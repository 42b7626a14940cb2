"""`oisp-sensor demo`, run as a new user would: one command, then `show` and `analyze`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conformance import assert_valid_events

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oisp_sensor", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),  # the isolated OISP_DATA_DIR / OISP_CONFIG_DIR of this test
        timeout=timeout,
    )


def test_demo_once_then_show_and_analyze() -> None:
    demo = _cli("demo", "--once", "--port", "0")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "DEMO PROVIDER" in out and "no API key" in out
    assert "9 AI calls captured" in out
    assert "oisp-sensor show" in out and "purge --process 'demo-*'" in out

    shown = _cli("show", "--json", "--limit", "0")
    assert shown.returncode == 0, shown.stderr
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert_valid_events(events)
    assert all(e["attrs"].get("demo") is True for e in events)
    responses = [e for e in events if e["event_type"] == "ai.response"]
    assert {e["data"]["provider"]["name"] for e in responses} == {"openai", "anthropic", "google"}
    assert any(e["data"].get("time_to_first_token_ms") is not None for e in responses)  # streamed
    assert any(e["data"].get("status_code") == 429 and not e["data"]["success"] for e in responses)
    kinds = {e["event_type"] for e in events}
    assert {"agent.tool_call", "agent.tool_result"} <= kinds
    names = {e["process"]["name"] for e in events if e.get("process")}
    assert names == {"demo-chatbot", "demo-agent", "demo-writer"}  # separate, attributed apps
    # No key the demo apps sent is stored, only its prefix and keyed hash.
    assert "not-a-real-key" not in shown.stdout and "NotARealKey" not in shown.stdout

    tools = json.loads(_cli("analyze", "--report", "tools", "--format", "json").stdout)
    assert {r["tool"] for r in tools["rows"]} == {"get_weather", "search_docs"}
    assert all(r["calls"] == r["results"] == 1 for r in tools["rows"])

    purge = _cli("purge", "--process", "demo-*", "--yes")
    assert purge.returncode == 0, purge.stderr
    assert _cli("show", "--json").stdout == ""
