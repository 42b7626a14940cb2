"""`oisp-sensor ca ...`: create, inspect and trust the local CA.

No subcommand ever prints, logs or exports the CA's private key; `show` and `path`
deal in the public certificate only.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from oisp_sensor.capture.ca import (
    LocalCA,
    ca_environment,
    default_constraint_names,
    split_constraints,
)
from oisp_sensor.capture.trust import (
    ENV_COMMAND,
    AdminRequired,
    TrustStore,
    default_context_verification,
    detect_store,
)
from oisp_sensor.cli.common import fail
from oisp_sensor.config import Config
from oisp_sensor.errors import CaptureError


def _names(obj: dict[str, object]) -> tuple[str, ...]:
    from oisp_sensor.sensor import build_registry

    config = obj.get("config")
    registry = build_registry(config) if isinstance(config, Config) else None
    return default_constraint_names(registry)


def _directory() -> Path | None:
    """Under `sudo`, the invoking user's CA: it is theirs that needs trusting, not root's."""
    user = os.environ.get("SUDO_USER")
    if os.name != "posix" or os.geteuid() != 0 or not user or "OISP_DATA_DIR" in os.environ:
        return None
    import pwd

    try:
        home = Path(pwd.getpwnam(user).pw_dir)
    except KeyError:
        return None
    if sys.platform == "darwin":
        candidate = home / "Library" / "Application Support" / "oisp-sensor" / "ca"
    else:
        candidate = home / ".local" / "share" / "oisp-sensor" / "ca"
    return candidate if (candidate / "ca.pem").exists() else None


def _load_or_create(obj: dict[str, object]) -> LocalCA:
    # Not `_directory()`: root must never create or re-issue files in a user's directory.
    try:
        return LocalCA.load_or_create(names=_names(obj))
    except CaptureError as e:
        fail(str(e))


def _load_existing() -> LocalCA:
    try:
        ca = LocalCA.load(_directory())
    except CaptureError as e:
        fail(str(e))
    if ca is None:
        user = os.environ.get("SUDO_USER")
        hint = f" as {user} (without sudo)" if user and os.name == "posix" else ""
        fail(f"there is no CA yet; create it with `oisp-sensor ca init`{hint} first")
    return ca


def _store() -> TrustStore:
    try:
        return detect_store()
    except CaptureError as e:
        fail(str(e))


@click.group()
def ca() -> None:
    """Create, inspect and trust the local CA the relay uses for AI hosts."""


@ca.command()
@click.option("--force", is_flag=True, help="Replace an existing CA with a new one (new key).")
@click.pass_obj
def init(obj: dict[str, object], force: bool) -> None:
    """Create the CA (or re-issue it when the intercepted hosts changed)."""
    existed = LocalCA.exists()
    try:
        before = LocalCA.load()
    except CaptureError:
        before = None  # unreadable: only --force can replace it, and says so below
    try:
        ca = LocalCA.create(names=_names(obj)) if force else _load_or_create(obj)
    except CaptureError as e:
        fail(str(e))
    if before is None:
        verb = "Re-created" if existed else "Created"
    elif before.fingerprint_sha256 == ca.fingerprint_sha256:
        verb = "Ready (unchanged)"
    else:
        verb = "Re-created" if force else "Re-issued (the intercepted hosts changed)"
    click.echo(f"{verb}: {ca.cert_path}")
    click.echo(f"SHA-256 fingerprint: {ca.fingerprint_sha256}")
    if before is not None and before.fingerprint_sha256 != ca.fingerprint_sha256:
        click.echo("The previous CA no longer works: trust the new one (next step).")
    click.echo("Next: `oisp-sensor ca install` (as root/admin) or, for one shell, " + ENV_COMMAND)


@ca.command()
@click.pass_obj
def path(obj: dict[str, object]) -> None:
    """Print the CA certificate's path (e.g. for NODE_EXTRA_CA_CERTS)."""
    click.echo(str(_load_or_create(obj).cert_path))


@ca.command()
@click.pass_obj
def show(obj: dict[str, object]) -> None:
    """Subject, fingerprints, validity and name constraints (never the key)."""
    ca = _load_or_create(obj)
    cert = ca.certificate
    click.echo(f"Certificate:  {ca.cert_path}")
    click.echo(f"Subject:      {cert.subject.rfc4514_string()}")
    click.echo(f"Serial:       {cert.serial_number:x}")
    click.echo(f"SHA-256:      {ca.fingerprint_sha256}")
    click.echo(f"SHA-1:        {ca.fingerprint_sha1}")
    click.echo(f"Valid from:   {ca.not_valid_before.isoformat()}")
    click.echo(f"Valid until:  {ca.not_valid_after.isoformat()}")
    click.echo("Key:          EC P-256, kept in the CA directory (mode 0600), never shown")
    click.echo(f"May sign for ({len(ca.names)} DNS names and their subdomains):")
    for name in ca.names:
        click.echo(f"  {name}")
    if ca.networks:
        click.echo("and addresses in: " + ", ".join(str(n) for n in ca.networks))


