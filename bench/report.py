"""Turns the raw results of bench/run.py into the markdown table (and the pass/fail list).

Every number in a row is the median over rounds, with the spread (min–max) after
it; "added" is the proxy's value minus direct's value *in the same round*, then the
median of those, so slow drift on a shared machine cancels out. Kept apart from
the measuring so a raw file can be re-rendered: `python bench/run.py --render X.raw.json`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SENSOR, MITM, DIRECT = "oisp-sensor", "mitmdump", "direct"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def spread(values: Sequence[float]) -> tuple[float, float]:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return (min(clean), max(clean)) if clean else (math.nan, math.nan)


def fmt(value: float, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def fmt_spread(values: Sequence[float], digits: int = 2) -> str:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return "–"
    if len(clean) == 1:
        return fmt(clean[0], digits)
    low, high = spread(clean)
    return f"{fmt(median(clean), digits)} ({fmt(low, digits)}–{fmt(high, digits)})"


class Rounds:
    """Per-round values of one metric for each proxy, pulled out of the raw rounds."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.rounds: list[dict[str, dict[str, dict[str, Any]]]] = raw["rounds"]
        self.names: list[str] = raw["proxies_order"]

    def values(self, op: str, name: str, key: str) -> list[float]:
        out = []
        for rnd in self.rounds:
            entry = rnd.get(op, {}).get(name)
            if entry and key in entry and entry[key] is not None:
                out.append(float(entry[key]))
        return out

    def paired(
        self, op: str, name: str, key: str, combine: Callable[[float, float], float]
    ) -> list[float]:
        """combine(proxy value, direct value) for each round where both exist."""
        out = []
        for rnd in self.rounds:
            mine = rnd.get(op, {}).get(name) or {}
            base = rnd.get(op, {}).get(DIRECT) or {}
            if mine.get(key) is not None and base.get(key) is not None:
                out.append(combine(float(mine[key]), float(base[key])))
        return out

    def between(self, op: str, key: str, combine: Callable[[float, float], float]) -> list[float]:
        """combine(sensor, mitmdump) per round, each already relative to direct if asked."""
        out = []
        for rnd in self.rounds:
            sensor = rnd.get(op, {}).get(SENSOR) or {}
            mitm = rnd.get(op, {}).get(MITM) or {}
            base = rnd.get(op, {}).get(DIRECT) or {}
            if all(d.get(key) is not None for d in (sensor, mitm, base)):
                out.append(combine(float(sensor[key]) - base[key], float(mitm[key]) - base[key]))
        return out


def _added(a: float, b: float) -> float:
    return a - b


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


LATENCY_ROWS = [
    ("ka_small", "p50_ms", "keep-alive 1 KB, p50 (ms)"),
    ("ka_small", "p99_ms", "keep-alive 1 KB, p99 (ms)"),
    ("ka_large", "p50_ms", "keep-alive 100 KB, p50 (ms)"),
    ("ka_large", "p99_ms", "keep-alive 100 KB, p99 (ms)"),
    ("newconn", "p50_ms", "new connection per request, p50 (ms)"),
    ("newconn", "p99_ms", "new connection per request, p99 (ms)"),
    ("newconn", "tcp_p50_ms", "… of which TCP connect to the proxy, p50 (ms)"),
    ("newconn", "connect_p50_ms", "… CONNECT sent → 200 received, p50 (ms)"),
    ("newconn", "tls_p50_ms", "… TLS handshake (direct: TCP + TLS), p50 (ms)"),
    ("newconn", "request_p50_ms", "… first request → response, p50 (ms)"),
    ("sse", "ttfc_p50_ms", "SSE time to first chunk, p50 (ms)"),
    ("sse", "delay_p50_ms", "SSE per-chunk delay, p50 (ms)"),
    ("sse", "delay_p99_ms", "SSE per-chunk delay, p99 (ms)"),
    ("sse", "delay_max_ms", "SSE per-chunk delay, max (ms)"),
]


