"""The sensor's pipeline enriches every event: process, app, host and cost together."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from oisp_sensor.config import Config, PriceOverride, PricingConfig
from oisp_sensor.enrich import (
    AppEnricher,
    HostEnricher,
    PricingEnricher,
    ProcessEnricher,
    default_enrichers,
)
from oisp_sensor.events import RawCapture
from oisp_sensor.sensor import build_pipeline
from oisp_sensor.sinks.jsonl import JsonlSink
from tests.conformance import assert_valid_file
from tests.helpers import HASHER, captures, http_request, http_response, sse_events


def _exchanges() -> list[tuple[bytes, bytes]]:
    chat = http_request(
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": True},
        },
    )
    stream = sse_events(
        {
            "id": "c1",
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
        },
        {
            "id": "c1",
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}],
        },
        {
            "id": "c1",
            "model": "gpt-4o-2024-08-06",
            "choices": [],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 1024},
            },
        },
        "[DONE]",
    )
    response = http_response(content_type="text/event-stream", chunks=stream)
    unknown = http_request(
        "/v1/chat/completions",
        {"model": "my-finetune-v9", "messages": [{"role": "user", "content": "hi"}]},
    )
    unknown_response = http_response(
        {
            "id": "c2",
            "model": "my-finetune-v9",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    )
    return [(chat, response), (unknown, unknown_response)]


def _live_captures(pid: int) -> list[RawCapture]:
    """Captures as a local agent would send them now: real pid, comm, uid, ppid."""
    raws = captures(_exchanges(), pid=pid)
    shift = time.time_ns() - raws[-1].timestamp_ns
    meta = {"comm": psutil.Process(pid).name(), "uid": os.getuid(), "fd": 7, "ppid": os.getpid()}
    return [
        dataclasses.replace(r, timestamp_ns=r.timestamp_ns + shift, metadata=meta) for r in raws
    ]


async def test_pipeline_enriches_every_event(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text("import time\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while "agent.py" not in " ".join(psutil.Process(child.pid).cmdline()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out = tmp_path / "events.jsonl"
        pipeline = build_pipeline(Config(), sinks=[JsonlSink(out)], hasher=HASHER)
        await pipeline.start()
        for raw in _live_captures(child.pid):
            pipeline.submit(raw)
        await pipeline.stop()
    finally:
        child.kill()
        child.wait()
    events = assert_valid_file(out)
    assert {e["event_type"] for e in events} == {"ai.request", "ai.response"}
    for event in events:
        assert event["process"]["cmdline_args"] == [sys.executable, str(script)]
        assert event["process"]["cwd"] == str(tmp_path)
        assert event["process"]["parent"]["pid"] == os.getpid()
        assert event["app"]["app_id"] == "python:agent.py"
        assert event["host"]["device_id"]
        assert event["actor"]["uid"] == os.getuid()
    known, unknown = [e for e in events if e["event_type"] == "ai.response"]
    # gpt-4o: 176 * $2.50 + 1024 * $1.25 = 1720; 300 * $10 = 3000 (per 1M tokens)
    assert known["data"]["usage"]["total_cost_usd"] == pytest.approx(4720 / 1_000_000)
    assert known["attrs"]["cost_source"] == "computed"
    assert "total_cost_usd" not in unknown["data"]["usage"]
    assert unknown["attrs"]["cost_unknown"] == "model not in price table"
    assert pipeline.counters.get("enrich.errors") == 0
    assert pipeline.counters.get("pricing.computed") == 1


async def test_config_reaches_the_pricing_enricher(tmp_path: Path) -> None:
    config = Config(
        pricing=PricingConfig(
            overrides=(PriceOverride(model="my-finetune-*", input_per_mtok=1, output_per_mtok=2),)
        )
    )
    out = tmp_path / "events.jsonl"
    sink = JsonlSink(out)
    pipeline = build_pipeline(config, hasher=HASHER)
    events = []
    for raw in captures(_exchanges()):
        events += pipeline.process(raw)
    events += pipeline.finish(pipeline.decoder.close_all())
    await sink.write(events)
    await sink.close()
    written = assert_valid_file(out)
    finetune = [
        e
        for e in written
        if e["event_type"] == "ai.response" and e["data"]["model"]["id"] == "my-finetune-v9"
    ]
    # 10 * $1 + 2 * $2 = 14 per 1M tokens
    assert finetune[0]["data"]["usage"]["total_cost_usd"] == pytest.approx(14 / 1_000_000)
    assert finetune[0]["attrs"]["price_source"] == "config override"


def test_default_order() -> None:
    kinds = [type(e) for e in default_enrichers(PricingConfig(enabled=False))]
    assert kinds == [ProcessEnricher, AppEnricher, HostEnricher, PricingEnricher]
