"""What every command shares: logging setup, config loading, error reporting."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn

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


def load_config(path: str | None) -> config_mod.Config:
    """Load config or exit with status 2 and one clear message naming the key."""
    try:
        return config_mod.load(Path(path) if path else None)
    except ConfigError as e:
        fail(f"invalid configuration: {e}", status=2)
