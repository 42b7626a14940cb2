"""Side-by-side benchmark: direct vs `oisp-sensor record` vs `mitmdump`, in one run.

    .venv/bin/python bench/run.py --quick          # ~2 minutes
    .venv/bin/python bench/run.py                  # full, ~10-15 minutes
    .venv/bin/python bench/run.py --profile 20     # + py-spy on the sensor under load
    .venv/bin/python bench/run.py --render bench/results/X.raw.json

This machine has 2 cores shared with everything else, so one measurement means
little. Every operation runs for every column within the same round, in an order
rotated each round; the report gives medians over rounds, the spread, and the
proxy-minus-direct difference taken within each round. The soak that brings each
proxy to N requests is interleaved the same way (segment by segment).

Phases: start (upstream, proxies, warm-up, idle RSS) → rounds (latency, 100 KB,
new connections, SSE, throughput at 1/10/50 clients) → soak (RSS checkpoints, CPU per
1000 requests, the sensor's events/s) → idle CPU → optional profile → stop the
sensor (SIGINT, sinks flush) and count what it recorded against what was sent.

Writes bench/results/<date>.md (commit it) and <date>.raw.json (git-ignored).
See bench/README.md for the setup (the mitmproxy venv).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_summary  # noqa: E402
import proxies as px  # noqa: E402
import report  # noqa: E402
from upstream import SSE_CHUNKS, make_certs  # noqa: E402

RESULTS = px.BENCH / "results"
LOADGEN = px.BENCH / "loadgen.py"
VALIDATOR = px.ROOT.parent / "shared" / "tools" / "validate_oisp.py"


@dataclass(frozen=True)
class Settings:
    rounds: int
    ka_n: int  # sequential keep-alive requests per round (1 KB)
    large_n: int  # ... with a 100 KB response
    newconn_n: int  # requests each on a new connection (CONNECT + TLS)
    sse_streams: int  # concurrent streams
    sse_batches: int
    tput_seconds: float
    soak_requests: int  # requests each proxy gets in the soak, on top of the rounds
    soak_segments: int
    idle_seconds: float
    concurrency: tuple[int, ...] = (1, 10, 50)
    client_procs: int = 2  # load generator processes for concurrency > 1
    soak_connections: int = 10


QUICK = Settings(
    rounds=3, ka_n=300, large_n=60, newconn_n=40, sse_streams=4, sse_batches=1,
    tput_seconds=1.5, soak_requests=5_000, soak_segments=2, idle_seconds=10,
)  # fmt: skip
FULL = Settings(
    rounds=5, ka_n=2000, large_n=300, newconn_n=200, sse_streams=4, sse_batches=3,
    tput_seconds=5, soak_requests=100_000, soak_segments=5, idle_seconds=60,
)  # fmt: skip


@dataclass(frozen=True)
class Op:
    key: str
    specs: Callable[[dict[str, Any], Settings], list[dict[str, Any]]]
    summarize: Callable[[list[dict[str, Any]], Settings], dict[str, Any]]
    throughput: bool = False


def _ms(ns: float) -> float:
    return ns / 1e6


def _latency_summary(results: list[dict[str, Any]], _: Settings) -> dict[str, Any]:
    samples = [x for r in results for x in r["latency_ns"]]
    return {
        "p50_ms": _ms(report.percentile(samples, 50)),
        "p99_ms": _ms(report.percentile(samples, 99)),
        "mean_ms": _ms(sum(samples) / len(samples)) if samples else None,
        "n": len(samples),
        "errors": sum(r["errors"] for r in results),
    }


def _newconn_summary(results: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Latency, plus the median of each step (tcp, CONNECT answered, TLS, first request)."""
    summary = _latency_summary(results, settings)
    for phase in ("tcp", "connect", "tls", "request"):
        values = [x for r in results for x in r.get("phases_ns", {}).get(phase, [])]
        if values:
            summary[f"{phase}_p50_ms"] = _ms(report.percentile(values, 50))
    return summary


