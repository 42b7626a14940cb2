"""What one GIL hand-off costs the relay's thread while another thread computes.

The sensor relays on its own thread and decodes on the main thread (DESIGN.md §1);
both need the GIL. This measures the mechanism alone, without the sensor: a uvloop
echo protocol on a thread (the relay's shape), a blocking ping from the main thread,
and optionally a third thread spinning in pure Python (the decoder's shape). Each
round trip needs the GIL twice: the echo thread's callback, then the pinger's return.

    .venv/bin/python bench/gil_handoff.py            # switch intervals 5, 0.2, 0.05 ms
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import threading
import time

import uvloop


def measure(interval_s: float, busy: bool, pings: int) -> tuple[float, float]:
    sys.setswitchinterval(interval_s)
    ours, theirs = socket.socketpair()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    def relay_thread() -> None:
        loop = uvloop.new_event_loop()

        async def serve() -> None:
            await loop.create_connection(Echo, sock=theirs)
            await asyncio.Event().wait()

        loop.run_until_complete(serve())

    def decoder_thread() -> None:
        n = 0
        while True:
            n += 1

    threading.Thread(target=relay_thread, daemon=True).start()
    if busy:
        threading.Thread(target=decoder_thread, daemon=True).start()
    time.sleep(0.2)
    times = []
    for _ in range(pings):
        start = time.perf_counter()
        ours.send(b"x")
        ours.recv(16)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3, times[int(len(times) * 0.99)] * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument(
        "--one", nargs=2, metavar=("INTERVAL_S", "idle|busy"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        p50, p99 = measure(float(args.one[0]), args.one[1] == "busy", args.pings)
        print(f"{p50:.3f} {p99:.3f}")
        return 0
    print("| switch interval | other thread | round trip p50 (ms) | p99 (ms) |")
    print("| ---: | --- | ---: | ---: |")
    for interval in (0.005, 0.0002, 0.00005):
        for mode in ("idle", "busy"):
            # One process per cell: the spinning thread cannot be stopped cleanly.
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--pings",
                    str(args.pings),
                    "--one",
                    str(interval),
                    mode,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            print(f"| {interval * 1e3:g} ms | {mode} | {out[0]} | {out[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
