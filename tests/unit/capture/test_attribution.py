"""Process attribution with real sockets held by a real subprocess."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from oisp_sensor.capture.attribution import Attributor, ProcessInfo

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the /proc and sock_diag paths are Linux's"
)

# A child that connects to PORT and then waits until its stdin closes.
CLIENT = (
    "import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])));"
    " print(s.getsockname()[1], flush=True); sys.stdin.read()"
)


@contextmanager
def client_process(
    host: str, family: socket.AddressFamily
) -> Iterator[tuple[subprocess.Popen[str], tuple, tuple]]:  # type: ignore[type-arg]
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        port = server.getsockname()[1]
        with subprocess.Popen(
            [sys.executable, "-c", CLIENT, host, str(port), "marker-arg"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            proc.stdout.readline()
            conn, peer = server.accept()
            try:
                yield proc, peer, conn.getsockname()
            finally:
                conn.close()
                proc.stdin.close()
                proc.wait(10)


def assert_is(info: ProcessInfo | None, proc: subprocess.Popen[str]) -> None:
    assert info is not None
    assert info.pid == proc.pid
    assert info.ppid == os.getpid()
    assert info.exe == os.path.realpath(sys.executable)
    assert info.cmdline is not None and info.cmdline.endswith("marker-arg")
    assert info.name and info.name.startswith("python")
    assert info.uid == os.getuid()
    assert info.user == pwd.getpwuid(os.getuid()).pw_name
    meta = info.metadata()
    assert meta["comm"] == info.name and meta["attribution"] == "socket_inode"


@pytest.mark.parametrize(
    ("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
)
def test_lookup_finds_the_subprocess(host: str, family: socket.AddressFamily) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 loopback")
    attributor = Attributor()
    with client_process(host, family) as (proc, peer, ours):
        info, located = attributor.quick(peer, ours)
        assert info is None  # never seen before: the quick path cannot know it
        assert located is not None
        assert_is(attributor.lookup(peer, ours, located), proc)
        # Seen once, the next connection of the same process is found on the quick path.
        again, _ = attributor.quick(peer, ours)
        assert_is(again, proc)


def test_dual_stack_listener_sees_an_ipv4_client() -> None:
    attributor = Attributor()
    with socket.socket(socket.AF_INET6) as server:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        server.listen()
        port = server.getsockname()[1]
        with subprocess.Popen(
            [sys.executable, "-c", CLIENT, "127.0.0.1", str(port), "marker-arg"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            proc.stdout.readline()
            conn, peer = server.accept()
            try:
                assert peer[0] == "::ffff:127.0.0.1"
                assert_is(attributor.lookup(peer, conn.getsockname()), proc)
            finally:
                conn.close()
                proc.stdin.close()
                proc.wait(10)


def test_a_closed_client_is_unknown_not_an_error() -> None:
    attributor = Attributor()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname())
        conn, peer = server.accept()
        ours = conn.getsockname()
        client.close()
        conn.close()
        assert attributor.lookup(peer, ours) is None
        assert attributor.quick(peer, ours) == (None, None)


def test_hint_puts_a_pid_on_the_quick_path() -> None:
    attributor = Attributor()
    with client_process("127.0.0.1", socket.AF_INET) as (proc, peer, ours):
        attributor.hint(proc.pid)
        info, _ = attributor.quick(peer, ours)
        assert_is(info, proc)


def test_garbage_addresses_are_unknown() -> None:
    assert Attributor().lookup(("not-an-ip", 1), ("127.0.0.1", 2)) is None
