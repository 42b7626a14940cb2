"""`ca_status()`: what the dashboard shows about the local CA, and the commands to trust it."""

from __future__ import annotations

from pathlib import Path

from oisp_sensor.capture.ca import LocalCA, default_constraint_names
from oisp_sensor.capture.trust import DebianStore, ca_status


def store_at(tmp_path: Path, bundle: bytes = b"") -> DebianStore:
    (tmp_path / "bundle.pem").write_bytes(bundle)
    return DebianStore(anchor_dir=tmp_path / "anchors", bundle=tmp_path / "bundle.pem")


def test_no_ca_yet(tmp_path: Path) -> None:
    status = ca_status(store=store_at(tmp_path))
    assert status["present"] is False and status["trusted"] is False
    commands = [c["command"] for c in status["commands"]]  # type: ignore[union-attr]
    assert commands[:2] == ["oisp-sensor ca init", "sudo oisp-sensor ca install"]


def test_untrusted_ca_comes_with_the_exact_commands(tmp_path: Path) -> None:
    names = default_constraint_names()
    ca = LocalCA.load_or_create(None, names)
    status = ca_status(names, store=store_at(tmp_path))
    assert status["present"] is True
    assert status["fingerprint_sha256"] == ca.fingerprint_sha256
    assert status["os_trusted"] is False and status["trusted"] is False
    assert status["reissue_pending"] is False
    commands = {c["label"]: c["command"] for c in status["commands"]}  # type: ignore[union-attr]
    assert commands["Trust it system-wide"] == "sudo oisp-sensor ca install"
    by_hand = next(v for k, v in commands.items() if k.startswith("or by hand"))
    assert str(ca.cert_path) in by_hand and "update-ca-certificates" in by_hand
    assert 'eval "$(oisp-sensor ca env)"' in commands.values()
    assert "PRIVATE KEY" not in repr(status)


def test_trusted_ca(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(None, default_constraint_names())
    status = ca_status(store=store_at(tmp_path, ca.cert_pem))
    assert status["os_trusted"] is True and status["trusted"] is True
    labels = [c["label"] for c in status["commands"]]  # type: ignore[union-attr]
    assert "Trust it system-wide" not in labels


def test_changed_hosts_mean_a_reissue(tmp_path: Path) -> None:
    LocalCA.load_or_create(None, default_constraint_names())
    names = (*default_constraint_names(), "llm.corp.example")
    assert ca_status(names, store=store_at(tmp_path))["reissue_pending"] is True
