"""What every command shares: logging setup, config loading, error reporting, the loop."""

from __future__ import annotations

import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from oisp_sensor import config as config_mod
from oisp_sensor.errors import ConfigError
from oisp_sensor.privacy.logfilter import install_log_redaction


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # The sensor's own INFO lines (where it listens, trust hints) are useful by default.
    logging.getLogger("oisp_sensor").setLevel(min(level, logging.INFO) if verbose >= 0 else level)
    install_log_redaction()  # no handler may print a secret, whoever logged it


def fail(message: str, status: int = 1) -> NoReturn:
    click.echo(f"oisp-sensor: {message}", err=True)
    sys.exit(status)


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop where it is installed (the relay is measurably faster on it)."""
    import asyncio  # here: the commands that need no loop do not pay for importing it

    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        return runner.run(coro)


def load_config(path: str | None) -> config_mod.Config:
    """Load config or exit with status 2 and one clear message naming the key."""
    try:
        return config_mod.load(Path(path) if path else None)
    except ConfigError as e:
        fail(f"invalid configuration: {e}", status=2)
