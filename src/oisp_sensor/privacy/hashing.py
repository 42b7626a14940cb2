"""Keyed hashing: stable on this machine, meaningless anywhere else.

A plain SHA-256 of an API key can be checked against a guess; an HMAC with a local
secret cannot. One secret (32 random bytes, file mode 0600, created on first run)
keys `key_hash`, `content_hash`, `system_prompt_hash`, `arguments_hash` and the
redaction placeholders, so equal values correlate without being revealed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from oisp_sensor.paths import data_dir, write_private

PREFIX = "hmac-sha256:"


class KeyedHasher:
    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("hash key must be at least 16 bytes")
        # The keyed state is computed once and copied per value: half the cost of
        # hmac.digest, which looks the hash up and re-keys on every call (~6 per request).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    @classmethod
    def from_file(cls, path: Path | None = None) -> KeyedHasher:
        """The machine's secret, created on first use."""
        path = path or data_dir() / "hash.key"
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = os.urandom(32)
            write_private(path, key)
        return cls(key)

    def digest(self, value: str | bytes) -> str:
        """Hex digest (128 bits), without the prefix."""
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        h = self._keyed.copy()
        h.update(data)
        return h.hexdigest()[:32]

    def __call__(self, value: str | bytes) -> str:
        return PREFIX + self.digest(value)
