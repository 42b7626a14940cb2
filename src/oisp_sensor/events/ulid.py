"""ULID event ids: 48-bit millisecond time + 80 random bits, Crockford base32.

Time-ordered ids let the store and the feed sort by id alone.
"""

from __future__ import annotations

import os

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 digits per 10 bits: 13 lookups per id instead of 26 shifts (one per event).
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))  # 26 digits = 130 bits, the top two always 0


def new_ulid(ts_ns: int) -> str:
    """A ULID whose time part is the capture time, not the time of decoding."""
    value = ((ts_ns // 1_000_000) & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
