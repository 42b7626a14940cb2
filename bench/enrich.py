"""Per-event cost of the enrichers (process, app, host, pricing), warm and cold.

Every decoded event passes through all four, so their warm path (the same process,
the same model, again) is what matters for throughput; the cold path (a process or
model seen for the first time) happens once per process / model and day.

Run:  .venv/bin/python bench/enrich.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime

import genai_prices
from genai_prices import Usage

from oisp_sensor.enrich import AppEnricher, HostEnricher, PricingEnricher, ProcessEnricher
from oisp_sensor.events import Event

USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "cached_tokens": 1024,
}


def response(model: str = "gpt-4o-2024-08-06", provider: str = "openai") -> Event:
    return Event(
        event_type="ai.response",
        ts_ns=time.time_ns(),
        data={
            "request_id": "r",
            "provider": {"name": provider},
            "model": {"id": model},
            "usage": dict(USAGE),
            "success": True,
        },
        process={"pid": os.getpid(), "name": "python3"},
    )


def per_event_us(n: int, make: Callable[[], Event], run: Callable[[Event], None]) -> float:
    events = [make() for _ in range(n)]
    start = time.perf_counter()
    for event in events:
        run(event)
    return (time.perf_counter() - start) / n * 1e6


def cold_us(
    n: int, build: Callable[[], Callable[[Event], None]], make: Callable[[], Event]
) -> float:
    """A fresh enricher per event: the first-sight cost (construction excluded)."""
    pairs = [(build(), make()) for _ in range(n)]
    start = time.perf_counter()
    for run, event in pairs:
        run(event)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    cold_n = max(200, n // 50)

    pricing = PricingEnricher()
    process = ProcessEnricher()
    apps = AppEnricher()
    host = HostEnricher()
    process.enrich(response())  # warm the caches
    rows: list[tuple[str, float]] = []

    def full(event: Event) -> None:
        for e in (process, apps, host, pricing):
            e.enrich(event)

    rows.append(("all four, warm (same process, same model)", per_event_us(n, response, full)))
    rows.append(("pricing, warm (gpt-4o, flat prices)", per_event_us(n, response, pricing.enrich)))
    rows.append(
        (
            "pricing, warm (gemini-2.5-pro, tiered: per-band rates)",
            per_event_us(n, lambda: response("gemini-2.5-pro", "google"), pricing.enrich),
        )
    )
    rows.append(
        (
            "pricing, warm (unknown model, cached miss)",
            per_event_us(n, lambda: response("no-such-model"), pricing.enrich),
        )
    )
    rows.append(
        (
            "pricing, cold (a new PriceBook's first event: model lookup, rates)",
            cold_us(cold_n, lambda: PricingEnricher().enrich, response),
        )
    )
    ts = datetime.now(UTC)
    usage = Usage(input_tokens=1200, cache_read_tokens=1024, output_tokens=300)
    start = time.perf_counter()
    for _ in range(n // 4):
        genai_prices.calc_price(
            usage, "gpt-4o-2024-08-06", provider_id="openai", genai_request_timestamp=ts
        )
    rows.append(
        (
            "(reference: genai_prices.calc_price per call)",
            (time.perf_counter() - start) / (n // 4) * 1e6,
        )
    )
    rows.append(
        ("process, warm (pid checked within 1 s)", per_event_us(n, response, process.enrich))
    )
    recheck = ProcessEnricher(recheck_s=0)
    recheck.enrich(response())
    rows.append(
        ("process, warm + OS re-check every event", per_event_us(n // 4, response, recheck.enrich))
    )
    rows.append(
        (
            "process, cold (psutil read + 5 ancestors)",
            cold_us(cold_n, lambda: ProcessEnricher().enrich, response),
        )
    )

    def with_process() -> Event:
        event = response()
        process.enrich(event)
        return event

    rows.append(("app, warm", per_event_us(n, with_process, apps.enrich)))
    rows.append(
        ("app, cold (identify)", cold_us(cold_n, lambda: AppEnricher().enrich, with_process))
    )
    rows.append(("host", per_event_us(n, response, host.enrich)))

    print(
        f"oisp-sensor enrichers, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, n={n}"
    )
    print("| path | µs per event |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
