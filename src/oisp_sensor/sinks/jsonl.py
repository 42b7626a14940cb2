"""Append events to a JSON Lines file: one event per line, flushed after every batch.

Optional size-based rotation keeps `FILE.1 … FILE.N` like logrotate; the file is
created owner-only (0600) because events hold prompts. A line is the JSON the
pipeline sealed the event with, so the file holds exactly what every other sink got.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from oisp_sensor.errors import SinkError
from oisp_sensor.events import Event


def encode(event: Event) -> bytes:
    return event.json_bytes() + b"\n"


class JsonlSink:
    name = "jsonl"

    def __init__(self, path: Path, *, rotate_bytes: int = 0, keep: int = 5) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._file: IO[bytes] | None = None
        self._size = 0

    async def start(self) -> None:
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as e:
            raise SinkError(f"cannot open {self.path} for writing: {e.strerror}") from e
        self._file = os.fdopen(fd, "ab")
        self._size = self._file.tell()

    async def write(self, batch: Sequence[Event]) -> None:
        self.write_sync(batch)

    def write_sync(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        if self._file is None:
            self._open()
        assert self._file is not None
        data = b"\n".join([e.json_bytes() for e in batch]) + b"\n"
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self.rotate_bytes and self._size >= self.rotate_bytes:
            self._rotate()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
