"""The local CA: what it creates, what it signs, and when it re-issues itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from oisp_sensor.capture import ca as ca_mod
from oisp_sensor.capture.ca import LocalCA, ca_environment, default_constraint_names
from oisp_sensor.capture.trust import verify_handshake
from oisp_sensor.decode.registry import ProviderRegistry, ProviderSpec
from oisp_sensor.errors import CaptureError


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA.load_or_create(tmp_path / "ca")


def client_context(ca: LocalCA) -> ssl.SSLContext:
    """What a client trusting only our CA does: full chain and hostname verification."""
    return ssl.create_default_context(cafile=str(ca.cert_path))


def served_leaf(ca: LocalCA, host: str) -> x509.Certificate:
    """The certificate a client actually receives from `leaf_context(host)`."""
    client = client_context(ca)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = ca.leaf_context(host).wrap_bio(s_in, s_out, server_side=True)
    for _ in range(8):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = c.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


# --- the CA certificate ------------------------------------------------------------------------


def test_default_constraints_cover_every_provider_and_loopback(ca: LocalCA) -> None:
    assert set(ProviderRegistry().constraint_names()) | {"localhost"} == set(ca.names)
    assert ca.networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_ca_certificate_extensions(ca: LocalCA) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    assert cert.version is x509.Version.v3
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "OISP Local CA"
    )
    assert cert.issuer == cert.subject

    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0

    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature

    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and nc.value.excluded_subtrees is None
    permitted = nc.value.permitted_subtrees or []
    dns = {n.value for n in permitted if isinstance(n, x509.DNSName)}
    ips = {n.value for n in permitted if isinstance(n, x509.IPAddress)}
    assert dns == set(ca.names)
    assert ips == set(ca.networks)

    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc > dt.timedelta(days=3000)


def test_second_load_returns_the_same_ca(tmp_path: Path, ca: LocalCA) -> None:
    again = LocalCA.load_or_create(tmp_path / "ca")
    assert again.fingerprint_sha256 == ca.fingerprint_sha256
    assert again.key_path == ca.key_path


def test_default_directory_is_in_the_data_dir(data_dir: Path) -> None:
    ca = LocalCA.load_or_create()
    assert ca.cert_path == data_dir / "ca" / "ca.pem"
    assert ca.key_path.parent == data_dir / "ca"


def test_names_change_reissues_and_warns(
    tmp_path: Path, ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    old_key_digest = hashlib.sha256(ca.key_path.read_bytes()).hexdigest()
    custom = ProviderSpec("corp", "other", ("llm.corp.example",))
    names = default_constraint_names(ProviderRegistry([custom]))
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.ca"):
        reissued = LocalCA.load_or_create(tmp_path / "ca", names=names)

    assert "llm.corp.example" in reissued.names
    assert reissued.fingerprint_sha256 != ca.fingerprint_sha256
    assert hashlib.sha256(reissued.key_path.read_bytes()).hexdigest() != old_key_digest
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "re-issued" in message and "llm.corp.example" in message
    assert "oisp-sensor ca install" in message
    # The new constraint is real: a leaf for the custom host is now allowed.
    assert served_leaf(reissued, "llm.corp.example").subject.rfc4514_string()
    # And the same set again is not a change.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.ca"):
        same = LocalCA.load_or_create(tmp_path / "ca", names=list(reversed(names)))
    assert same.fingerprint_sha256 == reissued.fingerprint_sha256
    assert not caplog.records


def test_custom_ip_endpoint_becomes_an_ip_constraint(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca", names=["api.openai.com", "10.1.2.3"])
    assert ca.names == ("api.openai.com",)
    assert ca.networks == (ipaddress.ip_network("10.1.2.3/32"),)
    assert ca.permits("10.1.2.3") and not ca.permits("10.1.2.4")


def test_ca_close_to_expiry_is_reissued(
    tmp_path: Path, ca: LocalCA, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    soon = ca.not_valid_after - dt.timedelta(days=10)
    monkeypatch.setattr(ca_mod, "_now", lambda: soon)
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.ca"):
        renewed = LocalCA.load_or_create(tmp_path / "ca")
    assert renewed.fingerprint_sha256 != ca.fingerprint_sha256
    assert "expire" in caplog.text


@pytest.mark.parametrize(
    "names", [[], ["bad name.example"], ["exa mple.com"], ["-lead.example"], ["a" * 64 + ".com"]]
)
def test_invalid_constraint_names_are_rejected(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(CaptureError):
        LocalCA.load_or_create(tmp_path / "ca", names=names)


def test_names_are_normalised(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca", names=["API.OpenAI.com.", "*.openai.azure.com"])
    assert ca.names == ("api.openai.com", "openai.azure.com")


# --- broken CA directories are reported, never silently replaced --------------------------------


def test_key_missing_is_an_error(tmp_path: Path, ca: LocalCA) -> None:
    ca.key_path.unlink()
    with pytest.raises(CaptureError, match="ca init --force"):
        LocalCA.load_or_create(tmp_path / "ca")


def test_key_of_another_ca_is_an_error(tmp_path: Path, ca: LocalCA) -> None:
    other = LocalCA.load_or_create(tmp_path / "other")
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(CaptureError, match="does not belong"):
        LocalCA.load(tmp_path / "ca")


def test_garbage_certificate_is_an_error(tmp_path: Path, ca: LocalCA) -> None:
    ca.cert_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(CaptureError, match="unreadable"):
        LocalCA.load(tmp_path / "ca")


def test_a_certificate_without_constraints_is_refused(tmp_path: Path) -> None:
    import trustme

    foreign = trustme.CA()
    directory = tmp_path / "ca"
    directory.mkdir()
    foreign.cert_pem.write_to_path(str(directory / "ca.pem"))
    foreign.private_key_pem.write_to_path(str(directory / "ca-key.pem"))
    with pytest.raises(CaptureError):
        LocalCA.load(directory)


def test_a_key_left_without_its_certificate_is_replaced(tmp_path: Path, ca: LocalCA) -> None:
    """A crash between writing the key and the certificate leaves nothing anyone trusts."""
    ca.cert_path.unlink()
    fresh = LocalCA.load_or_create(tmp_path / "ca")
    assert fresh.cert_path.exists() and fresh.fingerprint_sha256 != ca.fingerprint_sha256


def test_load_without_a_ca_returns_none_and_creates_nothing(tmp_path: Path) -> None:
    assert LocalCA.load(tmp_path / "nothing") is None
    assert not (tmp_path / "nothing" / "ca.pem").exists()


# --- leaves ----------------------------------------------------------------------------------


def test_leaf_is_short_lived_and_well_formed(ca: LocalCA) -> None:
    before = dt.datetime.now(dt.UTC)
    leaf = served_leaf(ca, "api.openai.com")

    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(hours=24)
    # Back-dated a few minutes for clients whose clock is slightly behind.
    assert before - leaf.not_valid_before_utc >= dt.timedelta(minutes=2)
    assert leaf.not_valid_after_utc > before + dt.timedelta(hours=20)

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.openai.com"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    leaf.verify_directly_issued_by(ca.certificate)
    assert leaf.issuer == ca.certificate.subject


def test_leaf_offers_http11_alpn(ca: LocalCA) -> None:
    client = client_context(ca)
    client.set_alpn_protocols(["h2", "http/1.1"])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="api.anthropic.com")
    s = ca.leaf_context("api.anthropic.com").wrap_bio(s_in, s_out, server_side=True)
    for _ in range(8):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert c.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize(
    "host", ["api.openai.com", "myres.openai.azure.com", "localhost", "127.0.0.1", "::1"]
)
def test_allowed_hosts_verify_with_python_ssl(ca: LocalCA, host: str) -> None:
    result = verify_handshake(ca.leaf_context(host), host, client_context(ca))
    assert result.ok, result.detail


def test_ip_leaf_uses_an_ip_san(ca: LocalCA) -> None:
    leaf = served_leaf(ca, "127.0.0.1")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert not san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    "host",
    [
        "www.example.com",
        "api.openai.com.evil.example",
        "evilapi.openai.com",
        "openai.com",
        "*.openai.azure.com",
        "10.0.0.1",
        "",
        "bad host",
    ],
)
def test_no_leaf_outside_the_constraints(ca: LocalCA, host: str) -> None:
    assert not ca.permits(host)
    with pytest.raises(CaptureError):
        ca.leaf_context(host)


async def test_no_leaf_outside_the_constraints_async(ca: LocalCA) -> None:
    with pytest.raises(CaptureError, match="outside"):
        await ca.leaf_context_async("www.example.com")


def test_leaf_is_cached_per_host(ca: LocalCA) -> None:
    first = ca.leaf_context("api.openai.com")
    assert ca.leaf_context("API.OpenAI.com.") is first
    assert ca.leaf_context("api.anthropic.com") is not first


def test_leaf_is_renewed_well_before_expiry(ca: LocalCA, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    first = ca.leaf_context("api.openai.com")
    real = time.time()
    monkeypatch.setattr(ca_mod.time, "time", lambda: real + 11 * 3600)
    assert ca.leaf_context("api.openai.com") is first
    monkeypatch.setattr(ca_mod.time, "time", lambda: real + 13 * 3600)
    assert ca.leaf_context("api.openai.com") is not first


def test_leaf_cache_is_bounded(ca: LocalCA, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ca_mod, "LEAF_CACHE_SIZE", 3)
    for i in range(5):
        ca.leaf_context(f"r{i}.openai.azure.com")
    assert len(ca._leaves) == 3


async def test_async_leaf_is_generated_off_the_event_loop(
    ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = ca._sign_leaf

    def recording(host: str) -> tuple[bytes, bytes, dt.datetime]:
        threads.append(threading.get_ident())
        return original(host)

    monkeypatch.setattr(ca, "_sign_leaf", recording)
    contexts = await asyncio.gather(*(ca.leaf_context_async("api.openai.com") for _ in range(10)))
    assert all(c is contexts[0] for c in contexts)
    assert len(threads) == 1, "concurrent requests for one host share one generation"
    assert threads[0] != threading.get_ident()
    # Cached now: no new generation, same context.
    assert await ca.leaf_context_async("api.openai.com") is contexts[0]
    assert len(threads) == 1


def test_prewarm_skips_wildcards_and_foreign_hosts(ca: LocalCA) -> None:
    ca.prewarm(["api.openai.com", "*.openai.azure.com", "www.example.com", "127.0.0.1"])
    assert set(ca._leaves) == {"api.openai.com", "127.0.0.1"}


def test_no_temporary_leaf_files_remain(ca: LocalCA) -> None:
    for host in ("api.openai.com", "api.anthropic.com", "::1"):
        ca.leaf_context(host)
    leftovers = [p.name for p in ca.directory.iterdir() if p.name.startswith(".leaf-")]
    assert leftovers == []


# --- the environment for other runtimes ------------------------------------------------------


def test_ca_environment_bundle_holds_certifi_and_ours(ca: LocalCA) -> None:
    env = ca_environment(ca)
    bundle = Path(env["SSL_CERT_FILE"])
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "AWS_CA_BUNDLE"):
        assert env[name] == str(bundle)
    assert env["NODE_EXTRA_CA_CERTS"] == str(ca.cert_path)
    text = bundle.read_text()
    assert ca.cert_pem.decode() in text
    certifi_pems = Path(certifi.where()).read_text().count("BEGIN CERTIFICATE")
    assert text.count("BEGIN CERTIFICATE") >= certifi_pems + 1
    assert "PRIVATE KEY" not in text


def test_ca_environment_bundle_follows_a_reissued_ca(tmp_path: Path, ca: LocalCA) -> None:
    ca_environment(ca)
    new = LocalCA.create(tmp_path / "ca")
    bundle = Path(ca_environment(new)["SSL_CERT_FILE"]).read_text()
    assert new.cert_pem.decode() in bundle and ca.cert_pem.decode() not in bundle


def test_ca_environment_makes_a_fresh_python_trust_the_ca(ca: LocalCA) -> None:
    """A child process (what `run` starts) verifies a leaf through SSL_CERT_FILE alone."""
    env = {**os.environ, **ca_environment(ca)}
    server = ca.leaf_context("api.openai.com")
    # The child only checks its default context loads our CA as a trust anchor; the
    # handshake itself is done here with the same bundle the child would use.
    script = (
        "import ssl, sys\n"
        "ctx = ssl.create_default_context()\n"
        "names = [dict(x[0] for x in c['subject']).get('commonName') for c in ctx.get_ca_certs()]\n"
        "sys.exit(0 if 'OISP Local CA' in names else 1)\n"
    )
    assert subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode == 0
    bundle_ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    assert verify_handshake(server, "api.openai.com", bundle_ctx).ok


def test_sensors_starting_together_share_one_ca(tmp_path: Path) -> None:
    """The directory lock: concurrent first starts do not each make (and half-write) a CA."""
    script = (
        "import sys, pathlib\n"
        "from oisp_sensor.capture.ca import LocalCA\n"
        "print(LocalCA.load_or_create(pathlib.Path(sys.argv[1])).fingerprint_sha256)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "ca")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(6)
    ]
    prints = {p.communicate()[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    ca = LocalCA.load(tmp_path / "ca")
    assert ca is not None and prints == {ca.fingerprint_sha256}