def _sse_summary(results: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    ttfc = [x for r in results for x in r["ttfc_ns"]]
    delays = [x for r in results for x in r["chunk_delay_ns"]]
    streams = sum(r["requests"] for r in results)
    return {
        "ttfc_p50_ms": _ms(report.percentile(ttfc, 50)),
        "delay_p50_ms": _ms(report.percentile(delays, 50)),
        "delay_p99_ms": _ms(report.percentile(delays, 99)),
        "delay_max_ms": _ms(max(delays)) if delays else None,
        "chunks": len(delays),
        "expected_chunks": streams * (SSE_CHUNKS + 3),
        "errors": sum(r["errors"] for r in results),
    }


def _throughput_summary(results: list[dict[str, Any]], _: Settings) -> dict[str, Any]:
    samples = [x for r in results for x in r["latency_ns"]]
    elapsed = max(r["elapsed_s"] for r in results)
    return {
        "rps": sum(r["requests"] / r["elapsed_s"] for r in results),
        "p50_ms": _ms(report.percentile(samples, 50)),
        "p99_ms": _ms(report.percentile(samples, 99)),
        "client_cpu_pct": 100 * sum(r["client_cpu_s"] for r in results) / elapsed,
        "errors": sum(r["errors"] for r in results),
        "requests": sum(r["requests"] for r in results),
    }


def _throughput_op(conc: int) -> Op:
    def specs(target: dict[str, Any], s: Settings) -> list[dict[str, Any]]:
        procs = 1 if conc == 1 else min(s.client_procs, conc)
        split = [conc // procs + (i < conc % procs) for i in range(procs)]
        return [
            {"op": "throughput", "connections": c, "duration": s.tput_seconds, "target": target}
            for c in split
        ]

    return Op(f"tput_{conc}", specs, _throughput_summary, throughput=True)


OPS = [
    Op(
        "ka_small",
        lambda t, s: [{"op": "latency", "kind": "small", "n": s.ka_n, "target": t}],
        _latency_summary,
    ),
    Op(
        "ka_large",
        lambda t, s: [{"op": "latency", "kind": "large", "n": s.large_n, "target": t}],
        _latency_summary,
    ),
    Op(
        "newconn",
        lambda t, s: [{"op": "newconn", "n": s.newconn_n, "target": t}],
        _newconn_summary,
    ),
    Op(
        "sse",
        lambda t, s: [
            {"op": "sse", "streams": s.sse_streams, "batches": s.sse_batches, "target": t}
        ],
        _sse_summary,
    ),
]


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
        self.args = args
        self.settings = settings
        self.tmp = tmp
        self.worker_log = (tmp / "loadgen.log").open("a")
        self.proxies: list[px.Proxy] = []
        self.upstream: px.Upstream | None = None
        self.raw: dict[str, Any] = {"rounds": [], "notes": [], "missing": {}}
        self.clients_completed = 0

    # --- load generator processes --------------------------------------------------------

    def workers(
        self, specs: list[dict[str, Any]], proxy: px.Proxy, timeout: float = 600
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Run loadgen processes together; returns their results and CPU used meanwhile."""
        procs = [
            subprocess.Popen(
                [px.PYTHON, str(LOADGEN), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.worker_log,
                text=True,
            )
            for spec in specs
        ]
        try:
            for p in procs:
                line = _read_line(p, 120)
                if line.strip() != "READY":
                    raise px.BenchError(f"load generator failed to set up: {line!r} (see log)")
            assert self.upstream is not None
            cpu0 = (proxy.cpu_seconds(), px.cpu_seconds(self.upstream.ps), time.monotonic())
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("GO\n")
                p.stdin.flush()
            results = []
            for p in procs:
                out, _ = p.communicate(timeout=timeout)
                if p.returncode != 0 or not out.strip():
                    raise px.BenchError(f"load generator exited with {p.returncode} (see log)")
                results.append(json.loads(out.strip().splitlines()[-1]))
            wall = time.monotonic() - cpu0[2]
            cpu = {
                "proxy_cpu_pct": 100 * (proxy.cpu_seconds() - cpu0[0]) / wall,
                "upstream_cpu_pct": 100 * (px.cpu_seconds(self.upstream.ps) - cpu0[1]) / wall,
                "wall_s": wall,
            }
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        done = sum(r.get("completed", 0) for r in results)
        proxy.completed += done
        self.clients_completed += done
        return results, cpu

    def run_op(self, op: Op, proxy: px.Proxy) -> dict[str, Any]:
        if not proxy.alive():
            return {"error": "proxy is not running"}
        try:
            results, cpu = self.workers(op.specs(proxy.target(), self.settings), proxy)
        except (px.BenchError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
            self.note(f"{op.key} through {proxy.name} failed: {e}")
            # What a failed client did complete is unknown, so the sensor's event count can
            # no longer be held against an exact number of requests.
            self.raw.setdefault("tally_incomplete", []).append(proxy.name)
            return {"error": str(e)}
        summary = op.summarize(results, self.settings)
        if op.throughput:
            summary["proxy_cpu_pct"] = cpu["proxy_cpu_pct"] if proxy.is_proxy else None
            summary["upstream_cpu_pct"] = cpu["upstream_cpu_pct"]
        if proxy.is_proxy:
            summary["busy_after_s"] = self.settle(proxy)
        return summary

    def settle(self, proxy: px.Proxy, limit_s: float = 30.0, busy_pct: float = 10.0) -> float:
        """Wait until the proxy stops working through a backlog; how long that took.

        A proxy that queues work and finishes it after its clients are done would
        otherwise spend the next column's turn on it, and that column would pay.
        """
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            before = proxy.cpu_seconds()
            time.sleep(0.2)
            if 100 * (proxy.cpu_seconds() - before) / 0.2 < busy_pct:
                break
        return round(time.monotonic() - start - 0.2, 2)

    def note(self, text: str) -> None:
        print(f"  ! {text}", flush=True)
        self.raw["notes"].append(text)

    # --- phases --------------------------------------------------------------------------

    def start(self) -> None:
        certs = make_certs(self.tmp / "certs")
        self.upstream = px.Upstream.start(certs, self.tmp)
        self.proxies.append(px.start_direct(certs, self.upstream))
        only = set(self.args.only.split(",")) if self.args.only else None
        if only is None or "oisp-sensor" in only:
            help_text = px.sensor_help()
            if help_text is None:
                self.raw["missing"]["oisp-sensor"] = "`oisp-sensor record --help` failed"
            else:
                try:
                    sensor = px.start_sensor(
                        certs, self.upstream, self.tmp, help_text,
                        web=not self.args.no_web, loop=self.args.sensor_loop,
                        optimize=self.args.sensor_optimize, sinks=not self.args.sensor_no_sinks,
                        switch_interval=self.args.sensor_switch_interval,
                    )  # fmt: skip
                except px.BenchError as e:
                    self.raw["missing"]["oisp-sensor"] = f"did not start: {e}"
                else:
                    self.proxies.append(sensor)
                    if "--web" not in help_text or "web_missing" in sensor.files:
                        self.note("the sensor's web UI did not listen: measured without it")
                    if self.args.sensor_loop == "asyncio":
                        self.note("sensor run on asyncio's loop (uvloop hidden by a shim)")
                    if self.args.sensor_switch_interval is not None:
                        self.note("experiment: sensor with sys.setswitchinterval("
                                  f"{self.args.sensor_switch_interval})")  # fmt: skip
                    if self.args.sensor_no_sinks:
                        self.note("ablation: sensor without sinks (no JSONL, store, web)")
                    if self.args.sensor_optimize:
                        self.note("sensor run with PYTHONOPTIMIZE=1 (asserts stripped)")
        if only is None or "mitmdump" in only:
            try:
                self.proxies.append(
                    px.start_mitmdump(
                        certs, self.upstream, self.tmp, stream_all=self.args.mitm_stream_all
                    )
                )
            except px.BenchError as e:
                self.raw["missing"]["mitmdump"] = str(e)
        self.raw["proxies_order"] = [p.name for p in self.proxies]
        self.raw["proxies"] = {p.name: {"command": p.command} for p in self.proxies}
        memory: dict[str, Any] = {}
        for p in self.proxies:
            if p.is_proxy:
                memory[p.name] = {"start": p.rss(), "checkpoints": []}
        self.raw["memory"] = memory
        print("warming up", ", ".join(p.name for p in self.proxies), flush=True)
        for p in self.proxies:
            self.run_op(
                Op("warmup", lambda t, s: [{"op": "latency", "n": 100, "target": t}],
                   _latency_summary),
                p,
            )  # fmt: skip
        time.sleep(2)
        for p in self.proxies:
            if p.is_proxy:
                memory[p.name]["idle"] = p.rss()

    def rounds(self) -> None:
        ops = OPS + [_throughput_op(c) for c in self.settings.concurrency]
        for index in range(self.settings.rounds):
            shift = index % len(self.proxies)
            order = self.proxies[shift:] + self.proxies[:shift]
            print(f"round {index + 1}/{self.settings.rounds}: "
                  f"{' → '.join(p.name for p in order)}", flush=True)  # fmt: skip
            results: dict[str, dict[str, Any]] = {}
            for op in ops:
                results[op.key] = {p.name: self.run_op(op, p) for p in order}
                print("  " + _progress(op.key, results[op.key]), flush=True)
            self.raw["rounds"].append(results)

    def soak(self) -> None:
        """soak_requests more through each proxy, interleaved segment by segment."""
        s = self.settings
        targets = [p for p in self.proxies if p.is_proxy and p.alive()]
        if not targets:
            return
        soak: dict[str, Any] = {
            p.name: {"requests": 0, "cpu_s": 0.0, "events_per_s": [], "drain_s": []}
            for p in targets
        }
        tails = {p.name: EventTail(p.files["jsonl"]) for p in targets if "jsonl" in p.files}
        for tail in tails.values():
            tail.poll()
        memory = self.raw["memory"]
        goal = {p.name: p.completed + s.soak_requests for p in targets}
        for p in targets:
            memory[p.name]["checkpoints"].append([p.completed, p.rss()])
        for segment in range(s.soak_segments):
            for p in targets:
                if not p.alive():
                    continue
                left = goal[p.name] - p.completed
                count = max(0, left // (s.soak_segments - segment))
                if count <= 0:
                    continue
                spec = {
                    "op": "throughput",
                    "connections": s.soak_connections,
                    "requests": count,
                    "target": p.target(),
                }
                tail = tails.get(p.name)
                lines0 = tail.lines if tail else 0
                cpu0, t0 = p.cpu_seconds(), time.monotonic()
                try:
                    results, _ = self.workers([spec], p, timeout=3600)
                except (px.BenchError, subprocess.TimeoutExpired, ValueError) as e:
                    self.note(f"soak through {p.name} failed: {e}")
                    self.raw.setdefault("tally_incomplete", []).append(p.name)
                    continue
                t_load = time.monotonic()
                done = sum(r["total_requests"] for r in results)
                if tail:
                    drained_at = tail.drain(expected_responses=p.completed)
                    soak[p.name]["events_per_s"].append((tail.lines - lines0) / (drained_at - t0))
                    soak[p.name]["drain_s"].append(max(0.0, drained_at - t_load))
                soak[p.name]["requests"] += done
                soak[p.name]["cpu_s"] += p.cpu_seconds() - cpu0
                soak[p.name].setdefault("rps", []).append(done / (t_load - t0))
                memory[p.name]["checkpoints"].append([p.completed, p.rss()])
                print(f"  soak {p.name}: {p.completed:,} requests, "
                      f"RSS {p.rss() / 2**20:.1f} MB, {done / (t_load - t0):.0f} req/s",
                      flush=True)  # fmt: skip
        for entry in soak.values():
            if entry["requests"]:
                entry["cpu_per_1000"] = 1000 * entry["cpu_s"] / entry["requests"]
        self.raw["soak"] = soak

    def idle(self) -> None:
        targets = [p for p in self.proxies if p.is_proxy and p.alive()]
        print(f"idle for {self.settings.idle_seconds:.0f} s", flush=True)
        before = {p.name: p.cpu_seconds() for p in targets}
        t0 = time.monotonic()
        time.sleep(self.settings.idle_seconds)
        wall = time.monotonic() - t0
        self.raw["idle"] = {
            p.name: {
                "cpu_pct": 100 * (p.cpu_seconds() - before[p.name]) / wall,
                "rss": p.rss(),
                "seconds": wall,
            }
            for p in targets
        }

    def profile(self, seconds: float) -> None:
        """py-spy on each proxy while 10 clients hammer it; the summary goes in the report."""
        spy = px.PY_SPY if px.PY_SPY.exists() else shutil.which("py-spy")
        if not spy:
            self.note("py-spy not found: pip install py-spy into bench/.venv-mitm")
            return
        out_dir = RESULTS / "profiles"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.raw["meta"]["stamp"]
        profiles = {}
        for p in self.proxies:
            if (
                not p.is_proxy
                or not p.alive()
                or (self.args.profile_only and p.name not in self.args.profile_only)
            ):
                continue  # fmt: skip
            assert p.proc is not None
            base = f"{stamp}-{p.name}-{self.args.profile_load}"
            collapsed = out_dir / f"{base}.collapsed.txt"
            svg = out_dir / f"{base}.svg"
            cmd = [str(spy), "record", "--pid", str(p.proc.pid), "--duration", str(int(seconds)),
                   "--rate", "250", "--nonblocking", "--threads", "--format", "raw",
                   "--output", str(collapsed)]  # fmt: skip
            if self.args.profile_native:
                cmd.append("--native")
            print(f"profiling {p.name} for {seconds:.0f} s: {self.args.profile_load}", flush=True)
            spy_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(1)
            specs = _profile_load(self.args.profile_load, p.target(), seconds + 1)
            with contextlib.suppress(px.BenchError, subprocess.TimeoutExpired):
                self.workers(specs, p)
            out, _ = spy_proc.communicate(timeout=120)
            if not collapsed.exists():
                self.note(f"py-spy on {p.name} failed: {out.decode(errors='replace')[-500:]}")
                continue
            with contextlib.suppress(Exception):
                profile_summary.to_svg(collapsed, svg)
            profiles[f"{p.name}, {PROFILE_LOADS[self.args.profile_load]}"] = {
                "collapsed": str(collapsed.relative_to(px.ROOT)),
                "summary": profile_summary.summarize(collapsed),
            }
        self.raw["profile"] = profiles

    def finish(self) -> None:
        """Stop the sensor (it flushes on SIGINT) and count what it recorded."""
        sensor = next((p for p in self.proxies if p.name == "oisp-sensor"), None)
        if sensor is not None:
            drops = px.sensor_drops(sensor) if sensor.alive() else {}
            exit_status = sensor.stop()
            if "jsonl" in sensor.files:
                self.raw["events"] = count_events(sensor, exit_status)
                self.raw["events"]["status_drops"] = drops
        for p in self.proxies:
            p.stop()
        if self.upstream is not None:
            self.raw["upstream_served"] = self.upstream.stop()
        self.raw["clients_completed"] = self.clients_completed


PROFILE_LOADS = {
    "keepalive": "10 keep-alive clients, 1 KB",
    "newconn": "2 clients, a new connection (CONNECT + TLS) per request",
    "sse": "40 concurrent SSE streams",
    "large": "4 keep-alive clients, 100 KB responses",
}


def _profile_load(kind: str, target: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """The load py-spy watches: two client processes, running for `seconds`."""
    if kind == "newconn":
        spec = {"op": "newconn", "n": 0, "duration": seconds, "target": target}
    elif kind == "sse":
        batches = max(1, int(seconds / 1.1))
        spec = {"op": "sse", "streams": 20, "batches": batches, "stagger_ms": 1, "target": target}
    elif kind == "large":
        spec = {"op": "throughput", "connections": 2, "kind": "large", "duration": seconds,
                "target": target}  # fmt: skip
    else:
        spec = {"op": "throughput", "connections": 5, "duration": seconds, "target": target}
    return [spec, dict(spec)]


class EventTail:
    """Follows the sensor's JSONL file: lines and ai.response events written so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0
        self.responses = 0

    def poll(self) -> int:
        if not self.path.exists():
            return self.lines
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
        self.offset += cut
        self.lines += data.count(b"\n")
        self.responses += data.count(b'"event_type":"ai.response"')
        return self.lines

    def drain(self, expected_responses: int, quiet_s: float = 2.0, limit_s: float = 60) -> float:
        """Wait until every response is written (or nothing moves); when the last one landed."""
        start = last_growth = time.monotonic()
        seen = self.poll()
        while time.monotonic() - start < limit_s:
            if self.responses >= expected_responses:
                return last_growth if self.lines == seen else time.monotonic()
            time.sleep(0.05)
            now_lines = self.poll()
            if now_lines != seen:
                seen, last_growth = now_lines, time.monotonic()
            elif time.monotonic() - last_growth > quiet_s:
                break
        return last_growth


def count_events(sensor: px.Proxy, exit_status: int | None) -> dict[str, Any]:
    import orjson

    out: dict[str, Any] = {"requests_sent": sensor.completed, "sensor_exit": exit_status}
    jsonl = sensor.files.get("jsonl")
    types: Counter[str] = Counter()
    complete = partial = decode_errors = 0
    sample: list[bytes] = []
    seen_types: Counter[str] = Counter()
    if jsonl and jsonl.exists():
        with jsonl.open("rb") as f:
            for line in f:
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    types["<not JSON>"] += 1
                    continue
                kind = event.get("event_type", "?")
                types[kind] += 1
                if seen_types[kind] < 30:
                    seen_types[kind] += 1
                    sample.append(line)
                if kind == "ai.response":
                    if (event.get("confidence") or {}).get("completeness") == "full":
                        complete += 1
                    else:
                        partial += 1
                    decode_errors += "decode_error" in (event.get("attrs") or {})
    out.update(
        jsonl_types=dict(types),
        responses_complete=complete,
        responses_partial=partial,
        decode_errors=decode_errors,
    )
    if sample and VALIDATOR.exists():
        sample_file = sensor.files["jsonl"].with_suffix(".sample.jsonl")
        sample_file.write_bytes(b"".join(sample))
        check = subprocess.run(
            [px.PYTHON, str(VALIDATOR), str(sample_file)], capture_output=True, text=True
        )
        verdict = "valid" if check.returncode == 0 else "INVALID"
        out["validation"] = f"{verdict} ({len(sample)} events) {check.stdout.strip()[-300:]}"
    db = sensor.files.get("db")
    if db and db.exists():
        out["db"] = count_db_rows(db)
    return out


def count_db_rows(db: Path) -> dict[str, int]:
    import sqlite3

    rows: dict[str, int] = {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for table in tables:
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table!r})")}
            if "event_type" in columns:
                for kind, n in conn.execute(
                    f"SELECT event_type, count(*) FROM {table!r} GROUP BY 1"
                ):
                    rows[f"{table}.{kind}"] = n
            else:
                rows[table] = conn.execute(f"SELECT count(*) FROM {table!r}").fetchone()[0]
    return rows


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise px.BenchError(f"load generator not ready after {timeout:.0f} s")
    return proc.stdout.readline()


def _progress(key: str, by_proxy: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, s in by_proxy.items():
        if "error" in s:
            parts.append(f"{name} ERROR")
        elif "rps" in s:
            parts.append(f"{name} {s['rps']:.0f} req/s")
        elif "delay_p99_ms" in s:
            parts.append(f"{name} chunk p50/p99 {s['delay_p50_ms']:.2f}/{s['delay_p99_ms']:.2f} ms")
        else:
            parts.append(f"{name} p50/p99 {s['p50_ms']:.2f}/{s['p99_ms']:.2f} ms")
    return f"{key:9} " + "; ".join(parts)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="~2 minutes instead of ~12")
    add("--rounds", type=int, help="override the number of rounds")
    add("--soak-requests", type=int, help="override the soak size (requests per proxy)")
    add("--idle-seconds", type=float, help="override the idle window")
    add("--only", help="comma list of columns besides direct: oisp-sensor,mitmdump")
    add("--no-web", action="store_true", help="run the sensor without --web")
    add("--mitm-stream-all", action="store_true", help="mitmdump with stream_large_bodies=1")
    add("--profile", type=float, metavar="SECONDS", help="py-spy each proxy under load at the end")
    add("--profile-only", help="comma list of proxies to profile")
    add("--profile-load", choices=sorted(PROFILE_LOADS), default="keepalive",
        help="the load that runs while py-spy records")  # fmt: skip
    add("--profile-native", action="store_true", help="py-spy --native")
    add("--out", type=Path, default=RESULTS, help="where results go")
    add("--tag", default="", help="suffix for the result file names")
    add("--keep-tmp", action="store_true", help="keep the temp dir (logs)")
    add("--render", type=Path, help="re-render a .raw.json and exit")
    experiments = parser.add_argument_group("experiments on the sensor (noted in the report)")
    experiments.add_argument("--sensor-loop", choices=["default", "asyncio"], default="default",
                             help="asyncio: hide uvloop from the sensor")  # fmt: skip
    experiments.add_argument("--sensor-no-sinks", action="store_true",
                             help="no JSONL, no store, no web: what the sinks cost")  # fmt: skip
    experiments.add_argument("--sensor-optimize", action="store_true",
                             help="run the sensor with PYTHONOPTIMIZE=1")  # fmt: skip
    experiments.add_argument("--sensor-switch-interval", type=float, metavar="SECONDS",
                             help="the sensor's GIL switch interval (default 0.005)")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    # Started in the background by a non-interactive shell, SIGINT arrives ignored; restore
    # it so `kill -INT` stops a run cleanly (and the proxies we start inherit the default).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    args = parse_args()
    if args.render:
        text, _ = report.render(json.loads(args.render.read_text()))
        print(text)
        return 0
    settings = QUICK if args.quick else FULL
    overrides = {
        k: v
        for k, v in (
            ("rounds", args.rounds),
            ("soak_requests", args.soak_requests),
            ("idle_seconds", args.idle_seconds),
        )
        if v is not None
    }
    settings = dataclasses.replace(settings, **overrides)
    if args.profile_only:
        args.profile_only = set(args.profile_only.split(","))
    now = dt.datetime.now()
    stamp = now.strftime("%Y-%m-%d-%H%M") + (f"-{args.tag}" if args.tag else "")
    tmp = Path(tempfile.mkdtemp(prefix="oisp-bench-"))
    bench = Bench(args, settings, tmp)
    bench.raw["meta"] = {
        "date": now.strftime("%Y-%m-%d %H:%M"),
        "stamp": stamp,
        "command": shlex.join(["python", "bench/run.py", *sys.argv[1:]]),
        "mode": "quick" if args.quick else "full",
        "machine": px.machine(),
        "versions": px.versions(),
    }
    bench.raw["settings"] = dataclasses.asdict(settings)
    started = time.monotonic()
    try:
        bench.start()
        bench.rounds()
        bench.soak()
        bench.idle()
        if args.profile:
            bench.profile(args.profile)
    except KeyboardInterrupt:
        bench.note("interrupted")
    finally:
        bench.finish()
        bench.worker_log.close()
        for p in bench.proxies:
            if p.log and p.log.exists():
                bench.raw.setdefault("logs_tail", {})[p.name] = px.tail(p.log, 15)
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"temp dir kept: {tmp}")
    bench.raw["meta"]["duration_s"] = round(time.monotonic() - started)
    bench.raw["meta"]["loadavg_end"] = list(__import__("os").getloadavg())
    text, checks = report.render(bench.raw)
    if bench.raw.get("profile"):
        text += "\n" + profile_summary.render(bench.raw["profile"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stamp}.md").write_text(text)
    (args.out / f"{stamp}.raw.json").write_text(json.dumps(bench.raw, indent=1, default=str))
    print()
    print(text)
    print(f"written: {args.out / (stamp + '.md')} (+ .raw.json); "
          f"took {bench.raw['meta']['duration_s']} s")  # fmt: skip
    return 0 if all(c["passed"] is not False for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
