"""`oisp-sensor replay RAW.jsonl`: RawCapture lines (the bridge format) -> events.

A capture file is a reproducible bug report: the same bytes always decode to the
same events, whichever source recorded them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from oisp_sensor.cli.common import fail, run_async
from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.errors import DecodeError
from oisp_sensor.events import Event, RawCapture
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.sinks.jsonl import JsonlSink, encode

log = logging.getLogger(__name__)


async def replay_file(path: Path, pipeline: Pipeline) -> int:
    """Feed every valid line to the pipeline; bad lines are logged, counted and skipped.

    Sinks drain between lines (`wait_for_sinks`): a file may hold far more events than
    a sink queue, and replay must write every one of them.
    """
    bad = 0
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = RawCapture.from_json_line(line)
            except DecodeError as e:
                bad += 1
                pipeline.counters.inc("replay.bad_lines")
                log.warning("%s:%d: skipped: %s", path, lineno, e)
                continue
            pipeline.publish(pipeline.process(raw))
            await pipeline.wait_for_sinks()
    return bad


@click.command()
@click.argument("raw_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write events here (JSON Lines) instead of standard output.",
)
@click.option(
    "--redaction",
    type=click.Choice(["safe", "full", "minimal"]),
    default=None,
    help="Redaction mode (default: from config, else safe).",
)
@click.pass_obj
def replay(obj: dict[str, Any], raw_file: Path, output: Path | None, redaction: str | None) -> None:
    """Decode a RawCapture JSONL file (the bridge format) into OISP events."""
    from oisp_sensor.sensor import build_pipeline

    config: Config = obj["config"]
    sinks = [JsonlSink(output)] if output else []
    pipeline = build_pipeline(config, sinks=sinks, counters=Counters(), redaction=redaction)
    if output is None:

        def to_stdout(event: Event) -> None:
            sys.stdout.buffer.write(encode(event))

        pipeline.add_listener(to_stdout)

    async def go() -> int:
        await pipeline.start()
        try:
            return await replay_file(raw_file, pipeline)
        finally:
            await pipeline.stop()

    bad = run_async(go())
    counts = pipeline.counters.snapshot()
    summary = ", ".join(
        f"{k.split('.', 1)[1]}={v}" for k, v in counts.items() if k.startswith("events.")
    )
    click.echo(
        f"replay: {summary or 'no events'}; bad lines={bad}; "
        f"decode errors={counts.get('decode.errors', 0)}",
        err=True,
    )
    if output is None:
        sys.stdout.flush()
    if bad and not counts.get("events.total"):
        fail("no valid capture lines in the file")
