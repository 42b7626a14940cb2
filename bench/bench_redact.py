"""How many events per second the redactor handles, per mode (not a test: numbers only).

Typical events are decoded from real-looking traffic (an OpenAI chat request with a
system prompt and a short history, and its response), then redacted over and over
from fresh copies. Also measured: raw scanner throughput on prose without
candidates, on text dense with PII, and on hostile input (the budget's worst case).

    .venv/bin/python bench/bench_redact.py [--seconds 2] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import HASHER, captures, decode, http_request, http_response  # noqa: E402

from oisp_sensor.events import Event  # noqa: E402
from oisp_sensor.privacy.detectors import Scanner  # noqa: E402
from oisp_sensor.privacy.redact import EventRedactor  # noqa: E402

PROSE = (
    "You are a helpful assistant for the platform team. Summarise the meeting notes below, "
    "keep action items and owners, and answer in 5 bullet points at most. We discussed the Q3 "
    "roadmap, the migration to the new database cluster and hiring for 2 positions. "
)
USER = (
    "Here are the notes from Tuesday: Bob follows up with the vendor about pricing by Friday; "
    "Alice owns the rollout plan and the runbook. Reach me at alice.martin@example.com or "
    "+44 20 7946 0958 if anything is unclear. The staging key was sk-proj-"
    "Zq3vN8xT2mK9pL4wR7sY1uB6cE0dF5gH8jK2lM4nP6qR8sT0 (rotate it!). "
)


def chat_events() -> list[dict[str, object]]:
    history = [
        {"role": "system", "content": PROSE * 2},
        {"role": "user", "content": "What did we decide last week about the cache layer?"},
        {"role": "assistant", "content": PROSE},
        {"role": "user", "content": USER * 2},
    ]
    request = http_request(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": history, "temperature": 0.2},
        headers={"Authorization": "Bearer sk-proj-Zq3vN8xT2mK9pL4wR7sY1uB6cE0dF5gH8jK2lM4"},
    )
    answer = "- Bob: vendor pricing (Friday)\n- Alice: rollout plan, runbook\n" + PROSE
    response = http_response(
        {
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 512, "completion_tokens": 96, "total_tokens": 608},
        }
    )
    return decode(captures([(request, response)]))


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, over about `seconds`."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()

    events = chat_events()
    text_chars = sum(len(json.dumps(e["data"])) for e in events)
    lines = [
        "# Redaction throughput",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, one core "
        f"(machine shared with other work; numbers are indicative). "
        f"`bench/bench_redact.py --seconds {args.seconds}`.",
        "",
        f"Typical chat exchange: ai.request (system prompt + 3 history turns, one e-mail, one "
        f"phone number, one API key in the text) and ai.response; {text_chars} characters "
        f"of `data` JSON over the {len(events)} events.",
        "",
        "| mode | events/s | µs/event | events/s, no string seen before | µs/event |",
        "|---|---:|---:|---:|---:|",
    ]
    # Rounds interleave the modes and keep each one's best batch, so a busy moment on
    # the shared machine does not land on one mode only.
    cases = [(mode, cold) for mode in ("safe", "full", "minimal") for cold in (False, True)]
    redactors = {case: EventRedactor(case[0], HASHER) for case in cases}
    best = dict.fromkeys(cases, float("inf"))
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline:
        for case in cases:
            redactor, cold = redactors[case], case[1]
            batch = [Event.from_dict(copy.deepcopy(e)) for _ in range(100) for e in events]
            started = time.perf_counter()
            for event in batch:
                if cold:  # as if every string were new (no recurring model ids, history)
                    redactor.clean_cache[0].clear()
                    redactor.clean_cache[1].clear()
                redactor.redact(event)
            best[case] = min(best[case], (time.perf_counter() - started) / len(batch))
    for mode in ("safe", "full", "minimal"):
        warm, cold = best[(mode, False)], best[(mode, True)]
        lines.append(
            f"| {mode} | {1 / warm:,.0f} | {warm * 1e6:.1f} | {1 / cold:,.0f} | {cold * 1e6:.1f} |"
        )

    lines += ["", "Scanner alone (`Scanner.find`), MB/s of text:", ""]
    lines += ["| text | secrets only (full) | secrets + PII (safe) |", "|---|---:|---:|"]
    samples = {
        "prose, no candidates (64 KB)": "Plain words and sentences, nothing to mask. " * 1500,
        "chat text with an e-mail, a phone number and a key every 300 characters (64 KB)": (
            USER * 250
        ),
    }
    for name, text in samples.items():
        cells = []
        for pii in (False, True):
            scanner = Scanner(pii=pii)
            per_second = rate(lambda s=scanner, t=text: s.find(t), max(0.5, args.seconds / 2))
            cells.append(f"{per_second * len(text) / 1e6:.1f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "Hostile text (1 MB made of nothing but candidates), safe scanner: the per-string",
        "budget stops the scan and removes the rest (`[UNSCANNED:…]`), so the time is bounded:",
        "",
        "| text | ms for 1 MB | scanned before the cut |",
        "|---|---:|---:|",
    ]
    hostile = {
        "phone-like runs `555-123-4567 `": "555-123-4567 " * 80_000,
        "e-mail-like `a.b@c.de `": "a.b@c.de " * 116_000,
        "7-digit numbers `1234567 `": "1234567 " * 130_000,
        "keys `sk-proj-…`": "sk-proj-abcdefghijklmnop123456 " * 33_000,
    }
    scanner = Scanner()
    for name, text in hostile.items():
        started = time.perf_counter()
        found = scanner.find(text)
        elapsed = time.perf_counter() - started
        cut = next((f.start for f in found if f.label == "UNSCANNED"), len(text))
        lines.append(f"| {name} | {elapsed * 1000:.0f} | {cut / len(text):.0%} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        args.markdown.write_text(report)


if __name__ == "__main__":
    main()
