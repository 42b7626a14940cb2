"""ULID event ids: 48-bit millisecond time + 80 random bits, Crockford base32.

Time-ordered ids let the store and the feed sort by id alone.
"""

from __future__ import annotations

import os

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(ts_ns: int) -> str:
    """A ULID whose time part is the capture time, not the time of decoding."""
    value = ((ts_ns // 1_000_000) & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
