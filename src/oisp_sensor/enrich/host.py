"""The machine every event comes from: name, OS, architecture, a stable device id.

Computed once (lazily, on the first event) and copied into each event, so it costs
a dict copy per event. The device id must identify the machine across restarts
without exposing its raw identifier: /etc/machine-id is to be treated as
confidential (machine-id(5)), so, like systemd's app-specific ids, we publish an
HMAC of it keyed for this application. Without a machine id, an id is generated
once and kept in the data dir.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from oisp_sensor.events import Event
from oisp_sensor.paths import data_dir, write_private

log = logging.getLogger(__name__)

_APP_KEY = b"oisp-sensor device id v1"
_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv8l": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "arm": "arm",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "i686": "i686",
    "x86": "i686",
}
_CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")
_CGROUP_RUNTIMES = (
    ("podman", re.compile(r"libpod-([0-9a-f]{64})")),
    ("crio", re.compile(r"crio-([0-9a-f]{64})")),
    ("containerd", re.compile(r"cri-containerd-([0-9a-f]{64})")),
    ("docker", re.compile(r"docker[-/]([0-9a-f]{64})")),
    ("other", re.compile(r"kubepods.*?([0-9a-f]{64})")),
)
# A plain str, so type checkers do not prune the other platforms' branches.
PLATFORM: str = sys.platform


class HostEnricher:
    """Sets `host` on every event (fields the event already has are kept)."""

    def __init__(self, host: dict[str, Any] | None = None) -> None:
        self._host = host

    @property
    def host(self) -> dict[str, Any]:
        if self._host is None:
            self._host = host_info()
        return self._host

    def enrich(self, event: Event) -> None:
        own = self.host
        merged = own.copy()
        for key in ("container", "k8s"):  # nested: each event gets its own copy too
            if key in own:
                merged[key] = dict(own[key])
        if event.host:
            merged.update(event.host)
        event.host = merged


def host_info() -> dict[str, Any]:
    host: dict[str, Any] = {"hostname": socket.gethostname(), "os": os_family()}
    version = os_version()
    if version:
        host["os_version"] = version
    host["arch"] = arch(platform.machine())
    kernel = platform.version() if PLATFORM == "win32" else platform.release()
    if kernel:
        host["kernel_version"] = kernel
    host["device_id"] = device_id(machine_id())
    container = container_info()
    if container:
        host["container"] = container
    k8s = k8s_info(host["hostname"])
    if k8s:
        host["k8s"] = k8s
    return host


def os_family(platform_name: str = PLATFORM) -> str:
    """host.os: the spec's enum (linux, darwin, windows, freebsd, other)."""
    if platform_name.startswith("linux"):
        return "linux"
    if platform_name == "darwin":
        return "darwin"
    if platform_name in ("win32", "cygwin"):
        return "windows"
    if platform_name.startswith("freebsd"):
        return "freebsd"
    return "other"


def arch(machine: str) -> str:
    """host.arch: the spec's enum (x86_64, aarch64, arm, i686, other)."""
    return _ARCH.get(machine.lower(), "other")


def os_version() -> str | None:
    """A name people recognise: "Debian GNU/Linux 12 (bookworm)", "macOS 14.2"."""
    if PLATFORM.startswith("linux"):
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            return None
        return release.get("PRETTY_NAME") or release.get("NAME")
    if PLATFORM == "darwin":
        mac = platform.mac_ver()[0]
        return f"macOS {mac}" if mac else None
    if PLATFORM == "win32":
        return f"Windows {platform.release()} {platform.version()}".strip()
    return f"{platform.system()} {platform.release()}".strip() or None


def device_id(machine: str | None, state_dir: Path | None = None) -> str:
    """A UUID stable for this machine, derived from (never equal to) its `machine` id;
    without one, generated once and kept in `state_dir` (the data dir)."""
    if machine:
        digest = hmac.new(machine.encode(), _APP_KEY, hashlib.sha256).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))
    path = (state_dir or data_dir()) / "device_id"
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except (OSError, ValueError):
        pass
    new = str(uuid.uuid4())
    try:
        write_private(path, new.encode())
    except OSError as e:
        log.warning("cannot keep the device id in %s (%s); it will change on restart", path, e)
    return new


def machine_id() -> str | None:
    """The OS's own machine identifier, if it has one we can read."""
    if PLATFORM.startswith("linux"):
        for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            try:
                value = Path(path).read_text().strip()
            except OSError:
                continue
            if value:
                return value
        return None
    if PLATFORM == "win32":
        try:
            import winreg

            with winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
                winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
                r"SOFTWARE\Microsoft\Cryptography",
            ) as key:
                value = winreg.QueryValueEx(key, "MachineGuid")[0]  # type: ignore[attr-defined,unused-ignore]
            return str(value) or None
        except OSError:
            return None
    if PLATFORM == "darwin":
        try:
            out = subprocess.run(
                ["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        match = re.search(r'"IOPlatformUUID"\s*=\s*"([^"]+)"', out)
        return match.group(1) if match else None
    return None


def container_info() -> dict[str, str] | None:
    """Whether the sensor itself runs in a container, and which (Linux only, cheap)."""
    if not PLATFORM.startswith("linux"):
        return None
    return container_from(
        _read("/proc/self/cgroup"),
        _read("/proc/self/mountinfo", 256 * 1024),
        dockerenv=os.path.exists("/.dockerenv"),
        containerenv=os.path.exists("/run/.containerenv"),
    )


def container_from(
    cgroup: str, mountinfo: str = "", *, dockerenv: bool = False, containerenv: bool = False
) -> dict[str, str] | None:
    """Runtime and id of the container we run in, from /proc/self/cgroup, the mounts a
    runtime makes for /etc/hostname et al. (/proc/self/mountinfo), and the marker files
    Docker and Podman leave in a container's root. A host merely running containers
    has none of these for its own processes."""
    runtime: str | None = None
    cid: str | None = None
    for name, pattern in _CGROUP_RUNTIMES:
        if m := pattern.search(cgroup):
            runtime, cid = name, m.group(1)
            break
    for line in mountinfo.splitlines():
        fields = line.split(" ", 5)  # id parent major:minor root mount-point options...
        if len(fields) < 5 or fields[4] not in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            continue
        root = fields[3]
        if runtime is None:
            if "/containers/storage/" in root or "libpod" in root:
                runtime = "podman"
            elif "/docker/" in root:
                runtime = "docker"
        if cid is None and (m := _CONTAINER_ID.search(root)):
            cid = m.group(1)
    if runtime is None:
        runtime = "podman" if containerenv else "docker" if dockerenv else None
    if runtime is None:
        return None
    info = {"runtime": runtime}
    if cid:
        info["id"] = cid
    return info


def k8s_info(hostname: str) -> dict[str, str] | None:
    if "KUBERNETES_SERVICE_HOST" not in os.environ:
        return None
    info = {"pod_name": hostname}
    namespace = _read("/var/run/secrets/kubernetes.io/serviceaccount/namespace").strip()
    if namespace:
        info["namespace"] = namespace
    return info


def _read(path: str, limit: int = 64 * 1024) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return ""
