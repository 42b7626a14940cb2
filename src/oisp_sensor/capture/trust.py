"""Putting the local CA into (and out of) the operating system's trust store.

One small class per store, each knowing its install/uninstall commands and how to
tell whether the CA is trusted. Paths and the command runner are constructor
arguments so tests can drive the real tools (e.g. Debian's `update-ca-certificates`)
against a temporary directory instead of the machine's store.

Installing needs administrator rights everywhere; when we do not have them we say so
and print the exact commands (`AdminRequired.commands`), with absolute paths, because
`sudo oisp-sensor ...` may run with another user's data directory.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from oisp_sensor.errors import CaptureError

if TYPE_CHECKING:
    from oisp_sensor.capture.ca import LocalCA

ANCHOR_NAME = "oisp-sensor"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The default runner: no shell, output captured so failures can be reported."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as e:
        raise CaptureError(f"could not run {argv[0]}: {e}") from e


class AdminRequired(CaptureError):
    """The store is system-wide; `commands` are what to run with administrator rights."""

    def __init__(self, store: str, commands: Sequence[str]) -> None:
        self.commands = list(commands)
        super().__init__(f"changing the {store} trust store needs administrator rights")


class TrustStore(Protocol):
    """An operating-system trust store."""

    name: str

    def install(self, cert_path: Path) -> None: ...
    def uninstall(self, cert_path: Path) -> None: ...
    def is_trusted(self, certificate: x509.Certificate) -> bool | None:
        """True/False from the store itself; None when the store cannot be asked."""
        ...

    def install_commands(self, cert_path: Path) -> list[str]: ...
    def uninstall_commands(self, cert_path: Path) -> list[str]: ...


def is_admin() -> bool:
    if os.name == "nt":
        import ctypes

        try:
            return bool(ctypes.windll.shell32.IsUserAnAdmin())  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            return False
    return os.geteuid() == 0


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise CaptureError(f"{what} failed (exit {result.returncode}): {' '.join(detail[-3:])}")


_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?:TRUSTED )?CERTIFICATE-----(.+?)-----END (?:TRUSTED )?CERTIFICATE-----",
    re.DOTALL,
)


def bundle_contains(bundle: Path, certificate: x509.Certificate) -> bool:
    """Whether a PEM bundle file holds exactly this certificate (compared as DER)."""
    try:
        data = bundle.read_bytes()
    except OSError:
        return False
    der = certificate.public_bytes(serialization.Encoding.DER)
    for match in _PEM_BLOCK.finditer(data):
        try:
            if base64.b64decode(b"".join(match.group(1).split())) == der:
                return True
        except ValueError:
            continue
    return False


@dataclass
class DebianStore:
    """Debian, Ubuntu, Alpine: a .crt in the local anchors directory + `update-ca-certificates`."""

    anchor_dir: Path = Path("/usr/local/share/ca-certificates")
    bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    update_command: Sequence[str] = ("update-ca-certificates",)
    run: Runner = run_command
    check_admin: Callable[[], bool] = is_admin
    anchor_name: str = ANCHOR_NAME
    name: str = "Debian/Ubuntu (update-ca-certificates)"

    @property
    def anchor(self) -> Path:
        return self.anchor_dir / f"{self.anchor_name}.crt"

    def install(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.install_commands(cert_path))
        self.anchor_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert_path, self.anchor)
        os.chmod(self.anchor, 0o644)
        _check(self.run([*self.update_command]), "update-ca-certificates")

    def uninstall(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.uninstall_commands(cert_path))
        self.anchor.unlink(missing_ok=True)
        # --fresh drops the now dangling symlinks in /etc/ssl/certs as well.
        _check(self.run([*self.update_command, "--fresh"]), "update-ca-certificates --fresh")

    def is_trusted(self, certificate: x509.Certificate) -> bool | None:
        return bundle_contains(self.bundle, certificate)

    def install_commands(self, cert_path: Path) -> list[str]:
        return [
            f"sudo install -m 0644 {shlex.quote(str(cert_path))} {shlex.quote(str(self.anchor))}",
            "sudo " + shlex.join(self.update_command),
        ]

    def uninstall_commands(self, cert_path: Path) -> list[str]:
        return [
            f"sudo rm -f {shlex.quote(str(self.anchor))}",
            "sudo " + shlex.join([*self.update_command, "--fresh"]),
        ]


@dataclass
class P11KitStore:
    """Fedora, RHEL, CentOS, Arch: p11-kit's `trust anchor`, which re-extracts the bundles."""

    bundle: Path = Path("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem")
    trust_command: str = "trust"
    run: Runner = run_command
    check_admin: Callable[[], bool] = is_admin
    name: str = "Fedora/RHEL (p11-kit trust)"

    def install(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.install_commands(cert_path))
        _check(self.run([self.trust_command, "anchor", "--store", str(cert_path)]), "trust anchor")

    def uninstall(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.uninstall_commands(cert_path))
        _check(
            self.run([self.trust_command, "anchor", "--remove", str(cert_path)]),
            "trust anchor --remove",
        )

    def is_trusted(self, certificate: x509.Certificate) -> bool | None:
        if not self.bundle.exists():
            return None
        return bundle_contains(self.bundle, certificate)

    def install_commands(self, cert_path: Path) -> list[str]:
        return [f"sudo trust anchor --store {shlex.quote(str(cert_path))}"]

    def uninstall_commands(self, cert_path: Path) -> list[str]:
        return [f"sudo trust anchor --remove {shlex.quote(str(cert_path))}"]


