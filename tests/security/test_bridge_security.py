"""The bridge socket carries TLS plaintext: only its owner may connect, from the first instant."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from oisp_sensor.capture import bridge as bridge_mod
from oisp_sensor.capture.bridge import Bridge
from oisp_sensor.counters import Counters

pytestmark = pytest.mark.skipif(os.name != "posix", reason="unix sockets and file modes")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="oisp-s-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_socket_is_0600_even_with_a_permissive_umask(sock_dir: Path) -> None:
    old = os.umask(0)
    try:
        bridge = Bridge(sock_dir / "oisp.sock", lambda raw: True, Counters())
        await bridge.start()
    finally:
        os.umask(old)
    try:
        st = os.lstat(sock_dir / "oisp.sock")
        assert stat.S_ISSOCK(st.st_mode)
        assert st.st_mode & 0o777 == 0o600
        assert st.st_uid == os.getuid()
    finally:
        await bridge.close()


async def test_socket_is_never_reachable_with_a_wider_mode(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment the socket appears at its public path it is already 0600, and
    before that it lives in a directory only its owner can enter."""
    seen: list[tuple[int, int]] = []
    real_rename = os.rename

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(
            (os.stat(Path(src).parent).st_mode & 0o777, os.lstat(src).st_mode & 0o777),
        )
        real_rename(src, dst)

    monkeypatch.setattr(bridge_mod.os, "rename", spy)
    old = os.umask(0)
    try:
        bridge = Bridge(sock_dir / "oisp.sock", lambda raw: True, Counters())
        await bridge.start()
    finally:
        os.umask(old)
    await bridge.close()
    assert seen == [(0o700, 0o600)]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root, to try connecting as a different user",
)
async def test_another_user_cannot_connect(sock_dir: Path) -> None:
    os.chmod(sock_dir, 0o711)  # others may traverse the directory, as in /tmp
    path = sock_dir / "oisp.sock"
    bridge = Bridge(path, lambda raw: True, Counters())
    await bridge.start()
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(path)!r})\n"
        "except PermissionError:\n"
        "    sys.exit(13)\n"
        "sys.exit(0)\n"
    )
    try:
        # A plain interpreter outside the venv: "nobody" cannot read /root.
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        result = subprocess.run([python, "-c", probe], user="nobody", check=False)
    finally:
        await bridge.close()
    assert result.returncode == 13, "a different user must get EACCES"
