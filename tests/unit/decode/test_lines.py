"""LineBuffer: the unterminated line between reads, joined once, or skipped when too long."""

from __future__ import annotations

from oisp_sensor.decode.lines import LineBuffer


def test_a_line_in_many_reads_comes_out_whole_from_its_start() -> None:
    buf = LineBuffer()
    assert buf._line_start(b"ab", 100) == b""
    assert buf._line_start(b"cd", 100) == b""
    assert buf._line_start(b"e\nf", 100) == b"abcde\nf"
    assert buf._forget() == b""


def test_an_oversized_line_is_skipped_to_its_end_and_counted() -> None:
    buf = LineBuffer()
    buf._hold(b"x" * 8, 10)
    assert buf._line_start(b"y" * 8, 10) == b""  # 16 > 10: dropped, now skipping
    assert buf.oversized == 1
    assert buf._line_start(b"zz", 10) == b""  # still the same line
    assert buf._line_start(b"z\nnext", 10) == b"next"
    assert buf._forget() == b""


def test_forget_returns_the_line_without_its_newline() -> None:
    buf = LineBuffer()
    buf._hold(b"last", 100)
    assert buf._forget() == b"last"
    assert buf._forget() == b""