@ca.command()
def install() -> None:
    """Add the CA to the operating system's trust store (needs root/admin)."""
    ca = _load_existing()
    store = _store()
    try:
        store.install(ca.cert_path)
    except AdminRequired as e:
        _explain_admin(e, "install")
    except CaptureError as e:
        fail(str(e))
    click.echo(f"Installed {ca.cert_path} into the {store.name} trust store.")
    if store.is_trusted(ca.certificate) is False:
        click.echo("Warning: the store still does not list it; check `oisp-sensor ca status`.")
    _echo_runtime_hint()


@ca.command()
def uninstall() -> None:
    """Remove the CA from the operating system's trust store (needs root/admin)."""
    ca = _load_existing()
    store = _store()
    try:
        store.uninstall(ca.cert_path)
    except AdminRequired as e:
        _explain_admin(e, "uninstall")
    except CaptureError as e:
        fail(str(e))
    click.echo(f"Removed the OISP Local CA from the {store.name} trust store.")


@ca.command()
@click.pass_obj
def status(obj: dict[str, object]) -> None:
    """Is there a CA, and is it trusted? Exit status 0 only when it is."""
    try:
        ca = LocalCA.load(_directory())
    except CaptureError as e:
        fail(str(e))
    if ca is None:
        click.echo("CA: none yet")
        fail(
            "not trusted: create and trust it with `oisp-sensor ca init && oisp-sensor ca install`"
        )
    click.echo(f"CA: {ca.cert_path}")
    click.echo(f"    SHA-256 {ca.fingerprint_sha256}, valid until {ca.not_valid_after:%Y-%m-%d}")
    if split_constraints(_names(obj)) != (ca.names, ca.networks):
        click.echo(
            "    The intercepted hosts changed since it was made: it will be re-issued on the"
            " next start (`oisp-sensor ca init`), and must then be trusted again."
        )

    try:
        store: TrustStore | None = detect_store()
    except CaptureError:
        store = None
    in_store = store.is_trusted(ca.certificate) if store else None
    if store is None:
        click.echo("OS trust store: unknown on this system")
    else:
        click.echo(f"OS trust store ({store.name}): {_yes_no(in_store)}")

    python = default_context_verification(ca)
    click.echo(
        "Python ssl default context: "
        + ("accepts a fresh leaf" if python.ok else f"rejects a fresh leaf ({python.detail})")
    )
    trusted = in_store if in_store is not None else python.ok
    if not trusted:
        fix = "oisp-sensor ca install"
        if store is not None:
            fix += "   (as root; or run: " + " && ".join(store.install_commands(ca.cert_path)) + ")"
        fail(f"not trusted. Fix: {fix}\n  or, for one shell only: {ENV_COMMAND}")
    if not python.ok:
        click.echo(
            "Python does not use the OS store here; for Python, Node and other runtimes"
            f" with their own trust: {ENV_COMMAND}"
        )
    _echo_runtime_hint()


@ca.command()
@click.option(
    "--shell",
    type=click.Choice(["sh", "fish", "powershell"]),
    default=None,
    help="Syntax of the output (default: sh, or powershell on Windows).",
)
@click.pass_obj
def env(obj: dict[str, object], shell: str | None) -> None:
    """Print exports that make runtimes with their own trust store trust the CA."""
    ca = _load_or_create(obj)
    shell = shell or ("powershell" if sys.platform == "win32" else "sh")
    variables = ca_environment(ca)
    for name, value in variables.items():
        if shell == "fish":
            click.echo(f"set -gx {name} {shlex.quote(value)};")
        elif shell == "powershell":
            click.echo(f"$env:{name} = '{value.replace(chr(39), chr(39) * 2)}'")
        else:
            click.echo(f"export {name}={shlex.quote(value)}")


def _yes_no(value: bool | None) -> str:
    return "trusted" if value else "unknown" if value is None else "not trusted"


def _explain_admin(e: AdminRequired, action: str) -> None:
    lines = "\n".join(f"  {c}" for c in e.commands)
    fail(f"{e}. Run this as root/administrator to {action} the CA:\n{lines}")


def _echo_runtime_hint() -> None:
    click.echo(
        "Node, Python's certifi and some other runtimes keep their own trust store;"
        f" `oisp-sensor run` sets them up, or use {ENV_COMMAND}"
    )
