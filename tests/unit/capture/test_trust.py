"""Trust stores and the `ca` commands that drive them.

The Debian store is exercised with the real `update-ca-certificates` against
temporary directories; on a throwaway container running as root it is also
exercised against the machine's real store, and the store is restored afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner
from cryptography import x509

from oisp_sensor.capture.ca import LocalCA
from oisp_sensor.capture.trust import (
    AdminRequired,
    DebianStore,
    MacOSStore,
    P11KitStore,
    WindowsStore,
    bundle_contains,
    verify_handshake,
)
from oisp_sensor.cli import ca as ca_cli
from oisp_sensor.cli.main import cli

UPDATE = shutil.which("update-ca-certificates")
needs_update_ca = pytest.mark.skipif(
    UPDATE is None, reason="Debian's update-ca-certificates is not installed on this system"
)

# Read at import: the autouse fixture in conftest clears OISP_* variables per test.
SYSTEM_TRUST_OPT_IN = os.environ.get("OISP_TEST_SYSTEM_TRUST") == "1"


def temp_debian_store(root: Path, *, admin: bool = True) -> DebianStore:
    """A Debian store whose every directory is under `root`, driven by the real tool."""
    for sub in ("local", "etc", "hooks", "share"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ca-certificates.conf").write_text("")
    # Another local CA, as every real store has: with none at all the tool leaves the
    # old bundle in place instead of writing an empty one.
    trustme.CA().cert_pem.write_to_path(str(root / "local" / "another.crt"))
    return DebianStore(
        anchor_dir=root / "local",
        bundle=root / "etc" / "ca-certificates.crt",
        update_command=(
            "update-ca-certificates",
            "--certsconf",
            str(root / "ca-certificates.conf"),
            "--certsdir",
            str(root / "share"),
            "--localcertsdir",
            str(root / "local"),
            "--etccertsdir",
            str(root / "etc"),
            "--hooksdir",
            str(root / "hooks"),
        ),
        check_admin=lambda: admin,
    )


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA.load_or_create(tmp_path / "ca")


@needs_update_ca
def test_debian_install_then_uninstall_with_the_real_tool(tmp_path: Path, ca: LocalCA) -> None:
    store = temp_debian_store(tmp_path / "store")
    assert store.is_trusted(ca.certificate) is False

    store.install(ca.cert_path)
    assert store.anchor.read_bytes() == ca.cert_path.read_bytes()
    assert oct(store.anchor.stat().st_mode & 0o777) == "0o644"
    assert store.is_trusted(ca.certificate) is True
    # The bundle the tool produced really makes clients trust our leaves.
    client = ssl.create_default_context(cafile=str(store.bundle))
    assert verify_handshake(ca.leaf_context("api.openai.com"), "api.openai.com", client).ok

    store.uninstall(ca.cert_path)
    assert not store.anchor.exists()
    assert store.is_trusted(ca.certificate) is False
    dangling = [p for p in (tmp_path / "store" / "etc").iterdir() if not p.exists()]
    assert dangling == [], "no dangling symlinks are left behind"
    assert bundle_contains(
        store.bundle,
        x509.load_pem_x509_certificate((tmp_path / "store" / "local" / "another.crt").read_bytes()),
    ), "the other CAs are still trusted"


def test_without_admin_rights_the_exact_commands_are_given(tmp_path: Path, ca: LocalCA) -> None:
    store = temp_debian_store(tmp_path / "store", admin=False)
    with pytest.raises(AdminRequired) as info:
        store.install(ca.cert_path)
    assert not store.anchor.exists()
    install = info.value.commands
    assert install[0] == f"sudo install -m 0644 {ca.cert_path} {store.anchor}"
    assert install[1].startswith("sudo update-ca-certificates")

    with pytest.raises(AdminRequired) as info:
        store.uninstall(ca.cert_path)
    assert info.value.commands[0] == f"sudo rm -f {store.anchor}"
    assert "--fresh" in info.value.commands[1]


class RecordingRunner:
    """Stands in for `subprocess.run` where the real tool is not on this OS (macOS, Windows)."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), self.returncode, "", "boom")


def test_macos_commands(ca: LocalCA) -> None:
    runner = RecordingRunner()
    store = MacOSStore(run=runner, check_admin=lambda: True)
    store.install(ca.cert_path)
    store.uninstall(ca.cert_path)
    assert store.is_trusted(ca.certificate) is True
    sha1 = ca.fingerprint_sha1
    assert runner.calls[0] == [
        "security",
        "add-trusted-cert",
        "-d",
        "-r",
        "trustRoot",
        "-k",
        "/Library/Keychains/System.keychain",
        str(ca.cert_path),
    ]
    assert runner.calls[1] == ["security", "remove-trusted-cert", "-d", str(ca.cert_path)]
    assert runner.calls[2] == [
        "security",
        "delete-certificate",
        "-Z",
        sha1,
        "/Library/Keychains/System.keychain",
    ]
    assert runner.calls[3][:3] == ["security", "verify-cert", "-c"]