def render(raw: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The markdown report and the list of target checks (name, value, limit, passed)."""
    r = Rounds(raw)
    names = r.names
    proxies = [n for n in names if n != DIRECT]
    lines: list[str] = []
    meta = raw["meta"]
    lines += [
        f"# Side-by-side benchmark — {meta['date']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']['nproc']} cores, {meta['machine']['cpu']}, "
        f"{meta['machine']['memory_gb']} GiB, Linux {meta['machine']['kernel']}, "
        f"load average at start {', '.join(f'{x:.2f}' for x in meta['machine']['loadavg'])}"
        + (
            f", at end {', '.join(f'{x:.2f}' for x in meta['loadavg_end'])}"
            if meta.get("loadavg_end")
            else ""
        )
        + f"; run took {meta.get('duration_s', '?')} s  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
        f"Mode: {meta['mode']}, {len(r.rounds)} rounds interleaved (order rotated each round); "
        f"settings: {_settings_line(raw['settings'])}",
        "",
        "Cells: median over rounds (min–max over rounds). *added* = proxy minus direct in the "
        "same round, then the median. Upstream: bench/upstream.py (local TLS, uvloop); client: "
        "bench/loadgen.py (raw asyncio + uvloop, TLS 1.3, HTTP/1.1).",
        "",
    ]
    for name in proxies:
        cmd = raw["proxies"].get(name, {}).get("command")
        if cmd:
            lines.append(f"- `{name}`: `{_shorten(cmd)}`")
    missing = raw.get("missing") or {}
    for name, why in missing.items():
        lines.append(f"- `{name}`: **not measured** — {why}")
    lines.append("")

    if not r.rounds:  # a profile-only run
        lines.append("No measuring rounds in this run.")
        return "\n".join(lines) + "\n", []

    # --- latency -------------------------------------------------------------------------
    header = ["metric", *names] + [f"{n} added" for n in proxies]
    if SENSOR in proxies and MITM in proxies:
        header.append("sensor added / mitmdump added")
    lines += ["## Latency", "", _row(header), _row(["---"] * len(header))]
    for op, key, label in LATENCY_ROWS:
        cells = [label] + [fmt_spread(r.values(op, n, key)) for n in names]
        cells += [fmt_spread(r.paired(op, n, key, _added)) for n in proxies]
        if SENSOR in proxies and MITM in proxies:
            cells.append(fmt_spread(r.between(op, key, _ratio)))
        lines.append(_row(cells))
    lines.append("")

    # --- throughput ----------------------------------------------------------------------
    header = ["clients", *[f"{n} req/s" for n in names]]
    if SENSOR in proxies and MITM in proxies:
        header.append("sensor / mitmdump")
    header += [f"{n} p50 / p99 (ms)" for n in names]
    header += ["CPU % proxy / client / upstream (" + n + ")" for n in proxies]
    header += [f"{n} busy after the load (s)" for n in proxies]
    lines += ["## Throughput (keep-alive, 1 KB, closed loop)", "", _row(header)]
    lines.append(_row(["---"] * len(header)))
    for conc in raw["settings"]["concurrency"]:
        op = f"tput_{conc}"
        cells = [str(conc)] + [fmt_spread(r.values(op, n, "rps"), 0) for n in names]
        if SENSOR in proxies and MITM in proxies:
            cells.append(fmt_spread(_per_round_ratio(r, op, "rps", SENSOR, MITM)))
        cells += [
            f"{fmt(median(r.values(op, n, 'p50_ms')))} / {fmt(median(r.values(op, n, 'p99_ms')))}"
            for n in names
        ]
        cells += [
            " / ".join(
                fmt(median(r.values(op, n, k)), 0)
                for k in ("proxy_cpu_pct", "client_cpu_pct", "upstream_cpu_pct")
            )
            for n in proxies
        ]
        cells += [fmt_spread(r.values(op, n, "busy_after_s")) for n in proxies]
        lines.append(_row(cells))
    direct_cpu = [fmt(median(r.values(f"tput_{c}", DIRECT, "client_cpu_pct")), 0) for c in
                  raw["settings"]["concurrency"]]  # fmt: skip
    lines += [
        "",
        "*busy after the load*: how long the proxy kept a core busy (> 10 %) once its "
        "clients had their answers — work queued and done later (the harness waits for it "
        "before the next column runs). "
        "CPU % is of one core over the measured window (200 % = both cores). Direct's client CPU "
        f"at {', '.join(map(str, raw['settings']['concurrency']))} clients: "
        f"{', '.join(direct_cpu)} % — the load generator is not what limits the proxied columns.",
        "",
    ]

    # --- resources -----------------------------------------------------------------------
    header = ["resource", *proxies]
    lines += ["## Memory and CPU of the proxy process", "", _row(header)]
    lines.append(_row(["---"] * len(header)))
    mem = raw.get("memory", {})
    soak = raw.get("soak", {})
    idle = raw.get("idle", {})
    rows: list[tuple[str, Callable[[str], str]]] = [
        ("RSS at start (MB)", lambda n: fmt(_mb(mem.get(n, {}).get("start")), 1)),
        ("RSS idle after warm-up (MB)", lambda n: fmt(_mb(mem.get(n, {}).get("idle")), 1)),
        (
            "RSS after N requests (MB)",
            lambda n: _checkpoint(mem.get(n, {}).get("checkpoints") or []),
        ),
        ("RSS growth over the soak (MB)", lambda n: fmt(_growth(mem.get(n, {})), 1)),
        ("CPU seconds per 1000 requests (soak)",
         lambda n: fmt(soak.get(n, {}).get("cpu_per_1000"), 3)),
        ("idle CPU % (over the idle window)", lambda n: fmt(idle.get(n, {}).get("cpu_pct"), 3)),
    ]  # fmt: skip
    for label, get in rows:
        lines.append(_row([label, *[get(n) for n in proxies]]))
    lines.append("")

    # --- sensor pipeline -----------------------------------------------------------------
    events = raw.get("events") or {}
    if events:
        lines += ["## The sensor's pipeline (sinks on)", ""]
        lines += _events_section(raw, events)
        lines.append("")

    # --- targets -------------------------------------------------------------------------
    checks = evaluate(raw)
    if checks:
        lines += ["## Targets", "", _row(["target", "measured", "limit", "result"])]
        lines.append(_row(["---"] * 4))
        for c in checks:
            verdict = "pass" if c["passed"] else ("**FAIL**" if c["passed"] is False else "n/a")
            lines.append(_row([c["name"], c["measured"], c["limit"], verdict]))
        lines.append("")
    if raw.get("upstream_served"):
        lines += [
            "Cross-check: the upstream served "
            f"{sum(v for k, v in raw['upstream_served'].items() if k != 'connections'):,} "
            f"requests; the clients completed {raw.get('clients_completed', 0):,}.",
            "",
        ]
    for note in raw.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n", checks


def _per_round_ratio(r: Rounds, op: str, key: str, a: str, b: str) -> list[float]:
    out = []
    for rnd in r.rounds:
        x = (rnd.get(op, {}).get(a) or {}).get(key)
        y = (rnd.get(op, {}).get(b) or {}).get(key)
        if x is not None and y:
            out.append(x / y)
    return out


def _events_section(raw: dict[str, Any], events: dict[str, Any]) -> list[str]:
    out = []
    counts = events.get("jsonl_types", {})
    sent = events.get("requests_sent", 0)
    out.append(
        f"- requests completed through the sensor: {sent:,}; JSONL events: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
    )
    if "responses_complete" in events:
        out.append(
            f"- ai.response with completeness=full: {events['responses_complete']:,}; "
            f"partial/other: {events.get('responses_partial', 0):,}; "
            f"with attrs.decode_error: {events.get('decode_errors', 0):,}"
        )
    if events.get("db"):
        out.append(
            "- SQLite store rows: " + ", ".join(f"{k} {v:,}" for k, v in events["db"].items())
        )
    if events.get("validation"):
        out.append(f"- OISP v0.1 validation of a sample: {events['validation']}")
    soak = raw.get("soak", {}).get(SENSOR, {})
    if soak.get("events_per_s"):
        out.append(
            f"- events/s through decode + sinks during the soak: "
            f"{fmt_spread(soak['events_per_s'], 0)} (per segment; drain after the load stopped: "
            f"max {fmt(max(soak.get('drain_s') or [math.nan]), 2)} s)"
        )
    if "status_drops" in events:
        drops = events["status_drops"]
        out.append(
            "- drop counters in `oisp-sensor status --json` before stopping: "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(drops.items())) or "none reported")
        )
    if events.get("sensor_exit") is not None:
        out.append(f"- sensor exit status after SIGINT: {events['sensor_exit']}")
    return out


def evaluate(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and a verdict (None = not measured)."""
    r = Rounds(raw)
    if SENSOR not in r.names:
        return []
    checks: list[dict[str, Any]] = []

    def add(name: str, measured: float, limit: str, passed: bool | None, digits: int = 2) -> None:
        if measured is None or (isinstance(measured, float) and math.isnan(measured)):
            passed = None
        checks.append(
            {"name": name, "measured": fmt(measured, digits), "limit": limit, "passed": passed}
        )

    ka = median(r.paired("ka_small", SENSOR, "p50_ms", _added))
    add("keep-alive added latency p50 (ms)", ka, "<= 0.5", ka <= 0.5)
    if MITM in r.names:
        rel = median(r.between("ka_small", "p50_ms", _ratio))
        add("keep-alive added p50, sensor / mitmdump", rel, "<= 0.5", rel <= 0.5)
    nc = median(r.paired("newconn", SENSOR, "p50_ms", _added))
    add("new-connection added latency p50 (ms)", nc, "<= 4", nc <= 4)
    sse = median(r.paired("sse", SENSOR, "delay_p99_ms", _added))
    add("SSE per-chunk added delay p99 (ms)", sse, "<= 1", sse <= 1)
    if MITM in r.names:
        # Speed bought by dropping events is no win: throughput passes only when the
        # sensor recorded every request (or when nothing was counted, e.g. an ablation).
        lossless = _lossless(raw)
        for conc in (10, 50):
            ratio = median(_per_round_ratio(r, f"tput_{conc}", "rps", SENSOR, MITM))
            label = f"throughput at {conc} clients, sensor / mitmdump"
            if lossless is False:
                label += " (void: the sensor lost events)"
            add(label, ratio, ">= 2", ratio >= 2 and lossless is not False)
    mem = raw.get("memory", {}).get(SENSOR, {})
    idle_mb = _mb(mem.get("idle"))
    add("RSS idle (MB)", idle_mb, "<= 60", idle_mb <= 60, 1)
    growth = _growth(mem)
    checkpoints = mem.get("checkpoints") or []
    reached = checkpoints[-1][0] if checkpoints else 0
    add(
        f"RSS growth over the soak to {reached:,} requests (MB)",
        growth,
        "<= 5 (flat)",
        growth <= 5,
        1,
    )
    idle_cpu = raw.get("idle", {}).get(SENSOR, {}).get("cpu_pct", math.nan)
    add("idle CPU (%)", idle_cpu, "< 0.5", idle_cpu < 0.5, 3)
    events = raw.get("events") or {}
    if events:
        sent = events.get("requests_sent", 0)
        got = events.get("jsonl_types", {}).get("ai.response", 0)
        exact = SENSOR not in (raw.get("tally_incomplete") or [])
        checks.append(
            {
                "name": "every request recorded (ai.response events == requests)",
                "measured": f"{got:,} / {sent:,}" + ("" if exact else " (a client failed)"),
                "limit": "equal",
                "passed": (got == sent and sent > 0) if exact else (None if got >= sent else False),
            }
        )
    return checks


def _lossless(raw: dict[str, Any]) -> bool | None:
    events = raw.get("events") or {}
    if not events or SENSOR in (raw.get("tally_incomplete") or []):
        return None
    return events.get("jsonl_types", {}).get("ai.response", 0) == events.get("requests_sent")


def _mb(value: float | None) -> float:
    return value / 2**20 if value else math.nan


def _growth(mem: dict[str, Any]) -> float:
    points = mem.get("checkpoints") or []
    if len(points) < 2:
        return math.nan
    return _mb(points[-1][1]) - _mb(points[0][1])


def _checkpoint(points: list[list[int]]) -> str:
    if not points:
        return "–"
    return " → ".join(f"{fmt(_mb(rss), 1)} @{n // 1000}k" for n, rss in points)


def _settings_line(settings: dict[str, Any]) -> str:
    keys = ("ka_n", "large_n", "newconn_n", "sse_streams", "sse_batches", "tput_seconds",
            "soak_requests", "idle_seconds")  # fmt: skip
    return ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)


def _shorten(cmd: str) -> str:
    """Paths relative to the checkout, the run's temp dir as $TMP."""
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return re.sub(r"/tmp/oisp-bench-[^/\s]+", "$TMP", cmd.replace(root, ""))


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
