"""Running the real command line in-process (click's runner) for CLI tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from oisp_sensor.cli.main import cli

# The store fixtures (sample traffic recorded by the real sinks) serve CLI tests too.
from tests.unit.store.conftest import events, recorded  # noqa: F401

Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    def invoke(*args: Any, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def default_store(request: pytest.FixtureRequest, data_dir: Path) -> Path:
    """The recorded store placed where the sensor keeps it by default."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "events.db"
    request.getfixturevalue("recorded")["db"].rename(target)
    return target