def test_windows_commands(ca: LocalCA) -> None:
    runner = RecordingRunner()
    store = WindowsStore(run=runner, check_admin=lambda: True)
    store.install(ca.cert_path)
    store.uninstall(ca.cert_path)
    assert runner.calls[0] == ["certutil", "-addstore", "-f", "ROOT", str(ca.cert_path)]
    assert runner.calls[1] == ["certutil", "-delstore", "ROOT", ca.fingerprint_sha1]


def test_p11kit_commands_and_failure_reporting(tmp_path: Path, ca: LocalCA) -> None:
    runner = RecordingRunner(returncode=2)
    store = P11KitStore(bundle=tmp_path / "none.pem", run=runner, check_admin=lambda: True)
    with pytest.raises(Exception, match=r"trust anchor failed \(exit 2\): boom"):
        store.install(ca.cert_path)
    assert runner.calls[0] == ["trust", "anchor", "--store", str(ca.cert_path)]
    assert store.is_trusted(ca.certificate) is None  # no extracted bundle: cannot tell


def test_bundle_contains_compares_certificates_not_text(tmp_path: Path, ca: LocalCA) -> None:
    other = LocalCA.load_or_create(tmp_path / "other")
    bundle = tmp_path / "bundle.pem"
    # Re-wrapped base64 (64 -> 76 columns) is still the same certificate.
    body = b"".join(ca.cert_pem.splitlines()[1:-1])
    rewrapped = b"\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    bundle.write_bytes(
        other.cert_pem
        + b"-----BEGIN CERTIFICATE-----\n"
        + rewrapped
        + b"\n-----END CERTIFICATE-----\n"
    )
    assert bundle_contains(bundle, ca.certificate)
    assert not bundle_contains(tmp_path / "missing.pem", ca.certificate)
    bundle.write_bytes(other.cert_pem)
    assert not bundle_contains(bundle, ca.certificate)


# --- the CLI -----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DebianStore:
    if UPDATE is None:
        pytest.skip("Debian's update-ca-certificates is not installed on this system")
    store = temp_debian_store(tmp_path / "store")
    monkeypatch.setattr(ca_cli, "detect_store", lambda: store)
    return store


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_status_install_status_uninstall(store: DebianStore) -> None:
    code, out = invoke("ca", "status")
    assert code == 1 and "none yet" in out and "ca init" in out

    code, out = invoke("ca", "init")
    assert code == 0 and "Created" in out
    ca = LocalCA.load()
    assert ca is not None

    code, out = invoke("ca", "status")
    assert code == 1
    assert "not trusted" in out and "oisp-sensor ca install" in out
    assert f"sudo install -m 0644 {ca.cert_path}" in out  # the exact fix

    code, out = invoke("ca", "install")
    assert code == 0, out
    assert f"Installed {ca.cert_path}" in out
    assert store.is_trusted(ca.certificate)

    code, out = invoke("ca", "status")
    assert code == 0, out
    assert "OS trust store (Debian/Ubuntu (update-ca-certificates)): trusted" in out

    code, out = invoke("ca", "uninstall")
    assert code == 0 and "Removed" in out
    code, out = invoke("ca", "status")
    assert code == 1


