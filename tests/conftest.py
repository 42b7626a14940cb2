"""Test-wide isolation: no test reads or writes the user's real config or data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from oisp_sensor.privacy.hashing import KeyedHasher

TEST_KEY = b"oisp-sensor-test-hash-key-32byte"


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    base = tmp_path_factory.mktemp("oisp-home")
    for key in list(os.environ):
        if key.startswith("OISP_") and key != "OISP_EVENTS_ARCHIVE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("OISP_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("OISP_CONFIG_DIR", str(base / "config"))
    yield


@pytest.fixture
def hasher() -> KeyedHasher:
    return KeyedHasher(TEST_KEY)


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["OISP_DATA_DIR"])
