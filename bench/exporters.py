"""Per-event encoding cost of each exporter (not a test: numbers only).

What each exporter's sender task does on the event loop for one batch — OTLP
(spans + log records, protobuf or JSON, gzip or not), the webhook's JSON array,
Kafka's keyed records — divided by the number of events. Events are the realistic
sample traffic of the store tests (five calls, a tool round trip, a streamed reply,
a rate-limit error: 12 events), repeated to a batch of 512 with fresh ids, so
prompts and responses are the size the decoders really produce.

    .venv/bin/python bench/exporters.py [--rounds 20] [--markdown /work/notes/bench_exporters.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.unit.store.traffic import sample_events  # noqa: E402

from oisp_sensor.events import Event  # noqa: E402
from oisp_sensor.sinks.jsonl import encode as jsonl_encode  # noqa: E402
from oisp_sensor.sinks.kafka import KafkaSettings, KafkaSink  # noqa: E402
from oisp_sensor.sinks.otlp import OtlpSettings, OtlpSink  # noqa: E402
from oisp_sensor.sinks.webhook import WebhookSettings, WebhookSink  # noqa: E402

BATCH = 512


def batch() -> list[Event]:
    base = sample_events()
    out: list[Event] = []
    round_ = 0
    while len(out) < BATCH:
        for event in base:
            data = dict(event.data)
            for key in ("request_id", "conversation_id"):
                if key in data:
                    data[key] = f"{data[key]}-{round_}"
            out.append(dataclasses.replace(event, data=data, event_id=""))
        round_ += 1
    return out[:BATCH]


def per_event_us(
    fn: Callable[[list[Event]], object], events: list[Event], rounds: int
) -> tuple[float, float]:
    """(best, median) µs per event: the machine is shared, so the best is the cleanest."""
    fn(events)  # warm up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(events)
        times.append(time.perf_counter() - start)
    scale = 1e6 / len(events)
    return min(times) * scale, statistics.median(times) * scale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    events = batch()

    def otlp(**kw: object) -> Callable[[list[Event]], object]:
        sink = OtlpSink(OtlpSettings(**kw))  # type: ignore[arg-type]
        return sink.prepare

    cases: list[tuple[str, Callable[[list[Event]], object]]] = [
        ("JSONL line (baseline: the file sink)", lambda b: [jsonl_encode(e) for e in b]),
        ("OTLP protobuf, spans + logs, gzip (default)", otlp()),
        ("OTLP protobuf, spans + logs, no compression", otlp(compression="none")),
        ("OTLP protobuf, spans only, gzip", otlp(signals=("traces",))),
        ("OTLP protobuf, logs only, gzip", otlp(signals=("logs",))),
        ("OTLP JSON, spans + logs, gzip", otlp(protocol="json")),
        (
            "webhook JSON array",
            WebhookSink(WebhookSettings(url="http://127.0.0.1:9/")).prepare,
        ),
        (
            "webhook NDJSON",
            WebhookSink(WebhookSettings(url="http://127.0.0.1:9/", format="ndjson")).prepare,
        ),
        (
            "Kafka records (key, JSON value, headers)",
            KafkaSink(KafkaSettings(brokers=("x:1",))).prepare,
        ),
    ]
    avg_json = sum(len(jsonl_encode(e)) for e in events) / len(events)
    rows = [(name, per_event_us(fn, events, args.rounds)) for name, fn in cases]
    lines = [
        "# Exporter encoding cost per event",
        "",
        f"Measured by `bench/exporters.py` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, batches of {BATCH} realistic "
        f"events (mean OISP JSON size {avg_json:.0f} bytes), best and median of {args.rounds} "
        "rounds (2 shared cores: the best is the least disturbed). "
        "This is the CPU time each exporter's sender task spends on the event loop per event "
        "(Kafka's compression happens later, inside aiokafka, and is not included).",
        "",
        "| encoding | µs per event (best) | median | events/s on one core (best) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {best:.1f} | {median:.1f} | {1e6 / best:,.0f} |"
        for name, (best, median) in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