def test_cli_install_without_root_prints_the_commands(
    store: DebianStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("ca", "init")
    monkeypatch.setattr(store, "check_admin", lambda: False)
    code, out = invoke("ca", "install")
    assert code == 1
    assert "needs administrator rights" in out
    assert "update-ca-certificates" in out and str(store.anchor) in out
    assert not store.anchor.exists()


def test_cli_install_needs_a_ca_first(store: DebianStore) -> None:
    code, out = invoke("ca", "install")
    assert code == 1 and "oisp-sensor ca init" in out


def test_cli_init_force_replaces_the_ca(store: DebianStore) -> None:
    invoke("ca", "init")
    first = LocalCA.load()
    code, out = invoke("ca", "init", "--force")
    second = LocalCA.load()
    assert code == 0 and "Re-created" in out and "no longer works" in out
    assert first is not None and second is not None
    assert first.fingerprint_sha256 != second.fingerprint_sha256


def test_cli_show_path_and_env(store: DebianStore) -> None:
    code, out = invoke("ca", "path")
    ca = LocalCA.load()
    assert ca is not None
    assert code == 0 and out.strip() == str(ca.cert_path)

    code, out = invoke("ca", "show")
    assert code == 0
    assert ca.fingerprint_sha256 in out and "CN=OISP Local CA" in out
    assert "api.openai.com" in out and "127.0.0.0/8" in out

    code, out = invoke("ca", "env")
    bundle = ca.directory / "bundle.pem"
    assert f"export SSL_CERT_FILE={bundle}" in out
    assert f"export NODE_EXTRA_CA_CERTS={ca.cert_path}" in out
    code, out = invoke("ca", "env", "--shell", "fish")
    assert f"set -gx REQUESTS_CA_BUNDLE {bundle};" in out
    code, out = invoke("ca", "env", "--shell", "powershell")
    assert f"$env:CURL_CA_BUNDLE = '{bundle}'" in out


def test_cli_env_output_works_in_a_real_shell(store: DebianStore) -> None:
    code, out = invoke("ca", "env")
    ca = LocalCA.load()
    assert ca is not None
    printed = subprocess.run(
        ["sh", "-c", out + '\nprintf "%s|%s" "$SSL_CERT_FILE" "$NODE_EXTRA_CA_CERTS"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == f"{ca.directory / 'bundle.pem'}|{ca.cert_path}"


def test_cli_uses_custom_providers_from_the_config(store: DebianStore) -> None:
    code, out = invoke("ca", "init")
    assert code == 0 and out.startswith("Created")
    code, out = invoke("ca", "init")
    assert code == 0 and out.startswith("Ready (unchanged)")

    config_dir = Path(os.environ["OISP_CONFIG_DIR"])
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text(
        '[[providers]]\nhost = "llm.corp.example"\nprovider = "corp"\n'
    )
    code, out = invoke("ca", "status")
    assert "The intercepted hosts changed" in out
    code, out = invoke("ca", "init")
    assert code == 0 and out.startswith("Re-issued (the intercepted hosts changed)")
    assert "no longer works" in out
    code, out = invoke("ca", "show")
    assert code == 0 and "llm.corp.example" in out


# --- the machine's real store (root in a throwaway container only) ----------------------------


def _system_trust_allowed() -> str | None:
    """Why the real-store test may not run here, or None when it may."""
    if UPDATE is None:
        return "Debian's update-ca-certificates is not installed"
    if os.name != "posix" or os.geteuid() != 0:
        return "changing the system trust store needs root"
    if not (SYSTEM_TRUST_OPT_IN or Path("/.dockerenv").exists()):
        return "changes the machine's trust store: set OISP_TEST_SYSTEM_TRUST=1 to allow it"
    return None


def _store_state(certs: Path) -> tuple[str, frozenset[tuple[str, str]]]:
    bundle = hashlib.sha256((certs / "ca-certificates.crt").read_bytes()).hexdigest()
    links = frozenset((p.name, os.readlink(p)) for p in certs.iterdir() if p.is_symlink())
    return bundle, links


@pytest.mark.skipif(_system_trust_allowed() is not None, reason=str(_system_trust_allowed()))
def test_real_debian_store_round_trip(tmp_path: Path, ca: LocalCA) -> None:
    """Installs into /usr/local/share/ca-certificates + /etc/ssl/certs, then restores them.

    Hooks (e.g. the Java keystore trigger) are skipped so nothing outside those two
    directories changes; a unique anchor name never touches a real installation.
    """
    hooks = tmp_path / "no-hooks"
    hooks.mkdir()
    certs = Path("/etc/ssl/certs")
    store = DebianStore(
        update_command=("update-ca-certificates", "--hooksdir", str(hooks)),
        anchor_name=f"oisp-sensor-test-{os.getpid()}",
    )
    assert store.anchor.parent == Path("/usr/local/share/ca-certificates")
    before = _store_state(certs)
    probe = (
        "import pathlib, ssl\n"
        "from oisp_sensor.capture.ca import LocalCA\n"
        "from oisp_sensor.capture.trust import verify_handshake\n"
        f"ca = LocalCA.load(pathlib.Path({str(ca.directory)!r}))\n"
        "r = verify_handshake(ca.leaf_context('api.openai.com'), 'api.openai.com',"
        " ssl.create_default_context())\n"
        "print(r.ok, r.detail)\n"
    )
    try:
        store.install(ca.cert_path)
        assert store.is_trusted(ca.certificate)
        # A fresh process with Python's *default* context now trusts our leaves.
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        assert out.stdout.startswith("True"), out.stdout + out.stderr
    finally:
        store.uninstall(ca.cert_path)
    assert not store.anchor.exists()
    assert not store.is_trusted(ca.certificate)
    assert _store_state(certs) == before, "the system store is exactly as it was"
