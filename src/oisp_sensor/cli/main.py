"""`oisp-sensor` entry point. Commands live one per module and are listed here.

Each command's module is imported only when that command runs: `oisp-sensor show`
should not pay for the relay, the dashboard and the price tables.
"""

from __future__ import annotations

import importlib

import click

from oisp_sensor import __version__
from oisp_sensor.cli.common import load_config, setup_logging

# name -> "module:attribute", in the order `--help` lists them.
COMMANDS = {
    "record": "oisp_sensor.cli.record:record",
    "run": "oisp_sensor.cli.record:run",
    "demo": "oisp_sensor.cli.demo:demo",
    "show": "oisp_sensor.cli.show:show",
    "analyze": "oisp_sensor.cli.analyze:analyze",
    "status": "oisp_sensor.cli.status:status",
    "ca": "oisp_sensor.cli.ca:ca",
    "config": "oisp_sensor.cli.config_cmd:config_group",
    "purge": "oisp_sensor.cli.purge:purge",
    "replay": "oisp_sensor.cli.replay:replay",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main() -> None:
    cli(prog_name="oisp-sensor")


if __name__ == "__main__":
    main()
