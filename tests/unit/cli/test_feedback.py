"""Progress shows on a terminal and stays out of pipes and files."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from oisp_sensor.cli.feedback import progress_bar, spinner
from tests.unit.cli.conftest import Run


def test_progress_bar_draws_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress_bar("reading events.jsonl", console=console) as advance:
        for done in range(0, 101, 20):
            advance(done, 100)
    assert "reading events.jsonl" in out.getvalue()


def test_spinner_names_the_current_step() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with spinner("analyzing", console=console) as step:
        step("latency percentiles")
    assert "analyzing" in out.getvalue()


def test_nothing_is_drawn_when_not_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("reading") as advance:
        advance(5, 10)
    with spinner("analyzing") as step:
        step("counting")
    assert capsys.readouterr() == ("", "")


def test_commands_print_no_progress_when_piped(run: Run, recorded: dict[str, Any]) -> None:
    result = run("analyze", recorded["jsonl"])
    assert result.stderr == ""
