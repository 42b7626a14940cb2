"""The local CA: a name-constrained "OISP Local CA" and the short-lived leaves it signs.

The relay terminates TLS for AI hosts with a leaf signed by this CA, so the CA is
the most sensitive thing the sensor owns. Three properties limit the damage if it
ever leaks (DESIGN.md §5):

- the CA carries critical X.509 nameConstraints, so real TLS clients (OpenSSL, Node,
  Go, browsers) refuse any leaf it signs for a host outside the AI provider domains,
  even one forged with the stolen key;
- its private key is a 0600 file in a 0700 directory and is never printed or logged;
- leaves live at most 24 hours and exist only in memory (and, for the instant
  `ssl` needs to load them, a 0600 temporary file in that same directory).

The constraint set comes from the provider registry (plus custom endpoints); when it
changes, the CA is re-issued and the user is told to trust it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oisp_sensor.decode.registry import ProviderRegistry
from oisp_sensor.errors import CaptureError
from oisp_sensor.paths import data_dir, ensure_private_dir, write_private

log = logging.getLogger(__name__)

CA_COMMON_NAME = "OISP Local CA"
CERT_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"
BUNDLE_FILE = "bundle.pem"

# Local model servers (Ollama, LM Studio, vLLM) are reached by loopback name or address.
LOCAL_NAMES = ("localhost", "127.0.0.0/8", "::1/128")

CA_VALIDITY = dt.timedelta(days=3650)
CA_RENEW_BEFORE = dt.timedelta(days=30)
LEAF_VALIDITY = dt.timedelta(hours=24)  # the whole window, skew margin included
LEAF_BACKDATE = dt.timedelta(minutes=5)  # clients with a slightly slow clock still accept it
LEAF_RENEW_AFTER = dt.timedelta(hours=12)  # half-life: a cached leaf never nears expiry
LEAF_CACHE_SIZE = 4096

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def default_constraint_names(registry: ProviderRegistry | None = None) -> tuple[str, ...]:
    """What the CA may sign for: every provider host (custom endpoints included) + loopback.

    The relay and the CLI must derive the set the same way, or each would re-issue
    the CA the other just made: pass the registry built from the same config.
    """
    registry = registry or ProviderRegistry()
    return (*registry.constraint_names(), *LOCAL_NAMES)


def _normalise_dns(name: str) -> str:
    """Lower-case A-label form, no trailing dot; raises ValueError for a non-hostname."""
    name = name.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as e:
        raise ValueError(f"not a valid host name: {name!r}") from e
    if not name or len(name) > 253 or not all(_LABEL.match(p) for p in name.split(".")):
        raise ValueError(f"not a valid host name: {name!r}")
    return name


def _parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def split_constraints(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[IPNetwork, ...]]:
    """Sort `names` into DNS names and IP networks (an address or CIDR, e.g. "::1/128").

    Returned sorted and de-duplicated, so two spellings of one set compare equal.
    """
    dns: set[str] = set()
    nets: set[IPNetwork] = set()
    for raw in names:
        try:
            nets.add(ipaddress.ip_network(raw.strip().strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        try:
            dns.add(_normalise_dns(raw))
        except ValueError as e:
            raise CaptureError(f"CA name constraint: {e}") from None
    if not dns and not nets:
        raise CaptureError("CA name constraints: the set of permitted names is empty")
    return tuple(sorted(dns)), tuple(sorted(nets, key=lambda n: (n.version, n)))


@dataclass(frozen=True, slots=True)
class _Leaf:
    context: ssl.SSLContext
    renew_at: float  # unix time after which a fresh leaf is issued


class LocalCA:
    """A loaded CA (certificate, key, constraint set) plus its in-memory leaf cache."""

    def __init__(
        self,
        directory: Path,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self.directory = directory
        self.cert_path = directory / CERT_FILE
        self.key_path = directory / KEY_FILE
        self.certificate = certificate
        self._key = key
        self.names, self.networks = _constraints_of(certificate)
        self._ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        self._leaves: OrderedDict[str, _Leaf] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Task[ssl.SSLContext]] = {}

    def __repr__(self) -> str:  # never show the key, even by accident
        return f"<LocalCA {self.cert_path} sha256={self.fingerprint_sha256[:23]}…>"

    # --- creation and loading ---------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls, directory: Path | None = None, names: Sequence[str] | None = None
    ) -> LocalCA:
        """The CA in `directory`, created on first use and re-issued when `names` changed.

        Re-issuing makes a new key, so the previously trusted certificate becomes
        useless (nothing can sign with it any more) and the user must trust the new one.
        """
        directory = directory or default_directory()
        wanted = split_constraints(default_constraint_names() if names is None else names)
        with _directory_lock(directory):
            ca = cls.load(directory)
            if ca is None:
                ca = cls._create(directory, wanted)
                log.info(
                    "created a new OISP Local CA in %s; trust it once with `oisp-sensor ca"
                    ' install` (or `eval "$(oisp-sensor ca env)"` for one shell)',
                    directory,
                )
                return ca
            if (ca.names, ca.networks) != wanted:
                added = sorted(set(wanted[0]) - set(ca.names)) + [
                    str(n) for n in set(wanted[1]) - set(ca.networks)
                ]
                removed = sorted(set(ca.names) - set(wanted[0])) + [
                    str(n) for n in set(ca.networks) - set(wanted[1])
                ]
                ca = cls._create(directory, wanted)
                log.warning(
                    "the set of intercepted hosts changed (added: %s; removed: %s), so the OISP"
                    " Local CA was re-issued with new name constraints. The old CA is no longer"
                    " valid: trust the new one with `oisp-sensor ca install` (and re-run"
                    " `oisp-sensor ca env` in shells that use it).",
                    _summarise(added),
                    _summarise(removed),
                )
            elif ca.not_valid_after - _now() < CA_RENEW_BEFORE:
                ca = cls._create(directory, wanted)
                log.warning(
                    "the OISP Local CA was about to expire and was re-issued; trust the new one"
                    " with `oisp-sensor ca install`"
                )
            return ca

    @classmethod
    def create(cls, directory: Path | None = None, names: Sequence[str] | None = None) -> LocalCA:
        """A brand-new CA (new key), replacing any existing one: `ca init --force`."""
        directory = directory or default_directory()
        wanted = split_constraints(default_constraint_names() if names is None else names)
        with _directory_lock(directory):
            return cls._create(directory, wanted)

    @staticmethod
    def exists(directory: Path | None = None) -> bool:
        """Whether a CA certificate is already there (without reading or creating anything)."""
        return ((directory or default_directory()) / CERT_FILE).exists()

    @classmethod
    def load(cls, directory: Path | None = None) -> LocalCA | None:
        """The existing CA, or None if there is none yet. Never creates or re-issues.

        A certificate without its key, or files that do not parse or do not belong
        together, are a `CaptureError`: silently replacing them would break trust.
        """
        directory = directory or default_directory()
        cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
        if not cert_path.exists():
            return None
        _tighten_permissions(directory, key_path)
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except FileNotFoundError:
            raise CaptureError(
                f"the CA certificate {cert_path} exists but its key {key_path} does not;"
                " create a new CA with `oisp-sensor ca init --force`"
            ) from None
        except (ValueError, TypeError, OSError) as e:
            # The message names the file, never its content.
            raise CaptureError(
                f"the CA in {directory} is unreadable ({type(e).__name__}); create a new one"
                " with `oisp-sensor ca init --force`"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or _public_der(
            key.public_key()
        ) != _public_der(certificate.public_key()):
            raise CaptureError(
                f"the CA key in {key_path} does not belong to {cert_path}; create a new CA with"
                " `oisp-sensor ca init --force`"
            )
        try:
            return cls(directory, certificate, key)
        except x509.ExtensionNotFound:
            raise CaptureError(
                f"{cert_path} is not an OISP Local CA (no name constraints); create one with"
                " `oisp-sensor ca init --force`"
            ) from None

    @classmethod
    def _create(
        cls, directory: Path, constraints: tuple[tuple[str, ...], tuple[IPNetwork, ...]]
    ) -> LocalCA:
        ensure_private_dir(directory)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _build_ca_certificate(key, *constraints)
        # Key first: a crash in between leaves a key without a certificate, which the
        # next start simply replaces; never a certificate whose key is missing.
        write_private(
            directory / KEY_FILE,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_public(directory / CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM))
        return cls(directory, certificate, key)

    # --- facts about the CA ----------------------------------------------------------------

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint_sha256(self) -> str:
        """Colon-separated upper-case hex, as browsers and `openssl x509 -fingerprint` show it."""
        return _colon_hex(self.certificate.fingerprint(hashes.SHA256()))

    @property
    def fingerprint_sha1(self) -> str:
        """The thumbprint Windows and macOS tools use to name a certificate."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303

    @property
    def not_valid_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_valid_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def permits(self, host: str) -> bool:
        """Whether the name constraints allow a leaf for `host` (RFC 5280 §4.2.1.10)."""
        ip = _parse_ip(host)
        if ip is not None:
            return any(ip in net for net in self.networks)
        if "*" in host:
            return False  # we sign for exact hosts only, never wildcards
        try:
            name = _normalise_dns(host)
        except ValueError:
            return False
        # A dNSName constraint matches the name itself and every name below it.
        return any(name == c or name.endswith("." + c) for c in self.names)

    # --- leaves -----------------------------------------------------------------------------

    def leaf_context(self, host: str) -> ssl.SSLContext:
        """A server-side context presenting a leaf for `host`; cached, so cheap after the first.

        Raises CaptureError for a host outside the name constraints: such a leaf would
        be rejected by every client anyway, and must never exist.
        """
        key = _cache_key(host)
        leaf = self._cached(key)
        if leaf is not None:
            return leaf
        return self._issue(key)

    async def leaf_context_async(self, host: str) -> ssl.SSLContext:
        """Like `leaf_context`, but a missing leaf is generated in a worker thread.

        Concurrent requests for one host share one generation.
        """
        key = _cache_key(host)
        leaf = self._cached(key)
        if leaf is not None:
            return leaf
        if not self.permits(key):
            return self._issue(key)  # raises at once, without a trip to a thread
        loop = asyncio.get_running_loop()
        task = self._pending.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(asyncio.to_thread(self._issue, key))
            self._pending[key] = task
            task.add_done_callback(functools.partial(self._forget_pending, key))
        return await asyncio.shield(task)

    def prewarm(self, hosts: Iterable[str]) -> None:
        """Issue leaves ahead of time for the permitted, non-wildcard hosts among `hosts`."""
        for host in hosts:
            if host.startswith("*") or not self.permits(host):
                log.debug("prewarm: skipping %s (wildcard or not permitted)", host)
                continue
            self.leaf_context(host)

    def _forget_pending(self, key: str, task: asyncio.Task[ssl.SSLContext]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]

    def _cached(self, key: str) -> ssl.SSLContext | None:
        with self._lock:
            leaf = self._leaves.get(key)
            if leaf is None or time.time() >= leaf.renew_at:
                return None
            self._leaves.move_to_end(key)
            return leaf.context

    def _issue(self, key: str) -> ssl.SSLContext:
        if not self.permits(key):
            raise CaptureError(
                f"refusing to issue a certificate for {key!r}: it is outside the CA's name"
                " constraints (add it as a custom provider to intercept it)"
            )
        cert_pem, key_pem, not_before = self._sign_leaf(key)
        context = self._server_context(cert_pem, key_pem)
        leaf = _Leaf(context, (not_before + LEAF_RENEW_AFTER).timestamp())
        with self._lock:
            self._leaves[key] = leaf
            self._leaves.move_to_end(key)
            while len(self._leaves) > LEAF_CACHE_SIZE:
                self._leaves.popitem(last=False)
        return context

    def _sign_leaf(self, host: str) -> tuple[bytes, bytes, dt.datetime]:
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        not_before = _now() - LEAF_BACKDATE
        not_after = min(not_before + LEAF_VALIDITY, self.not_valid_after)
        certificate = build_leaf_certificate(
            host, leaf_key.public_key(), self.certificate, self._key, not_before, not_after
        )
        key_pem = leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem, not_before

    def _server_context(self, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        # `ssl` loads keys only from files: a 0600 file in the 0700 CA directory, removed
        # as soon as it is read.
        fd, name = tempfile.mkstemp(prefix=".leaf-", suffix=".pem", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(cert_pem + key_pem)
            context.load_cert_chain(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        return context


def build_leaf_certificate(
    host: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A TLS server certificate for `host`, with no check of the constraints.

    Public so tests can forge a leaf outside the constraints and watch clients refuse it.
    """
    ip = _parse_ip(host)
    if ip is not None:
        san: x509.GeneralName = x509.IPAddress(ip)
        # No CN: OpenSSL checks a hostname-like CN against the DNS constraints.
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OISP Sensor")])
    else:
        san = x509.DNSName(host)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])])
    ca_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _build_ca_certificate(
    key: ec.EllipticCurvePrivateKey, names: tuple[str, ...], networks: tuple[IPNetwork, ...]
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OISP Sensor"),
            # Several machines' CAs must be told apart in a trust store listing.
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _local_identity()),
        ]
    )
    now = _now()
    permitted: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    permitted += [x509.IPAddress(n) for n in networks]
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _constraints_of(certificate: x509.Certificate) -> tuple[tuple[str, ...], tuple[IPNetwork, ...]]:
    constraints = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    dns: list[str] = []
    nets: list[IPNetwork] = []
    for name in constraints.permitted_subtrees or ():
        if isinstance(name, x509.DNSName):
            dns.append(name.value)
        elif isinstance(name, x509.IPAddress) and not isinstance(
            name.value, ipaddress.IPv4Address | ipaddress.IPv6Address
        ):
            nets.append(name.value)
    return tuple(sorted(set(dns))), tuple(sorted(set(nets), key=lambda n: (n.version, n)))


# --- the environment for runtimes with their own trust store ------------------------------


def ca_environment(ca: LocalCA) -> dict[str, str]:
    """Environment variables that make common runtimes trust the CA, for `run` and `ca env`.

    Variables that *replace* a runtime's trust store point at a bundle (certifi's CAs,
    the system's, and ours) so nothing else stops working; Node *adds* to its own store,
    so it gets our certificate alone. The bundle is rewritten on every call so it
    always holds the current CA.
    """
    bundle = write_bundle(ca)
    combined = str(bundle)
    return {
        "SSL_CERT_FILE": combined,  # OpenSSL (Python ssl, httpx, aiohttp), Ruby, Go, rustls
        "REQUESTS_CA_BUNDLE": combined,  # requests
        "CURL_CA_BUNDLE": combined,  # curl, and requests too
        "PIP_CERT": combined,  # pip
        "AWS_CA_BUNDLE": combined,  # boto3/botocore (Bedrock)
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": combined,  # gRPC-based clients
        "DENO_CERT": combined,  # Deno
        "NODE_EXTRA_CA_CERTS": str(ca.cert_path),  # Node and Bun (added to their roots)
    }


def write_bundle(ca: LocalCA) -> Path:
    """certifi's CAs + the system's default CA file (if any) + ours, in one PEM file."""
    parts = [Path(certifi.where()).read_bytes()]
    system = _system_ca_file()
    if system is not None:
        with contextlib.suppress(OSError):
            parts.append(system.read_bytes())
    parts.append(b"# " + CA_COMMON_NAME.encode() + b" (oisp-sensor)\n" + ca.cert_pem)
    path = ca.directory / BUNDLE_FILE
    _write_public(path, b"\n".join(p.rstrip(b"\n") + b"\n" for p in parts))
    return path


def _system_ca_file() -> Path | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# --- small helpers -------------------------------------------------------------------------


def default_directory() -> Path:
    return data_dir() / "ca"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _cache_key(host: str) -> str:
    ip = _parse_ip(host)
    if ip is not None:
        return str(ip)
    return host.strip().lower().rstrip(".")


def _summarise(items: Sequence[str], limit: int = 8) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _public_der(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def _local_identity() -> str:
    """A random tag, so several CAs (machines, users, re-issues) differ in a trust store list."""
    seed = f"{os.getpid()}-{time.time_ns()}-{os.urandom(8).hex()}"
    return "sensor " + hashlib.sha256(seed.encode()).hexdigest()[:12]


def _write_public(path: Path, data: bytes) -> None:
    """Atomic write of a public file (a reader never sees half a certificate)."""
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + "-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tighten_permissions(directory: Path, key_path: Path) -> None:
    """A key someone else could have read is reported; both modes are fixed either way."""
    if os.name != "posix":
        return
    with contextlib.suppress(FileNotFoundError):
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "the CA key %s was readable by others (mode %o); restricting it to 0600."
                " If others may have copied it, run `oisp-sensor ca init --force`.",
                key_path,
                mode,
            )
            os.chmod(key_path, 0o600)
    with contextlib.suppress(FileNotFoundError):
        if directory.stat().st_mode & 0o077:
            os.chmod(directory, 0o700)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise CA creation between processes (two sensors starting at once)."""
    ensure_private_dir(directory)
    if os.name != "posix":
        yield
        return
    import fcntl

    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
