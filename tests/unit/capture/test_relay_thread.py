"""The relay on its own thread: captures reach the main loop in order, overflow is flagged."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from oisp_sensor.capture.relay import Submit
from oisp_sensor.capture.relay_thread import RelayThread
from oisp_sensor.events import CaptureKind, RawCapture


class FakeRelay:
    """Stands in for Relay: remembers its submit and the thread it was started on."""

    def __init__(self, submit: Submit) -> None:
        self.submit = submit
        self.thread: threading.Thread | None = None
        self.closed_on: threading.Thread | None = None

    async def start(self) -> None:
        self.thread = threading.current_thread()

    async def close(self, grace_s: float = 1.0) -> None:
        self.closed_on = threading.current_thread()
        # What the real relay does on close: the last records of every connection.
        self.submit(capture(999, CaptureKind.CONN_CLOSE, conn="a"))


def capture(n: int, kind: CaptureKind = CaptureKind.SSL_WRITE, conn: str = "a") -> RawCapture:
    return RawCapture(kind=kind, timestamp_ns=n, data=b"%d" % n, pid=1, conn_id=conn)


async def test_captures_arrive_in_order_on_the_main_loop() -> None:
    main = threading.current_thread()
    got: list[tuple[RawCapture, threading.Thread]] = []

    def deliver(raw: RawCapture) -> bool:
        got.append((raw, threading.current_thread()))
        return True

    runner = RelayThread(FakeRelay, deliver)  # type: ignore[arg-type]
    relay: Any = await runner.start()
    assert relay.thread is not main
    assert runner.loop is not None

    def produce() -> None:
        for i in range(1000):
            relay.submit(capture(i))

    runner.loop.call_soon_threadsafe(produce)
    for _ in range(200):
        if len(got) == 1000:
            break
        await asyncio.sleep(0.01)
    await runner.close(0.1)
    assert relay.closed_on is relay.thread  # closed on its own loop
    assert [raw.timestamp_ns for raw, _ in got] == [*range(1000), 999]
    assert got[-1][0].kind is CaptureKind.CONN_CLOSE  # delivered even though it came last
    assert {thread for _, thread in got} == {main}


async def test_overflow_is_counted_and_the_next_capture_flagged() -> None:
    """Past the bound a capture is dropped; its connection's next capture says so."""
    got: list[RawCapture] = []
    drops: list[int] = []

    def deliver(raw: RawCapture) -> bool:
        got.append(raw)
        return True

    runner = RelayThread(FakeRelay, deliver, limit=4, on_drop=drops.append)  # type: ignore[arg-type]
    runner._main = asyncio.get_running_loop()  # as start() would; no thread needed here
    # The relay thread hands over six captures before the main loop gets to drain.
    accepted = [runner._handoff(capture(i, conn="a" if i < 5 else "b")) for i in range(6)]
    assert accepted == [True, True, True, True, False, False]
    runner._drain()
    assert [raw.timestamp_ns for raw in got] == [0, 1, 2, 3]
    assert drops == [2]
    # The next captures of the connections that lost bytes are flagged, once each.
    runner._handoff(capture(6, conn="a"))
    runner._handoff(capture(7, conn="b"))
    runner._handoff(capture(8, conn="b"))
    runner._drain()
    assert [(raw.timestamp_ns, raw.gap_before) for raw in got[4:]] == [
        (6, True),
        (7, True),
        (8, False),
    ]


async def test_a_backlogged_pipeline_slows_the_relay_instead_of_losing_captures() -> None:
    """While the pipeline says it is backlogged, each hand-off waits; nothing is dropped."""
    got: list[RawCapture] = []
    backlogged = [False]
    waits: list[None] = []

    def deliver(raw: RawCapture) -> bool:
        got.append(raw)
        return True

    runner = RelayThread(
        FakeRelay,  # type: ignore[arg-type]
        deliver,
        backlogged=lambda: backlogged[0],
        on_backoff=lambda: waits.append(None),
    )
    runner._main = asyncio.get_running_loop()
    assert runner._handoff(capture(0))
    assert waits == []  # no backlog: full speed
    backlogged[0] = True
    for i in range(1, 6):
        assert runner._handoff(capture(i))
    assert len(waits) == 5
    backlogged[0] = False
    assert runner._handoff(capture(6))
    assert len(waits) == 5
    runner._drain()
    assert [raw.timestamp_ns for raw in got] == list(range(7))
    assert not any(raw.gap_before for raw in got)


async def test_captures_are_collected_in_rounds_that_stop_when_the_relay_is_quiet() -> None:
    """The main loop takes captures every `handoff_s`, not once each; idle, no timer runs."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    def deliver(raw: RawCapture) -> bool:
        arrivals.append(loop.time())
        return True

    runner = RelayThread(FakeRelay, deliver, handoff_s=0.05)  # type: ignore[arg-type]
    relay: Any = await runner.start()
    assert runner.loop is not None
    relay_loop = runner.loop

    def produce(i: int = 0) -> None:  # 40 captures, 5 ms apart: ~200 ms of traffic
        relay.submit(capture(i))
        if i < 39:
            relay_loop.call_later(0.005, produce, i + 1)

    relay_loop.call_soon_threadsafe(produce)
    for _ in range(300):
        if len(arrivals) == 40 and not runner._scheduled:
            break
        await asyncio.sleep(0.01)
    assert len(arrivals) == 40
    # A round delivers its captures back to back; rounds are ~50 ms apart.
    rounds = 1 + sum(1 for a, b in itertools.pairwise(arrivals) if b - a > 0.02)
    # ~200 ms of traffic in 50 ms rounds: a handful, however the threads were scheduled.
    assert 2 <= rounds <= 8, arrivals
    assert not runner._scheduled  # quiet again: no round is pending while idle

    relay_loop.call_soon_threadsafe(relay.submit, capture(100))  # traffic resumes
    for _ in range(100):
        if len(arrivals) == 41:
            break
        await asyncio.sleep(0.01)
    assert len(arrivals) == 41
    await runner.close(0.1)
