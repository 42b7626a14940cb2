"""`analyze` over a 1M-event store: how long each report takes (not a test: numbers only).

Generates a store of realistic events (conversations of request/response pairs over
several providers, models and processes, tool calls answered with results, 3% errors,
some models without a price), then times every report the way `oisp-sensor analyze`
runs it, side by side with plain-SQL baselines over the same table. Also times the
generation (bulk insert), retention pruning of a day's worth, and loading a JSONL
file into memory the way `analyze FILE.jsonl` does.

    .venv/bin/python bench/analyze_1m.py [--events 1000000] [--jsonl-events 200000]
        [--db /tmp/oisp-bench/events.db] [--markdown /work/notes/bench_analyze.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from oisp_sensor.events import Event  # noqa: E402
from oisp_sensor.store import EventStore, Retention  # noqa: E402
from oisp_sensor.store.columns import Row, row_from_dict  # noqa: E402
from oisp_sensor.store.jsonl import load_jsonl  # noqa: E402
from oisp_sensor.store.reports import REPORT_NAMES, run_report  # noqa: E402

MODELS = {  # provider -> (model, USD per input token, per output token); None = unpriced
    "openai": [("gpt-4o-2024-08-06", 2.5e-6, 10e-6), ("gpt-4o-mini-2024-07-18", 0.15e-6, 0.6e-6)],
    "anthropic": [("claude-sonnet-4-5-20250929", 3e-6, 15e-6), ("claude-haiku-4-5", 1e-6, 5e-6)],
    "google": [("gemini-2.5-flash", 0.3e-6, 2.5e-6)],
    "deepseek": [("deepseek-chat", 0.27e-6, 1.1e-6)],
    "corp-gateway": [("corp-llama-70b", None, None)],
}
PROCESSES = [f"{name}" for name in ("python3", "node", "cursor", "claude", "curl", "java")] + [
    f"agent-{i}" for i in range(24)
]
TOOLS = ["get_weather", "run_shell", "read_file", "web_search", "sql_query", "edit_file"]
PROMPT = (
    "Please look at the following code and explain what it does, then suggest a fix for the "
    "bug we discussed earlier today in the standup. "
) * 3


def _events(n: int, end_s: float, seed: int = 7) -> Iterator[dict[str, Any]]:
    """About `n` events in wire form, spread over the six days before `end_s`."""
    rng = random.Random(seed)
    span_ns = int(6 * 86_400 * 1e9)
    start_ns = int(end_s * 1e9) - span_ns
    produced = 0
    conversation = 0
    while produced < n:
        conversation += 1
        provider = rng.choice(list(MODELS))
        model, price_in, price_out = rng.choice(MODELS[provider])
        process = rng.choice(PROCESSES)
        pid = 1000 + PROCESSES.index(process) * 7 + rng.randrange(3)
        ts = start_ns + int(rng.random() * span_ns)
        conv_id = f"conv_{conversation:012x}"
        for turn in range(rng.randint(1, 6)):
            if produced >= n:
                return
            rid = f"req_{conversation:010x}{turn:02x}"
            common = {
                "process": {"pid": pid, "name": process, "exe": f"/usr/bin/{process}"},
                "app": {"app_id": process, "name": process, "tier": "unknown"},
            }
            provider_info = {"name": provider if provider != "corp-gateway" else "other"}
            attrs = {"provider_id": provider} if provider == "corp-gateway" else {}
            request = Event(
                event_type="ai.request",
                ts_ns=ts,
                data={
                    "request_id": rid,
                    "conversation_id": conv_id,
                    "provider": provider_info,
                    "model": {"id": model},
                    "request_type": "chat",
                    "streaming": rng.random() < 0.6,
                    "messages": [
                        {"role": "user", "content": PROMPT, "content_length": len(PROMPT)}
                    ],
                    "messages_count": 1 + 2 * turn,
                },
                attrs=dict(attrs),
                **common,
            )
            latency = int(rng.lognormvariate(6.5, 0.6))
            ts += latency * 1_000_000
            ok = rng.random() > 0.03
            data: dict[str, Any] = {
                "request_id": rid,
                "conversation_id": conv_id,
                "provider": provider_info,
                "model": {"id": model},
                "status_code": 200 if ok else rng.choice([429, 500, 529]),
                "success": ok,
                "latency_ms": latency,
            }
            tool = None
            if ok:
                prompt_t, completion_t = rng.randint(200, 8000), rng.randint(20, 1500)
                usage: dict[str, Any] = {
                    "prompt_tokens": prompt_t,
                    "completion_tokens": completion_t,
                    "total_tokens": prompt_t + completion_t,
                }
                if price_in is not None and price_out is not None:
                    usage["input_cost_usd"] = prompt_t * price_in
                    usage["output_cost_usd"] = completion_t * price_out
                    usage["total_cost_usd"] = usage["input_cost_usd"] + usage["output_cost_usd"]
                data["usage"] = usage
                data["time_to_first_token_ms"] = int(latency * rng.uniform(0.1, 0.5))
                data["choices"] = [
                    {"index": 0, "message": {"role": "assistant", "content": "Here is the fix…"}}
                ]
                if rng.random() < 0.25:
                    tool = rng.choice(TOOLS)
            else:
                data["error"] = {"type": "rate_limit_error", "message": "Rate limit reached"}
            response = Event(
                event_type="ai.response", ts_ns=ts, data=data, attrs=dict(attrs), **common
            )
            yield request.to_dict()
            yield response.to_dict()
            produced += 2
            if tool:
                call_id = f"call_{conversation:010x}{turn:02x}"
                yield Event(
                    event_type="agent.tool_call",
                    ts_ns=ts,
                    data={"tool": {"name": tool, "type": "other"}, "call_id": call_id},
                    **common,
                ).to_dict()
                produced += 1
                if rng.random() < 0.95:  # a few never come back
                    duration = int(rng.lognormvariate(5.5, 1.0))
                    ts += duration * 1_000_000
                    yield Event(
                        event_type="agent.tool_result",
                        ts_ns=ts,
                        data={
                            "call_id": call_id,
                            "tool": {"name": tool, "type": "other"},
                            "success": rng.random() > 0.08,
                            "duration_ms": duration,
                        },
                        **common,
                    ).to_dict()
                    produced += 1
            ts += int(rng.uniform(2, 60) * 1e9)


def generate(path: Path, n: int) -> tuple[float, int]:
    """Fill a new store with `n` events; (seconds, bytes)."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    store = EventStore(path)
    started = time.perf_counter()
    batch: list[tuple[Row, str | None]] = []
    for wire in _events(n, time.time()):
        batch.append((row_from_dict(wire), orjson.dumps(wire).decode()))
        if len(batch) == 5000:
            store.write_rows(batch)
            batch.clear()
    store.write_rows(batch)
    store.checkpoint()
    elapsed = time.perf_counter() - started
    size = store.size_bytes()
    store.close()
    return elapsed, size


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--jsonl-events", type=int, default=200_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/oisp-bench/events.db"))
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)

    print(f"generating {args.events:,} events into {args.db} …", flush=True)
    gen_s, size = generate(args.db, args.events)
    store = EventStore(args.db)
    count = store.count()
    print(f"  {count:,} events in {gen_s:.1f} s ({count / gen_s:,.0f}/s), {size / 1e6:.0f} MB")

    rows: list[tuple[str, float]] = []
    raw = sqlite3.connect(args.db)
    baselines = {
        "baseline: SELECT count(*)": "SELECT count(*) FROM events",
        "baseline: one full table scan (sum of cost by event type)": (
            "SELECT event_type, sum(cost_usd) FROM events NOT INDEXED GROUP BY event_type"
        ),
    }
    for label, sql in baselines.items():
        rows.append((label, timed(lambda sql=sql: raw.execute(sql).fetchall())))
    raw.close()
    for name in REPORT_NAMES:
        seconds = timed(lambda name=name: run_report(name, store))
        rows.append((f"analyze --report {name}", seconds))
        print(f"  {name:<14} {seconds:6.2f} s", flush=True)

    # Retention: drop the oldest day (about a sixth of the store), in short transactions.
    # A 7-day window seen from two days ahead ends five days ago.
    two_days_ahead = time.time() + 2 * 86_400
    before = store.count()
    started = time.perf_counter()
    removed = Retention(7, clock=lambda: two_days_ahead).prune(store)
    prune_s = time.perf_counter() - started
    store.close()

    jsonl = args.db.with_suffix(".jsonl")
    with jsonl.open("wb") as f:
        for wire in _events(args.jsonl_events, time.time(), seed=11):
            f.write(orjson.dumps(wire) + b"\n")
    memory = EventStore.memory()
    started = time.perf_counter()
    loaded = load_jsonl(jsonl, memory, bodies=False)
    load_s = time.perf_counter() - started
    summary_s = timed(lambda: run_report("summary", memory), repeat=1)
    jsonl_mb = jsonl.stat().st_size / 1e6
    jsonl.unlink()

    lines = [
        "# `analyze` on a 1M-event store",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end of the run).",
        f"Store: {count:,} events ({size / 1e6:.0f} MB on disk, bodies included), "
        f"generated by `bench/analyze_1m.py`: {gen_s:.1f} s to write "
        f"({count / gen_s:,.0f} events/s in 5,000-event transactions).",
        "",
        "Each time is the median of 3 runs, warm page cache, over the whole store.",
        "",
        "| query | seconds |",
        "| --- | ---: |",
        *(f"| {label} | {seconds:.3f} |" for label, seconds in rows),
        "",
        f"Retention: pruning {removed:,} of {before:,} events (older than the window) took "
        f"{prune_s:.1f} s in 5,000-event transactions.",
        "",
        f"JSONL: loading {loaded.events:,} events ({jsonl_mb:.0f} MB) into memory the way "
        f"`analyze FILE.jsonl` does took {load_s:.1f} s ({loaded.events / load_s:,.0f} lines/s); "
        f"the summary over them then took {summary_s:.2f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
