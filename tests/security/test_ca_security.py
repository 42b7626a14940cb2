"""What the CA promises (DESIGN.md §5), checked the way an attacker or a client would.

- The key file is 0600 in a 0700 directory from the moment it exists.
- No command prints the key, whatever the log level.
- The name constraint holds even against someone holding the key: a leaf they forge
  for a host outside the AI domains is refused by Python's ssl, curl and Node.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oisp_sensor.capture.ca import LocalCA, build_leaf_certificate
from oisp_sensor.capture.trust import verify_handshake

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")

OISP = Path(sys.executable).with_name("oisp-sensor")


# --- file permissions --------------------------------------------------------------------


def test_key_is_0600_and_directory_0700_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ca = LocalCA.load_or_create(tmp_path / "ca")
    finally:
        os.umask(old)
    assert ca.key_path.stat().st_mode & 0o777 == 0o600
    assert ca.directory.stat().st_mode & 0o777 == 0o700
    # The certificate is public: readable, but nobody else can write it.
    assert ca.cert_path.stat().st_mode & 0o777 == 0o644


def test_reissue_keeps_the_key_private(tmp_path: Path) -> None:
    LocalCA.load_or_create(tmp_path / "ca")
    old = os.umask(0)
    try:
        ca = LocalCA.create(tmp_path / "ca")
    finally:
        os.umask(old)
    assert ca.key_path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in ca.directory.iterdir() if p.name.endswith(".tmp")]


def test_a_key_readable_by_others_is_tightened_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    os.chmod(ca.key_path, 0o644)
    os.chmod(ca.directory, 0o755)
    with caplog.at_level(logging.WARNING, logger="oisp_sensor.capture.ca"):
        LocalCA.load_or_create(tmp_path / "ca")
    assert ca.key_path.stat().st_mode & 0o777 == 0o600
    assert ca.directory.stat().st_mode & 0o777 == 0o700
    assert "readable by others" in caplog.text and "ca init --force" in caplog.text


def test_temporary_leaf_files_are_private_while_they_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    seen: list[int] = []
    real_load = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: str, *args: object, **kwargs: object) -> None:
        seen.append(os.stat(certfile).st_mode & 0o777)
        real_load(self, certfile, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    ca.leaf_context("api.openai.com")
    assert seen == [0o600]


# --- the key never leaves -----------------------------------------------------------------


def key_fragments(ca: LocalCA) -> list[str]:
    """Every form in which the key could show up: PEM lines, DER base64, the scalar."""
    pem = ca.key_path.read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [
        *lines,
        base64.b64encode(der).decode()[:40],
        f"{scalar:x}",
        str(scalar),
        "PRIVATE KEY",
    ]


def test_no_command_ever_prints_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "OISP_DATA_DIR": str(tmp_path / "data")}
    commands = [
        ["ca", "init"],
        ["ca", "path"],
        ["ca", "show"],
        ["ca", "status"],
        ["ca", "env"],
        ["ca", "env", "--shell", "fish"],
        ["ca", "env", "--shell", "powershell"],
        ["ca", "init", "--force"],
        ["ca", "show"],
        ["ca", "--help"],
    ]
    outputs = []
    for args in commands:
        # -vv: even debug logging must not reveal it.
        result = subprocess.run(
            [str(OISP), "-vv", *args], env=env, capture_output=True, text=True, check=False
        )
        outputs.append(result.stdout + result.stderr)
    ca = LocalCA.load(tmp_path / "data" / "ca")
    assert ca is not None
    everything = "\n".join(outputs)
    assert ca.fingerprint_sha256 in everything  # the commands did run
    for fragment in key_fragments(ca):
        assert fragment not in everything
    # Nor does anything the environment points at contain it.
    bundle = (tmp_path / "data" / "ca" / "bundle.pem").read_text()
    assert "PRIVATE KEY" not in bundle
    assert "PRIVATE KEY" not in repr(ca) and "PRIVATE KEY" not in str(ca)


def test_errors_name_the_file_not_its_content(tmp_path: Path) -> None:
    """A corrupt key is reported by path; the bytes that failed to parse are not echoed."""
    ca = LocalCA.load_or_create(tmp_path / "ca")
    fragments = key_fragments(ca)
    ca.key_path.write_text(ca.key_path.read_text().replace("\n", "\n#", 1))
    env = {**os.environ, "OISP_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(OISP), "-vv", "ca", "show"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "ca init --force" in result.stderr
    for fragment in fragments[:-1]:  # "PRIVATE KEY" may legitimately appear in a file name
        assert fragment not in result.stdout + result.stderr


# --- the name constraint, enforced by real clients ----------------------------------------


def forged_server_context(ca: LocalCA, host: str) -> ssl.SSLContext:
    """What a thief holding the CA key could build: a leaf for any host, no checks."""
    stolen = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    assert isinstance(stolen, ec.EllipticCurvePrivateKey)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = build_leaf_certificate(
        host,
        leaf_key.public_key(),
        ca.certificate,
        stolen,
        now - dt.timedelta(minutes=5),
        now + dt.timedelta(hours=1),
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = ca.directory / f"forged-{host}.pem"
    path.write_bytes(pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path)
    return ctx


@asynccontextmanager
async def https_server(context: ssl.SSLContext) -> AsyncIterator[int]:
    """A real TLS server on 127.0.0.1:0 answering every request with 200 "ok"."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def python_get(ca: LocalCA, host: str, port: int) -> tuple[bool, str]:
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=host
        )
    except ssl.SSLCertVerificationError as e:
        return False, e.verify_message
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    body = await reader.read()
    writer.close()
    return body.endswith(b"ok"), body.decode(errors="replace")


