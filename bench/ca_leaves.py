"""Local CA costs: creating the CA, issuing a leaf, and the cached lookup the relay does per TLS
connection; plus a full in-memory TLS handshake with a cached leaf for scale.

A new AI host costs one leaf (EC P-256 key + signature + SSLContext); every later
connection to it costs only the cached lookup. Leaves are issued in a worker thread
(`leaf_context_async`), so even the first connection never blocks the event loop.

Run:  .venv/bin/python bench/ca_leaves.py [--leaves 300]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from oisp_sensor.capture.ca import LocalCA
from oisp_sensor.capture.trust import verify_handshake


def timed_ms(fn: object, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(name: str, samples: list[float], unit: str = "ms") -> None:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{name:<38} median {p50:8.3f} {unit}   p95 {p95:8.3f} {unit}   n={len(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        summary(
            "CA creation (EC P-256, 82 names)",
            timed_ms(lambda i: LocalCA.create(base / f"ca{i}"), 20),
        )
        ca = LocalCA.load_or_create(base / "ca")
        summary("CA load from disk", timed_ms(lambda i: LocalCA.load(base / "ca"), 50))
        summary(
            "leaf: sign only (key + certificate)",
            timed_ms(lambda i: ca._sign_leaf(f"s{i}.openai.azure.com"), args.leaves),
        )
        summary(
            "leaf: issue (sign + SSLContext)",
            timed_ms(lambda i: ca.leaf_context(f"l{i}.openai.azure.com"), args.leaves),
        )
        ca.leaf_context("api.openai.com")
        n = 200_000
        t = time.perf_counter()
        for _ in range(n):
            ca.leaf_context("api.openai.com")
        print(f"{'leaf: cached lookup':<38} {(time.perf_counter() - t) / n * 1e6:8.2f} µs")
        client = ssl.create_default_context(cafile=str(ca.cert_path))
        server = ca.leaf_context("api.openai.com")
        summary(
            "TLS 1.3 handshake, cached leaf (memory)",
            timed_ms(lambda i: verify_handshake(server, "api.openai.com", client), 200),
        )


if __name__ == "__main__":
    main()