@dataclass
class MacOSStore:
    """macOS: the System keychain, trusted as a root for every user (`security`)."""

    keychain: str = "/Library/Keychains/System.keychain"
    run: Runner = run_command
    check_admin: Callable[[], bool] = is_admin
    name: str = "macOS System keychain"

    def install(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.install_commands(cert_path))
        argv = ["security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k", self.keychain]
        _check(self.run([*argv, str(cert_path)]), "security add-trusted-cert")

    def uninstall(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.uninstall_commands(cert_path))
        _check(
            self.run(["security", "remove-trusted-cert", "-d", str(cert_path)]),
            "security remove-trusted-cert",
        )
        sha1 = _sha1(cert_path)
        _check(
            self.run(["security", "delete-certificate", "-Z", sha1, self.keychain]),
            "security delete-certificate",
        )

    def is_trusted(self, certificate: x509.Certificate) -> bool | None:
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(pem)
            f.flush()
            result = self.run(["security", "verify-cert", "-c", f.name, "-p", "basic"])
        return result.returncode == 0

    def install_commands(self, cert_path: Path) -> list[str]:
        return [
            "sudo security add-trusted-cert -d -r trustRoot -k "
            f"{self.keychain} {shlex.quote(str(cert_path))}"
        ]

    def uninstall_commands(self, cert_path: Path) -> list[str]:
        return [
            f"sudo security remove-trusted-cert -d {shlex.quote(str(cert_path))}",
            f"sudo security delete-certificate -Z {_sha1(cert_path)} {self.keychain}",
        ]


@dataclass
class WindowsStore:
    """Windows: the machine's Trusted Root store, via `certutil`."""

    run: Runner = run_command
    check_admin: Callable[[], bool] = is_admin
    name: str = "Windows Trusted Root"

    def install(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.install_commands(cert_path))
        _check(self.run(["certutil", "-addstore", "-f", "ROOT", str(cert_path)]), "certutil")

    def uninstall(self, cert_path: Path) -> None:
        if not self.check_admin():
            raise AdminRequired(self.name, self.uninstall_commands(cert_path))
        _check(self.run(["certutil", "-delstore", "ROOT", _sha1(cert_path)]), "certutil")

    def is_trusted(self, certificate: x509.Certificate) -> bool | None:
        sha1 = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303
        return self.run(["certutil", "-store", "ROOT", sha1]).returncode == 0

    def install_commands(self, cert_path: Path) -> list[str]:
        return [f'certutil -addstore -f ROOT "{cert_path}"   (in an Administrator prompt)']

    def uninstall_commands(self, cert_path: Path) -> list[str]:
        return [f"certutil -delstore ROOT {_sha1(cert_path)}   (in an Administrator prompt)"]