async def curl_get(ca: LocalCA, host: str, port: int) -> tuple[bool, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--cacert",
        str(ca.cert_path),
        "--resolve",
        f"{host}:{port}:127.0.0.1",
        f"https://{host}:{port}/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode == 0 and out == b"ok", (out + err).decode(errors="replace")


NODE_CLIENT = r"""
const https = require('https'), fs = require('fs');
const [host, port, caPath] = process.argv.slice(1);
const lookup = (name, opts, cb) => opts && opts.all
  ? cb(null, [{address: '127.0.0.1', family: 4}]) : cb(null, '127.0.0.1', 4);
https.get({hostname: host, port: Number(port), path: '/', ca: fs.readFileSync(caPath),
           lookup, agent: false}, res => {
  let body = ''; res.on('data', d => body += d);
  res.on('end', () => { process.stdout.write(body); process.exit(body === 'ok' ? 0 : 2); });
}).on('error', e => { process.stdout.write(String(e.code) + ' ' + e.message); process.exit(1); });
"""


async def node_get(ca: LocalCA, host: str, port: int) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    proc = await asyncio.create_subprocess_exec(
        "node",
        "-e",
        NODE_CLIENT,
        host,
        str(port),
        str(ca.cert_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    return proc.returncode == 0, (out + err).decode(errors="replace")


CLIENTS = {"python": python_get, "curl": curl_get, "node": node_get}


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name != "python" and shutil.which(name) is None:
        pytest.skip(f"{name} is not installed, so it cannot be asked")
    return name


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA.load_or_create(tmp_path / "ca")


@pytest.mark.parametrize("host", ["www.example.com", "api.openai.com.evil.example", "openai.com"])
async def test_forged_leaf_outside_the_constraints_is_refused(
    ca: LocalCA, client: str, host: str
) -> None:
    async with https_server(forged_server_context(ca, host)) as port:
        ok, detail = await CLIENTS[client](ca, host, port)
    assert not ok, f"{client} accepted a forged leaf for {host}: {detail}"
    assert "subtree" in detail.lower(), detail  # refused for the constraint, not by accident


@pytest.mark.parametrize("host", ["api.openai.com", "eastus.openai.azure.com"])
async def test_forged_leaf_inside_the_constraints_is_accepted(
    ca: LocalCA, client: str, host: str
) -> None:
    """The control: the very same forgery works for an allowed host, so the refusal
    above is the name constraint at work and nothing else."""
    async with https_server(forged_server_context(ca, host)) as port:
        ok, detail = await CLIENTS[client](ca, host, port)
    assert ok, f"{client}: {detail}"


@pytest.mark.parametrize("host", ["api.openai.com", "api.anthropic.com", "localhost"])
async def test_local_ca_leaf_is_accepted(ca: LocalCA, client: str, host: str) -> None:
    async with https_server(await ca.leaf_context_async(host)) as port:
        ok, detail = await CLIENTS[client](ca, host, port)
    assert ok, f"{client}: {detail}"


def test_python_refusal_in_memory(ca: LocalCA) -> None:
    """The same check without sockets, with the exact OpenSSL verdict."""
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    result = verify_handshake(forged_server_context(ca, "bank.example"), "bank.example", client)
    assert not result.ok and result.detail == "permitted subtree violation"
