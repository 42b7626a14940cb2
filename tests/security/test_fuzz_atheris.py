"""A short coverage-guided (atheris/libFuzzer) run of every fuzz target, inside the suite.

The long run, and how to reproduce a crash, are in fuzz/README.md; this keeps the
harnesses working and gives every CI run a few thousand fresh inputs per target.
`OISP_ATHERIS_SECONDS` sets the total budget (default 20 s, split across targets).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

try:
    import atheris  # noqa: F401
except ImportError:  # pragma: no cover - depends on the platform
    pytestmark = pytest.mark.skip(
        reason="atheris is not installed (it has Linux wheels only); "
        "the hypothesis fuzz tests in tests/security still run"
    )


def test_a_short_atheris_run_of_every_target_finds_nothing(tmp_path: Path) -> None:
    seconds = os.environ.get("OISP_ATHERIS_SECONDS", "20")
    done = subprocess.run(
        [sys.executable, "fuzz/run.py", "--seconds", seconds, "--artifacts", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=int(seconds) + 90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # no crash files
    runs = dict(re.findall(r"^(\w+)\s+\d+ s\s+([\d,]+) runs", done.stdout, re.M))
    assert set(runs) == {"decoder", "bridge", "config", "redact", "detectors"}, done.stdout
    assert all(int(n.replace(",", "")) > 50 for n in runs.values()), done.stdout