def _sha1(cert_path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303


def detect_store() -> TrustStore:
    """The trust store of this machine; CaptureError when we do not know how to use it."""
    if sys.platform == "darwin":
        return MacOSStore()
    if sys.platform == "win32":
        return WindowsStore()
    if shutil.which("update-ca-certificates") and Path("/etc/ssl/certs").is_dir():
        return DebianStore()
    if shutil.which("trust"):
        return P11KitStore()
    raise CaptureError(
        "no supported trust store found (looked for update-ca-certificates and p11-kit's"
        " `trust`); add the CA certificate to your system's trust store by hand, or use"
        " `oisp-sensor ca env`"
    )


# --- a real verification, the way applications do it ---------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def verify_handshake(
    server_context: ssl.SSLContext, host: str, client_context: ssl.SSLContext
) -> Verification:
    """A complete in-memory TLS handshake: `client_context` verifies the leaf for `host`.

    No sockets: two memory BIOs pass the records back and forth, so this is exactly
    what a client would decide, without listening anywhere.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(16):
        for name, side in (("client", client), ("server", server)):
            if done[name]:
                continue
            try:
                side.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLCertVerificationError as e:
                return Verification(False, e.verify_message or str(e))
            except ssl.SSLError as e:
                if name == "client":
                    return Verification(False, e.reason or str(e))
                # The server's view of a rejected handshake is the client's alert; the
                # client's own error (next round) is the one worth reporting.
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["client"] and done["server"]:
            return Verification(True)
    return Verification(False, "handshake did not complete")


# --- the CA's state, as data (dashboard, scripts) -----------------------------------------

ENV_COMMAND = 'eval "$(oisp-sensor ca env)"'


def default_context_verification(ca: LocalCA) -> Verification:
    """Would Python's default context (the system store) accept a leaf from this CA now?"""
    if ca.permits("api.openai.com"):
        host = "api.openai.com"
    elif ca.names:
        host = ca.names[0]
    else:
        host = str(next(iter(ca.networks[0].hosts()), ca.networks[0].network_address))
    try:
        server = ca.leaf_context(host)
    except CaptureError as e:
        return Verification(False, str(e))
    return verify_handshake(server, host, ssl.create_default_context())


def ca_status(
    names: Sequence[str] | None = None,
    *,
    directory: Path | None = None,
    store: TrustStore | None = None,
) -> dict[str, object]:
    """What `oisp-sensor ca status` checks, as a dict: is there a CA, is it trusted, and
    the exact commands that would make it trusted. Never includes the key.

    `names` are the hosts the CA should cover now (the registry's); when they differ
    from the certificate's, the CA is re-issued at the next start and must be trusted
    again (`reissue_pending`).
    """
    from oisp_sensor.capture.ca import LocalCA, split_constraints

    shell_only = {"label": "For one shell only (Python, Node, curl...)", "command": ENV_COMMAND}
    run_under = {
        "label": "Or start a program under the sensor",
        "command": "oisp-sensor run -- COMMAND",
    }
    try:
        ca = LocalCA.load(directory)
    except CaptureError as e:
        return {
            "present": False,
            "trusted": False,
            "error": str(e),
            "commands": [
                {"label": "Re-create it", "command": "oisp-sensor ca init --force"},
                {"label": "Then trust it", "command": "sudo oisp-sensor ca install"},
            ],
        }
    if ca is None:
        return {
            "present": False,
            "trusted": False,
            "commands": [
                {"label": "Create it", "command": "oisp-sensor ca init"},
                {"label": "Trust it system-wide", "command": "sudo oisp-sensor ca install"},
                shell_only,
            ],
        }
    if store is None:
        try:
            store = detect_store()
        except CaptureError:
            store = None
    in_store = store.is_trusted(ca.certificate) if store is not None else None
    python = default_context_verification(ca)
    commands: list[dict[str, str]] = []
    if not in_store:
        commands.append({"label": "Trust it system-wide", "command": "sudo oisp-sensor ca install"})
        if store is not None:
            by_hand = " && ".join(store.install_commands(ca.cert_path))
            commands.append({"label": f"or by hand ({store.name})", "command": by_hand})
    commands += [shell_only, run_under]
    return {
        "present": True,
        "cert_path": str(ca.cert_path),
        "fingerprint_sha256": ca.fingerprint_sha256,
        "not_valid_before": ca.not_valid_before.isoformat(),
        "not_valid_after": ca.not_valid_after.isoformat(),
        "names": list(ca.names),
        "networks": [str(n) for n in ca.networks],
        "store": store.name if store is not None else None,
        "os_trusted": in_store,
        "python_trusted": python.ok,
        "python_detail": python.detail,
        "trusted": in_store if in_store is not None else python.ok,
        "reissue_pending": names is not None
        and split_constraints(names) != (ca.names, ca.networks),
        "commands": commands,
    }
