"""Fuzz targets: one function per door hostile input comes through, bytes in, no result.

Each target raises only on a bug: an exception the code under test must not let out
(anything but DecodeError from the bridge parser, anything but ConfigError from the
config loader, anything at all from the Decoder and the redactor), or a planted
secret that survived redaction. `seeds(name)` gives each target a starting corpus.

The targets are plain functions so the atheris harness (run.py) and a plain replay
of a crash file (`python fuzz/run.py --replay FILE`) call exactly the same code.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.helpers import T0, captures

from fuzz.corpus import SEEDS
from oisp_sensor.config import load as load_config
from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.errors import ConfigError, DecodeError
from oisp_sensor.events import CaptureKind, Event, RawCapture
from oisp_sensor.privacy.detectors import Scanner
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.privacy.redact import EventRedactor

HASHER = KeyedHasher(b"oisp-sensor-fuzz-hash-key-32byte")
REDACTORS = {mode: EventRedactor(mode, HASHER) for mode in ("safe", "full", "minimal")}
SCANNER = Scanner(custom=[("ticket", r"INC-\d{6}")])
SECRETS = (
    "sk-proj-Zq3vN8xT2mK9pL4wR7sY1uB6cE0dF5gH8jK2lM4nP6qR8sT0",
    "AIzaSyD4kP9mQ2rS7tV1wX3yZ5bC8dF0gH2jK6l",
    "ghp_R4nD0mT0k3nV4lu3F0rT3st1ngPurp0s3sXyZ",
)
PII = ("jane.doe@example-mail.co.uk", "4111 1111 1111 1111")
PLANTED = SECRETS + PII


class Bug(AssertionError):
    """What a fuzz target raises when it found something wrong (not a crash of its own)."""


# --- the decoder -----------------------------------------------------------------------


def decoder(data: bytes) -> None:
    """Byte 0 picks a seed exchange (host and API shape), byte 1 how the input is used:
    as the request, as the response, or split in two; bytes 2-3 where reads are cut."""
    if len(data) < 4:
        return
    seed = SEEDS[data[0] % len(SEEDS)]
    mode, cut = data[1] % 3, int.from_bytes(data[2:4], "big")
    body = data[4:]
    if mode == 0:
        request, response = body, seed.response
    elif mode == 1:
        request, response = seed.request, body
    else:
        at = cut % (len(body) + 1)
        request, response = body[:at], body[at:]
    counters = Counters()
    d = Decoder(hasher=HASHER, counters=counters, record_chunks=True)
    splits = [1 + cut % 97, 1 + cut % 1013, 1 + cut % 4099]
    for raw in captures([(request, response)], host=seed.host, port=seed.port, splits=splits):
        d.feed(raw)
    d.close_all()


def decoder_seed(index: int, mode: int) -> bytes:
    seed = SEEDS[index]
    body = (
        seed.request if mode == 0 else seed.response if mode == 1 else seed.request + seed.response
    )
    return bytes([index, mode]) + len(seed.request).to_bytes(2, "big") + body


# --- the bridge line parser ------------------------------------------------------------


def bridge(data: bytes) -> None:
    try:
        raw = RawCapture.from_json_line(data)
    except DecodeError:
        return
    again = RawCapture.from_json_line(raw.to_json_line())
    if again.data != raw.data or again.kind != raw.kind:
        raise Bug("a parsed bridge line does not survive its own wire form")


def bridge_seeds() -> list[bytes]:
    out = []
    for i, seed in enumerate(SEEDS[:4]):
        raw = RawCapture(
            kind=CaptureKind.SSL_WRITE,
            timestamp_ns=T0 + i,
            data=seed.request,
            pid=100 + i,
            metadata={"comm": "python3", "fd": 5, "uid": 501, "ppid": 1},
            remote_host=seed.host,
            remote_port=seed.port,
        )
        out.append(raw.to_json_line())
    return out


# --- the config loader -----------------------------------------------------------------

_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="oisp-fuzz-config-"))


def config(data: bytes) -> None:
    path = _CONFIG_DIR / "config.toml"
    path.write_bytes(data)
    try:
        load_config(path, environ={})
    except ConfigError:
        pass


def config_seeds() -> list[bytes]:
    return [
        b'[capture]\nproxy_port = 8080\nbind = "127.0.0.1"\n'
        b'connect_to = ["a:443=127.0.0.1:8443"]\n',
        b'[redaction]\nmode = "minimal"\n'
        b'[[redaction.patterns]]\nname = "t"\nregex = "INC-\\\\d+"\n',
        b"[retention]\ndays = 7.5\n[web]\nport = 7777\nenabled = false\n",
        b'[[providers]]\nhost = "llm.corp.example"\napi = "openai"\nprovider = "corp"\n',
        b'[sinks]\njsonl = "/tmp/x.jsonl"\njsonl_rotate_mb = 10\nno_db = true\n',
    ]


# --- redaction -------------------------------------------------------------------------


def redact(data: bytes) -> None:
    """Byte 0 picks the mode and where a planted secret goes; the rest is the content,
    as JSON (any shape, dropped into an event) or as text with the secret spliced in."""
    if not data:
        return
    mode = ("safe", "full", "minimal")[data[0] % 3]
    secret = PLANTED[data[0] // 3 % len(PLANTED)]
    rest = data[1:]
    try:
        value = json.loads(rest)
        text = None
    except (ValueError, RecursionError):
        value = None
        text = rest.decode("utf-8", "replace")
    already = 0  # the input may hold the value itself, glued to other text (not a token)
    if text is not None:
        already = text.count(secret)
        at = len(text) // 2
        text = f"{text[:at]} {secret} {text[at:]}"
        value = text
    redactor = REDACTORS[mode]
    before = redactor.counters.get("redaction.errors")
    event = Event(
        event_type="ai.request",
        ts_ns=T0,
        data={"messages": [{"role": "user", "content": value}], "tools": value, "x": value},
        attrs={"decode_error": text or ""},
    )
    out = json.dumps(redactor.redact(event).to_dict())
    if redactor.counters.get("redaction.errors") != before:
        raise Bug("the redactor failed (and reduced the event to metadata)")
    kept_by_design = mode == "full" and secret in PII  # `full` masks secrets only
    # The text is in the event four times; the planted copy must be gone from each.
    if text is not None and out.count(secret) > 4 * already and not kept_by_design:
        raise Bug(f"a planted value survived {mode} redaction")


def redact_seeds() -> list[bytes]:
    return [
        b"\x00Hello, my card is 4111 1111 1111 1111 and my mail is a@b.co",
        b'\x01{"role": "user", "content": [{"type": "text", '
        b'"text": "key sk-proj-abc123def456ghi789jkl"}]}',
        b"\x02password=hunter22 Authorization: Bearer abc.def.ghi postgres://u:p@h/db",
        b"\x03-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
    ]


def detectors(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    last = 0
    for finding in SCANNER.find(text):
        if not last <= finding.start < finding.end <= len(text):
            raise Bug(f"finding out of order or bounds: {finding}")
        last = finding.end
    masked, _ = SCANNER.redact(text, lambda f: f"[{f.label}:00000000]")
    if SCANNER.find(masked):
        raise Bug("redacting twice found something new")


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "decoder": (decoder, lambda: [decoder_seed(i, m) for i in range(len(SEEDS)) for m in range(3)]),
    "bridge": (bridge, bridge_seeds),
    "config": (config, config_seeds),
    "redact": (redact, redact_seeds),
    "detectors": (detectors, lambda: [s[1:] for s in redact_seeds()]),
}


def write_seeds(name: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(TARGETS[name][1]()):
        (directory / f"seed-{i:03d}").write_bytes(seed)
