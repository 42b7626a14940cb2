"""The processes under test: the upstream, oisp-sensor, mitmdump — start, watch, stop.

Each proxy runs in its own process with its own state (an isolated OISP_DATA_DIR,
an isolated mitmproxy confdir), so nothing of the user's is read or changed, and
the harness can read a proxy's CPU time and resident memory with psutil on its pid.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
SENSOR_BIN = Path(sys.executable).with_name("oisp-sensor")
MITM_VENV = BENCH / ".venv-mitm"
MITMDUMP = MITM_VENV / "bin" / "mitmdump"
PY_SPY = MITM_VENV / "bin" / "py-spy"
AI_HOST = "api.openai.com:443"


class BenchError(Exception):
    """Something the harness needs did not work; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[Any] | None, log: Path | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before listening\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s\n{tail(log)}")


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(proc: psutil.Process | None) -> float:
    """User + system CPU of the process and its children (a sensor may spawn helpers)."""
    total = 0.0
    for p in _tree(proc) if proc else []:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_bytes(proc: psutil.Process | None) -> int:
    total = 0
    for p in _tree(proc) if proc else []:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


@dataclass
class Upstream:
    proc: subprocess.Popen[str]
    port: int
    log: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    @classmethod
    def start(cls, certs: dict[str, Path], tmp: Path) -> Upstream:
        log = tmp / "upstream.log"
        proc = subprocess.Popen(
            [
                PYTHON,
                str(BENCH / "upstream.py"),
                "--cert-chain",
                str(certs["chain"]),
                "--key",
                str(certs["key"]),
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise BenchError(f"upstream did not start: {line!r}\n{tail(log)}")
        return cls(proc, int(line.split()[1]), log)

    def stop(self) -> dict[str, int]:
        """Stop it and return what it served, to cross-check the clients' tallies."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return {}
        for line in out.splitlines():
            if line.startswith("SERVED "):
                import json

                served: dict[str, int] = json.loads(line[7:])
                return served
        return {}


@dataclass
class Proxy:
    """One column of the table: direct (no proxy), oisp-sensor or mitmdump."""

    name: str
    ca: Path
    upstream_port: int
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    log: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    command: str = ""
    env: dict[str, str] | None = None  # what it was started with (the sensor's data dir)
    completed: int = 0  # requests the clients completed through it (warm-ups included)
    ps: psutil.Process | None = None

    def __post_init__(self) -> None:
        if self.proc is not None:
            self.ps = psutil.Process(self.proc.pid)

    @property
    def is_proxy(self) -> bool:
        return self.proc is not None

    def target(self) -> dict[str, Any]:
        """What bench/loadgen.py needs to reach api.openai.com this way."""
        spec: dict[str, Any] = {"upstream": ["127.0.0.1", self.upstream_port], "ca": str(self.ca)}
        if self.port is not None:
            spec["proxy"] = ["127.0.0.1", self.port]
        return spec

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.ps)

    def rss(self) -> int:
        return rss_bytes(self.ps)

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGINT (a sensor flushes its sinks on it), then SIGTERM, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        return stop_process(self.proc, timeout)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 60) -> int | None:
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0)):
        proc.send_signal(sig)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait(10)
    return None


def start_direct(certs: dict[str, Path], upstream: Upstream) -> Proxy:
    return Proxy("direct", ca=certs["ca"], upstream_port=upstream.port)


def start_mitmdump(
    certs: dict[str, Path], upstream: Upstream, tmp: Path, *, stream_all: bool = False
) -> Proxy:
    if not MITMDUMP.exists():
        raise BenchError(
            f"{MITMDUMP} not found: python3 -m venv {MITM_VENV} && "
            f"{MITM_VENV}/bin/pip install mitmproxy py-spy"
        )
    confdir = tmp / "mitmproxy"
    confdir.mkdir()
    port = free_port()
    log = tmp / "mitmdump.log"
    cmd = [
        str(MITMDUMP), "-q", "--mode", "regular",
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir}",
        "--set", f"ssl_verify_upstream_trusted_ca={certs['ca']}",
        "-s", str(BENCH / "mitm_addon.py"),
        "--set", f"bench_connect_to={AI_HOST}=127.0.0.1:{upstream.port}",
    ]  # fmt: skip
    if stream_all:
        cmd += ["--set", "stream_large_bodies=1"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log, 60)
        ca = confdir / "mitmproxy-ca-cert.pem"
        _wait_for_file(ca, 10)
    except BenchError:
        stop_process(proc, 5)
        raise
    return Proxy(
        "mitmdump", ca=ca, upstream_port=upstream.port, proc=proc, port=port, log=log,
        command=" ".join(cmd),
    )  # fmt: skip


def sensor_help() -> str | None:
    """`oisp-sensor record --help`, or None while the command does not exist yet."""
    if not SENSOR_BIN.exists():
        return None
    try:
        out = subprocess.run(
            [str(SENSOR_BIN), "record", "--help"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return None
    return out.stdout if out.returncode == 0 else None


def start_sensor(
    certs: dict[str, Path],
    upstream: Upstream,
    tmp: Path,
    help_text: str,
    *,
    web: bool = True,
    loop: str = "default",
    optimize: bool = False,
    sinks: bool = True,
    switch_interval: float | None = None,
) -> Proxy:
    """`oisp-sensor record` with the default sinks on: JSONL, SQLite store, web (if built).

    loop="asyncio" hides uvloop from the sensor (bench/shims/no_uvloop), for comparing
    event loops; "default" runs whatever the CLI picks. optimize runs it as `python -O`.
    sinks=False is an ablation (no JSONL, no store, no web) to see what the sinks cost.
    """
    data = tmp / "oisp-data"
    env = dict(os.environ)
    env.update(
        OISP_DATA_DIR=str(data),
        OISP_CONFIG_DIR=str(tmp / "oisp-config"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("OISP_CONFIG", None)
    if optimize:
        env["PYTHONOPTIMIZE"] = "1"  # python -O: asserts stripped
    if switch_interval is not None:
        env["BENCH_SWITCH_INTERVAL_S"] = str(switch_interval)
        shim = str(BENCH / "shims" / "switch_interval")
        env["PYTHONPATH"] = shim + os.pathsep + env.get("PYTHONPATH", "")
    if loop == "asyncio":
        shim = str(BENCH / "shims" / "no_uvloop")
        env["PYTHONPATH"] = shim + os.pathsep + env.get("PYTHONPATH", "")
    ca = _sensor_ca(env)
    port = free_port()
    jsonl = tmp / "oisp-events.jsonl"
    db = tmp / "oisp-events.db"
    log = tmp / "oisp-sensor.log"
    cmd = [
        str(SENSOR_BIN), "record",
        "--proxy-port", str(port), "--bind", "127.0.0.1",
        "--connect-to", f"{AI_HOST}=127.0.0.1:{upstream.port}",
        "--upstream-ca", str(certs["ca"]),
    ]  # fmt: skip
    options = set(re.findall(r"--[a-z][a-z-]+", help_text))
    if not sinks:  # ablation: relay + decoding only, nothing written anywhere
        cmd += ["--no-db"] * ("--no-db" in options)
        web = False
        if "--no-web" in options:
            cmd.append("--no-web")
    else:
        cmd += ["--output", str(jsonl)]
    if sinks and "--db" in options:
        cmd += ["--db", str(db)]
    if "--socket" in options:
        cmd += ["--socket", str(tmp / "oisp.sock")]
    web_port = None
    if web and "--web" in options:
        web_port = free_port()
        cmd += ["--web", "--port", str(web_port)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, proc, log, 60)
    except BenchError:
        stop_process(proc, 5)
        raise
    files = {"jsonl": jsonl, "db": db, "data": data} if sinks else {"data": data}
    if web_port:
        try:
            wait_for_port(web_port, proc, log, 15)
            files["web"] = Path(str(web_port))
        except BenchError:
            if proc.poll() is not None:
                raise  # the sensor died; the caller reports the log
            files["web_missing"] = Path(str(web_port))
    return Proxy(
        "oisp-sensor", ca=ca, upstream_port=upstream.port, proc=proc, port=port, log=log,
        files=files, command=" ".join(cmd), env=env,
    )  # fmt: skip


def sensor_drops(proxy: Proxy) -> dict[str, int]:
    """Drop counters from `oisp-sensor status --json` (sink overflow, capture overflow)."""
    try:
        out = subprocess.run(
            [str(SENSOR_BIN), "status", "--json"],
            capture_output=True, text=True, env=proxy.env, timeout=60,
        )  # fmt: skip
        import json

        state = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, int] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, int) and "drop" in str(key):
                    found[str(key)] = found.get(str(key), 0) + value
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(state)
    return found


def _sensor_ca(env: dict[str, str]) -> Path:
    """Create the sensor's CA in the isolated data dir and return the certificate's path."""
    init = subprocess.run(
        [str(SENSOR_BIN), "ca", "init"], capture_output=True, text=True, env=env, timeout=60
    )
    out = subprocess.run(
        [str(SENSOR_BIN), "ca", "path"], capture_output=True, text=True, env=env, timeout=60
    )
    for line in reversed(out.stdout.splitlines()):
        candidate = Path(line.strip())
        if candidate.suffix == ".pem" and candidate.exists():
            return candidate
    fallback = Path(env["OISP_DATA_DIR"]) / "ca" / "ca.pem"
    if fallback.exists():
        return fallback
    raise BenchError(f"no sensor CA after `ca init`: {init.stderr or init.stdout}{out.stderr}")


def _wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not appear")
        time.sleep(0.05)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name, cmd in (
        ("oisp-sensor", [str(SENSOR_BIN), "--version"]),
        ("mitmproxy", [str(MITMDUMP), "--version"]),
    ):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"(\d+\.\d+[\w.]*)", out)
        if match:
            found[name] = match.group(1)
    for module in ("uvloop", "psutil"):
        with contextlib.suppress(ImportError):
            found[module] = __import__(module).__version__
    return found


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "kernel": platform.release(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": os.getloadavg(),
    }
