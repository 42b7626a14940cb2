"""`oisp-sensor analyze`: a JSONL file and the store give the same reports, in every format."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from oisp_sensor.store.reports import REPORT_NAMES
from tests.unit.cli.conftest import Run


@pytest.mark.parametrize("report", REPORT_NAMES)
@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
def test_jsonl_and_store_give_the_same_report(
    run: Run, recorded: dict[str, Any], report: str, fmt: str
) -> None:
    from_file = run("analyze", recorded["jsonl"], "--report", report, "--format", fmt)
    from_store = run("analyze", "--db", recorded["db"], "--report", report, "--format", fmt)
    assert from_file.exit_code == from_store.exit_code == 0, from_file.output + from_store.output
    assert from_file.stdout == from_store.stdout
    assert from_file.stdout.strip()


def test_json_report_carries_raw_values(run: Run, recorded: dict[str, Any]) -> None:
    out = json.loads(run("analyze", recorded["jsonl"], "-r", "costs", "-f", "json").stdout)
    assert out["report"] == "costs" and out["total_rows"] == len(out["rows"])
    responses = [e for e in recorded["events"] if e["event_type"] == "ai.response"]
    known = [
        e["data"]["usage"]["total_cost_usd"]
        for e in responses
        if "total_cost_usd" in e["data"].get("usage", {})
    ]
    assert out["totals"]["cost_usd"] == pytest.approx(sum(known))
    assert any(n.endswith("not counted as $0") for n in out["notes"])
    summary = json.loads(run("analyze", recorded["jsonl"], "-f", "json").stdout)
    first = next(r for r in summary["rows"] if r["metric"] == "first_event")
    assert first["value"] == recorded["events"][0]["ts"]


def test_csv_report_is_a_table(run: Run, recorded: dict[str, Any]) -> None:
    out = run("analyze", "--db", recorded["db"], "-r", "tools", "-f", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {
            "tool": "get_weather",
            "calls": "1",
            "results": "1",
            "failures": "0",
            "failure_rate": "0",
            "unanswered": "0",
            "rt_mean_ms": rows[0]["rt_mean_ms"],
            "rt_p50_ms": rows[0]["rt_p50_ms"],
            "rt_p95_ms": rows[0]["rt_p95_ms"],
        }
    ]
    result = next(e for e in recorded["events"] if e["event_type"] == "agent.tool_result")
    assert float(rows[0]["rt_p50_ms"]) == result["data"]["duration_ms"]
    costs = run("analyze", "--db", recorded["db"], "-r", "costs", "-f", "csv").stdout
    assert "e-0" not in costs  # no scientific notation for spreadsheets


def test_text_report_for_people(run: Run, recorded: dict[str, Any]) -> None:
    out = run("analyze", recorded["jsonl"], "-r", "models").stdout
    assert "Models" in out and "claude-sonnet-4-5-20250929" in out and "$0.000291" in out
    assert "\x1b[" not in out  # piped: no colour
    summary = run("analyze", recorded["jsonl"]).stdout
    assert "Failed responses" in summary and "20.0%" in summary


def test_analyze_filters(run: Run, recorded: dict[str, Any]) -> None:
    out = json.loads(
        run(
            "analyze", recorded["jsonl"], "-r", "processes", "-f", "json", "--provider", "anthropic"
        ).stdout
    )
    assert [r["process"] for r in out["rows"]] == ["node"]


def test_analyze_bad_input(run: Run, recorded: dict[str, Any]) -> None:
    result = run("analyze", recorded["jsonl"], "-r", "nonsense")
    assert result.exit_code == 2 and "summary" in result.stderr
    result = run("analyze", recorded["jsonl"], "--db", recorded["db"])
    assert result.exit_code == 1 and "either FILE or --db" in result.stderr
    result = run("--config", recorded["jsonl"].with_name("none.toml"), "analyze")
    assert result.exit_code == 2
