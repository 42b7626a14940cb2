"""`oisp-sensor` entry point. Commands live one per module and are listed here."""

from __future__ import annotations

import click

from oisp_sensor import __version__
from oisp_sensor.cli.common import load_config, setup_logging
from oisp_sensor.cli.replay import replay


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="oisp-sensor")
@click.option(
    "--config",
    "config_path",
    envvar="OISP_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (default ~/.config/oisp-sensor/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """See every AI/LLM API call made on this machine, as OISP v0.1 events."""
    setup_logging(-1 if quiet else verbose)
    ctx.obj = {"config": load_config(config_path), "config_path": config_path}


COMMANDS = [replay]
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="oisp-sensor")


if __name__ == "__main__":
    main()
