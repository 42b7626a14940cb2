"""Run the atheris (libFuzzer) harnesses: coverage-guided fuzzing of every input door.

    python fuzz/run.py --seconds 20                 # all targets, 20 s in total (CI)
    python fuzz/run.py --per-target 600 --jobs 2    # the long run (fuzz/README.md)
    python fuzz/run.py --target decoder --per-target 60 --corpus fuzz/.corpus
    python fuzz/run.py --replay crash-1234abcd --target decoder

Each target runs in its own process (libFuzzer exits when it is done or has found
a crash), starting from the seed corpus of fuzz/targets.py plus whatever --corpus
holds. A crash is written as `crash-<sha1>` under --artifacts, and this script
exits non-zero; replay it with --replay to get the Python traceback. The summary
line per target (executions, coverage, crashes) is what fuzz/README.md records.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

TARGET_NAMES = ("decoder", "bridge", "config", "redact", "detectors")


def worker(name: str, libfuzzer_args: list[str]) -> None:
    """Inside the child: instrument our code, then hand control to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["oisp_sensor"]):
        from fuzz import targets

    target = targets.TARGETS[name][0]
    atheris.Setup([sys.argv[0], *libfuzzer_args], target)
    atheris.Fuzz()


def run_target(name: str, seconds: int, corpus: Path | None, artifacts: Path) -> dict[str, object]:
    from fuzz import targets

    with tempfile.TemporaryDirectory(prefix=f"oisp-fuzz-{name}-") as tmp:
        seeds = Path(tmp) / "seeds"
        targets.write_seeds(name, seeds)
        dirs = [str(corpus / name)] if corpus else []
        if corpus:
            (corpus / name).mkdir(parents=True, exist_ok=True)
        work = Path(tmp) / "work"
        work.mkdir()
        args = [
            f"-max_total_time={seconds}",
            f"-artifact_prefix={artifacts}/{name}-",
            "-rss_limit_mb=2048",
            "-timeout=20",  # one input taking longer than this is a stall, and a finding
            "-max_len=65536",
            "-print_final_stats=1",
            *dirs,
            str(work),
            str(seeds),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=seconds + 300,
        )
        log = done.stderr
    stats = {
        "target": name,
        "seconds": round(time.monotonic() - started),
        "runs": _stat(log, r"stat::number_of_executed_units:\s*(\d+)"),
        "coverage": _last(log, r"cov: (\d+)"),
        "corpus": _last(log, r"corp: (\d+)"),
        "exit": done.returncode,
        "crashes": sorted(str(p) for p in artifacts.glob(f"{name}-*")),
    }
    if done.returncode != 0:
        tail = "\n".join(log.splitlines()[-40:])
        print(f"--- {name}: libFuzzer exited {done.returncode}\n{tail}", file=sys.stderr)
    return stats


def _stat(log: str, pattern: str) -> int | None:
    m = re.search(pattern, log)
    return int(m.group(1)) if m else None


def _last(log: str, pattern: str) -> int | None:
    found = re.findall(pattern, log)
    return int(found[-1]) if found else None


def replay(name: str, path: Path) -> None:
    """Run one input through a target without atheris, for a plain traceback."""
    from fuzz import targets

    targets.TARGETS[name][0](path.read_bytes())
    print(f"{path}: no failure")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        sep = sys.argv.index("--")
        worker(sys.argv[2], sys.argv[sep + 1 :])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", action="append", choices=TARGET_NAMES)
    ap.add_argument("--seconds", type=int, help="total budget, split across the targets")
    ap.add_argument("--per-target", type=int, help="seconds for each target")
    ap.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time")
    ap.add_argument("--corpus", type=Path, help="keep the grown corpus here, per target")
    ap.add_argument("--artifacts", type=Path, default=ROOT / "fuzz" / "artifacts")
    ap.add_argument("--replay", type=Path, help="run one input (e.g. a crash file) and exit")
    args = ap.parse_args()
    names = args.target or list(TARGET_NAMES)
    if args.replay:
        replay(names[0], args.replay)
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris; Linux wheels only)", file=sys.stderr)
        return 2
    per_target = args.per_target or max(5, (args.seconds or 20 * len(names)) // len(names))
    args.artifacts.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # threads only wait for processes
        futures = [
            pool.submit(run_target, name, per_target, args.corpus, args.artifacts) for name in names
        ]
        results = [f.result() for f in futures]
    failed = False
    for r in results:
        crashes = r["crashes"]
        print(
            f"{r['target']:<10} {r['seconds']:>5} s  {r['runs'] or 0:>10,} runs  "
            f"cov {r['coverage']}  corpus {r['corpus']}  "
            f"crashes {len(crashes) if isinstance(crashes, list) else '?'}  exit {r['exit']}"
        )
        failed = failed or bool(crashes) or r["exit"] != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
