"""Host context: this machine's real values, the spec's enums, a stable private device id."""

from __future__ import annotations

import json
import os
import platform
import socket
import stat
import uuid
from pathlib import Path

import pytest

from oisp_sensor.enrich.host import (
    HostEnricher,
    arch,
    container_from,
    device_id,
    host_info,
    machine_id,
    os_family,
)
from oisp_sensor.events import Event
from tests.conformance import SCHEMA_DIR, assert_valid_events
from tests.unit.enrich.events import response_event

HOST_SCHEMA = json.loads((SCHEMA_DIR / "common" / "host.schema.json").read_text())["properties"]
DOCKER_ID = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00998877665544332211"


def test_this_machine() -> None:
    host = host_info()
    assert host["hostname"] == socket.gethostname()
    assert host["os"] in HOST_SCHEMA["os"]["enum"]
    assert host["arch"] in HOST_SCHEMA["arch"]["enum"]
    assert host["arch"] == arch(platform.machine())
    assert host["kernel_version"] == platform.release()
    assert uuid.UUID(host["device_id"]).version == 4
    if Path("/etc/os-release").exists():
        assert host["os_version"] == platform.freedesktop_os_release()["PRETTY_NAME"]
    if "container" in host:
        assert (
            host["container"]["runtime"]
            in HOST_SCHEMA["container"]["properties"]["runtime"]["enum"]
        )


def test_every_event_gets_the_host_and_keeps_its_own() -> None:
    enricher = HostEnricher()
    first = response_event("openai", "gpt-4o", None)
    second = Event(
        event_type="network.connect",
        ts_ns=first.ts_ns,
        data={"dest": {"domain": "api.openai.com", "port": 443}, "success": True},
    )
    second.host = {"hostname": "from-the-capture"}
    enricher.enrich(first)
    enricher.enrich(second)
    assert first.host == enricher.host
    assert first.host is not enricher.host  # each event gets its own copy
    assert second.host is not None
    assert second.host["hostname"] == "from-the-capture"
    assert second.host["device_id"] == enricher.host["device_id"]
    assert_valid_events([first.to_dict(), second.to_dict()])


def test_device_id_is_stable_and_does_not_reveal_the_machine_id(tmp_path: Path) -> None:
    raw = machine_id()
    if raw is None:
        pytest.skip("this machine has no machine id (the generated-id path is tested below)")
    ours = device_id(raw)
    assert ours == device_id(raw) == HostEnricher().host["device_id"]
    assert raw.replace("-", "") not in ours.replace("-", "")
    assert device_id(raw + "x") != ours
    assert not (tmp_path / "device_id").exists()


def test_device_id_without_machine_id_is_generated_once(data_dir: Path) -> None:
    first = device_id(None)
    path = data_dir / "device_id"
    assert path.read_text() == first
    assert device_id(None) == first
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a uuid")
    replaced = device_id(None)
    assert replaced != first and uuid.UUID(replaced)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("linux", "linux"),
        ("darwin", "darwin"),
        ("win32", "windows"),
        ("freebsd14", "freebsd"),
        ("sunos5", "other"),
    ],
)
def test_os_family(name: str, family: str) -> None:
    assert os_family(name) == family


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "x86_64"),
        ("AMD64", "x86_64"),
        ("arm64", "aarch64"),
        ("aarch64", "aarch64"),
        ("armv7l", "arm"),
        ("i686", "i686"),
        ("riscv64", "other"),
    ],
)
def test_arch(machine: str, expected: str) -> None:
    assert arch(machine) == expected


@pytest.mark.parametrize(
    ("cgroup", "mountinfo", "markers", "expected"),
    [
        # cgroup v1, Docker with the cgroupfs driver
        (f"12:memory:/docker/{DOCKER_ID}\n0::/", "", {}, {"runtime": "docker", "id": DOCKER_ID}),
        # cgroup v2 in Docker: cgroup says "0::/"; the /etc/hostname mount has the id
        (
            "0::/",
            f"612 590 254:1 /var/lib/docker/containers/{DOCKER_ID}/hostname /etc/hostname "
            "rw,relatime - ext4 /dev/vda1 rw",
            {"dockerenv": True},
            {"runtime": "docker", "id": DOCKER_ID},
        ),
        # Kubernetes with containerd, systemd driver
        (
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/"
            f"cri-containerd-{DOCKER_ID}.scope",
            "",
            {},
            {"runtime": "containerd", "id": DOCKER_ID},
        ),
        (
            f"0::/machine.slice/libpod-{DOCKER_ID}.scope/container",
            "",
            {},
            {"runtime": "podman", "id": DOCKER_ID},
        ),
        ("0::/", "", {"containerenv": True}, {"runtime": "podman"}),
        # A host that merely runs Docker: its own mounts include container state, but
        # not as its /etc/hostname.
        (
            "0::/user.slice/user-1000.slice/session-2.scope",
            f"88 1 0:50 / /var/lib/docker/containers/{DOCKER_ID}/mounts/shm rw - tmpfs shm rw\n"
            "90 1 0:51 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw",
            {},
            None,
        ),
    ],
)
def test_container_detection(
    cgroup: str, mountinfo: str, markers: dict[str, bool], expected: dict[str, str] | None
) -> None:
    assert container_from(cgroup, mountinfo, **markers) == expected
