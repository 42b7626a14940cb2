"""Which process owns the other end of a local TCP connection.

The relay knows a client only by its address (127.0.0.1:54321). The kernel knows
which socket that is and which process holds it: on Linux the socket's inode is
in /proc/net/tcp{,6} (with its owner's uid), and a process holding it has a
`socket:[inode]` link under /proc/PID/fd. Elsewhere psutil asks the OS the same
question. The lookup costs a few milliseconds, so the relay runs it once per
connection in a worker thread while the TLS handshakes are under way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import struct
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import psutil

log = logging.getLogger(__name__)

_MAX_CMDLINE = 4096
_RECENT_PIDS = 64
_QUICK_PIDS = 4  # checked at accept time, on the event loop


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """The process behind a connection, in the RawCapture metadata vocabulary (DESIGN.md §3)."""

    pid: int | None  # None: the socket's owner is known (uid) but its process is not visible
    ppid: int | None = None
    name: str | None = None
    exe: str | None = None
    cmdline: str | None = None
    uid: int | None = None
    user: str | None = None
    method: str = "socket_inode"  # the spec's confidence.process_attribution value

    def metadata(self) -> dict[str, Any]:
        fields = (
            ("comm", self.name),
            ("exe", self.exe),
            ("cmdline", self.cmdline),
            ("ppid", self.ppid),
            ("uid", self.uid),
            ("user", self.user),
        )
        return {"attribution": self.method} | {k: v for k, v in fields if v is not None}


class Attributor:
    """Finds the process that owns a client socket, given the client's and our address.

    Two steps, so the relay can do the cheap one at accept time, while the client's
    socket surely exists (a client that fails its TLS handshake closes it within
    milliseconds): `quick()` asks the kernel for the socket's inode (sock_diag, tens
    of microseconds) and checks the few processes seen recently; `lookup()` does the
    rest (a scan of every process's fds) and is meant for a worker thread.
    """

    def __init__(self) -> None:
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._users: dict[int, str | None] = {}
        self._described: dict[tuple[int, str], ProcessInfo] = {}
        self.linux = sys.platform.startswith("linux") and os.path.exists("/proc/net/tcp")

    def hint(self, pid: int) -> None:
        """A process about to connect (e.g. the command `run` started): check it first."""
        self._remember(pid)

    def quick(
        self, client: tuple[Any, ...], server: tuple[Any, ...]
    ) -> tuple[ProcessInfo | None, tuple[int, int] | None]:
        """(the process if a recently seen one owns the socket, the socket's (inode, uid))."""
        if not self.linux:
            return None, None
        try:
            found = _diag_socket(client, server)
            if found is None:
                return None, None
            inode, uid = found
            target = f"socket:[{inode}]"
            # The few most recent first (this runs on the relay's loop, so it stays cheap);
            # a snapshot, because the lookup thread updates the list too.
            # The sensor's own process is not checked here: under load it holds hundreds
            # of fds, and reading them all would stall the relay's loop for milliseconds.
            # The lookup thread's full scan still finds it (in-process tests, benchmarks).
            candidates = list(self._recent)[-_QUICK_PIDS:][::-1]
            for pid in candidates:
                if _holds(pid, target):
                    self._remember(pid)
                    return self._describe_linux(pid, uid), found
            return None, found
        except Exception:
            log.debug("quick process attribution failed for %s", client, exc_info=True)
            return None, None

    def lookup(
        self,
        client: tuple[Any, ...],
        server: tuple[Any, ...],
        located: tuple[int, int] | None = None,
    ) -> ProcessInfo | None:
        """Blocking: `client` is the peer address of an accepted socket, `server` its local one."""
        try:
            if self.linux:
                return self._lookup_linux(client, server, located)
            return self._lookup_psutil(client, server)
        except Exception:  # attribution is best effort; the traffic must flow regardless
            log.debug("process attribution failed for %s", client, exc_info=True)
            return None

    # --- Linux: /proc ----------------------------------------------------------------------

    def _lookup_linux(
        self, client: tuple[Any, ...], server: tuple[Any, ...], located: tuple[int, int] | None
    ) -> ProcessInfo | None:
        found = located or _diag_socket(client, server)
        if found is None:
            found = _find_socket(int(client[1]), int(server[1]), str(client[0]))
        if found is None:
            return None
        inode, uid = found
        pid = self._pid_of_inode(inode)
        if pid is None:
            # The socket belongs to a process we may not inspect (another user's).
            return ProcessInfo(pid=None, uid=uid, user=self._user(uid))
        return self._describe_linux(pid, uid)

    def _pid_of_inode(self, inode: int) -> int | None:
        target = f"socket:[{inode}]"
        for pid in reversed(list(self._recent)):  # a snapshot, as in quick()
            if _holds(pid, target):
                self._remember(pid)
                return pid
        with os.scandir("/proc") as entries:
            pids = [int(e.name) for e in entries if e.name.isdigit()]
        # Newest first: a client we have not seen yet is most likely a young process.
        for pid in sorted(pids, reverse=True):
            if pid not in self._recent and _holds(pid, target):
                self._remember(pid)
                return pid
        return None

    def _remember(self, pid: int) -> None:
        self._recent[pid] = None
        self._recent.move_to_end(pid)
        while len(self._recent) > _RECENT_PIDS:
            self._recent.popitem(last=False)

    def _describe_linux(self, pid: int, uid: int | None) -> ProcessInfo:
        base = f"/proc/{pid}"
        name = ppid = exe = cmdline = None
        started = ""
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"{base}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            # comm is in parentheses and may itself contain spaces or ')'.
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            rest = stat[stat.rindex(")") + 2 :].split()
            ppid = int(rest[1])
            started = rest[19]  # field 22, starttime: (pid, starttime) names one process
        cached = self._described.get((pid, started)) if started else None
        if cached is not None and cached.uid == uid:
            return cached
        with contextlib.suppress(OSError):
            exe = os.readlink(f"{base}/exe")
        with contextlib.suppress(OSError):
            with open(f"{base}/cmdline", "rb") as f:
                raw = f.read(_MAX_CMDLINE + 1)
            cmdline = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
            cmdline = cmdline[:_MAX_CMDLINE] or None
        if uid is None:
            with contextlib.suppress(OSError):
                uid = os.stat(base).st_uid
        info = ProcessInfo(
            pid=pid,
            ppid=ppid,
            name=name,
            exe=exe,
            cmdline=cmdline,
            uid=uid,
            user=self._user(uid),
        )
        if started:
            if len(self._described) > 256:
                self._described.clear()
            self._described[(pid, started)] = info
        return info

    # --- elsewhere: psutil -----------------------------------------------------------------

    def _lookup_psutil(
        self, client: tuple[Any, ...], server: tuple[Any, ...]
    ) -> ProcessInfo | None:
        port, our_port = int(client[1]), int(server[1])
        pid = None
        for conn in psutil.net_connections(kind="tcp"):
            if (
                conn.laddr
                and conn.laddr.port == port
                and conn.raddr
                and conn.raddr.port == our_port
                and conn.pid
            ):
                pid = conn.pid
                break
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                uid: int | None = None
                with contextlib.suppress(AttributeError, psutil.Error):
                    uid = proc.uids().real
                user = None
                with contextlib.suppress(psutil.Error):
                    user = proc.username()
                exe = None
                with contextlib.suppress(psutil.Error):
                    exe = proc.exe() or None
                cmdline = None
                with contextlib.suppress(psutil.Error):
                    cmdline = " ".join(proc.cmdline())[:_MAX_CMDLINE] or None
                return ProcessInfo(
                    pid=pid,
                    ppid=proc.ppid(),
                    name=proc.name(),
                    exe=exe,
                    cmdline=cmdline,
                    uid=uid,
                    user=user,
                )
        except psutil.Error:
            return ProcessInfo(pid=pid)

    def _user(self, uid: int | None) -> str | None:
        if uid is None:
            return None
        if uid not in self._users:
            name = None
            try:
                import pwd

                name = pwd.getpwuid(uid).pw_name
            except (ImportError, KeyError):
                pass
            self._users[uid] = name
        return self._users[uid]


def _holds(pid: int, target: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}") == target:
                return True
        except OSError:
            continue
    return False


# --- sock_diag: ask the kernel for one socket by its addresses -------------------------------

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_ALL_STATES = 0xFFFFFFFF
_NO_COOKIE = 0xFFFFFFFF


def _diag_socket(client: tuple[Any, ...], server: tuple[Any, ...]) -> tuple[int, int] | None:
    """(inode, uid) of the client's end of a loopback TCP connection, via NETLINK_SOCK_DIAG.

    An exact-match request (RFC 3549 netlink, linux/inet_diag.h): the kernel looks up
    the one socket with these four addresses instead of formatting every socket on the
    machine into /proc/net/tcp (milliseconds on a busy host; this takes microseconds).
    """
    try:
        local = ipaddress.ip_address(str(client[0]).split("%", 1)[0])
        remote = ipaddress.ip_address(str(server[0]).split("%", 1)[0])
    except ValueError:
        return None
    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    candidates: list[tuple[int, IPAddress, IPAddress]] = []
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        # Our dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d; its socket is AF_INET.
        mapped = remote.ipv4_mapped if isinstance(remote, ipaddress.IPv6Address) else remote
        if mapped is not None:
            candidates.append((socket.AF_INET, local.ipv4_mapped, mapped))
    candidates.append((socket.AF_INET6 if local.version == 6 else socket.AF_INET, local, remote))
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            for family, src, dst in candidates:
                found = _diag_query(nl, family, src, int(client[1]), dst, int(server[1]))
                if found is not None:
                    return found
    except (OSError, AttributeError, struct.error):
        return None
    return None


def _diag_query(
    nl: socket.socket,
    family: int,
    src: ipaddress.IPv4Address | ipaddress.IPv6Address,
    sport: int,
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address,
    dport: int,
) -> tuple[int, int] | None:
    sockid = struct.pack(
        "!HH16s16s",
        sport,
        dport,
        src.packed.ljust(16, b"\0"),
        dst.packed.ljust(16, b"\0"),
    ) + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    nl.send(header + request)
    reply = nl.recv(65536)
    if len(reply) < 16:
        return None
    _length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", reply)
    if kind != _SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR: no such socket (ENOENT) in this family
    # struct inet_diag_msg: family, state, timer, retrans (4 x u8), sockid (48 bytes),
    # then expires, rqueue, wqueue, uid, inode (5 x u32).
    _expires, _rq, _wq, uid, inode = struct.unpack_from("=IIIII", reply, 16 + 4 + 48)
    return (inode, uid) if inode else None


def _find_socket(port: int, remote_port: int, ip: str) -> tuple[int, int] | None:
    """(inode, uid) of the socket whose local port is `port` and remote port `remote_port`.

    /proc/net/tcp lists `local_address rem_address ... uid timeout inode` with ports
    in hex; the ports alone pick the socket on a loopback, and the address settles
    the rare tie between an IPv4 and an IPv6 socket.
    """
    local_suffix = f":{port:04X}"
    remote_suffix = f":{remote_port:04X}"
    candidates: list[tuple[str, int, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    if fields[1].endswith(local_suffix) and fields[2].endswith(remote_suffix):
                        inode = int(fields[9])
                        if inode:
                            candidates.append((fields[1], inode, int(fields[7])))
        except OSError:
            continue
    if not candidates:
        return None
    if len(candidates) > 1:
        want = _proc_hex(ip)
        for local, inode, uid in candidates:
            if want and local.startswith(want):
                return inode, uid
    _, inode, uid = candidates[0]
    return inode, uid


def _proc_hex(ip: str) -> str | None:
    """An address as /proc/net/tcp{,6} prints it (each 32-bit word in host byte order)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    packed = addr.packed
    order: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"
    words = [
        int.from_bytes(packed[i : i + 4], "big").to_bytes(4, order)
        for i in range(0, len(packed), 4)
    ]
    return b"".join(words).hex().upper()
