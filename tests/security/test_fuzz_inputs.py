"""The other doors hostile input comes through: bridge lines, the config file, and the redactor.

- A bridge line (RawCapture.from_json_line) is either a RawCapture or a DecodeError
  saying what is wrong — never anything else, whatever the bytes.
- A config file is either a Config or a ConfigError naming the key.
- The redactor takes any event-shaped data, never raises, and never lets a planted
  secret through, whatever structure it is buried in.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oisp_sensor import config as config_mod
from oisp_sensor.config import Config
from oisp_sensor.errors import ConfigError, DecodeError
from oisp_sensor.events import Event, RawCapture
from oisp_sensor.privacy.redact import EventRedactor
from tests.helpers import HASHER, T0
from tests.unit.privacy import planted

EXAMPLES = int(os.environ.get("OISP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=15,
)

# --- bridge lines ----------------------------------------------------------------------

VALID_LINE = {
    "id": "x1",
    "timestamp_ns": T0,
    "kind": "SslWrite",
    "pid": 12345,
    "tid": 12346,
    "data": base64.b64encode(b"POST / HTTP/1.1\r\n\r\n").decode(),
    "metadata": {"comm": "python3", "exe": "/usr/bin/python3", "uid": 501, "fd": 5, "ppid": 1},
    "remote_host": "api.openai.com",
    "remote_port": 443,
}


def parse_line(line: bytes | str) -> RawCapture | None:
    try:
        raw = RawCapture.from_json_line(line)
    except DecodeError as e:
        assert str(e), "a DecodeError must say what is wrong"
        return None
    assert isinstance(raw, RawCapture)
    # Whatever was accepted survives the wire form: the bridge can re-emit it.
    again = RawCapture.from_json_line(raw.to_json_line())
    assert again.data == raw.data and again.kind == raw.kind
    return raw


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_are_a_decode_error(line: bytes) -> None:
    parse_line(line)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_is_a_decode_error(line: str) -> None:
    parse_line(line)


@FUZZ
@given(st.sampled_from(sorted(VALID_LINE)), JSON)
def test_any_field_with_any_json_value(field: str, value: Any) -> None:
    parse_line(json.dumps({**VALID_LINE, field: value}))


@FUZZ
@given(st.dictionaries(st.sampled_from([*VALID_LINE, "conn_id", "capture_method"]), JSON))
def test_any_object_of_known_fields(obj: dict[str, Any]) -> None:
    parse_line(json.dumps(obj))


@FUZZ
@given(st.sampled_from(["uid", "fd", "ppid", "comm", "net", "cmdline"]), JSON)
def test_any_metadata_value(key: str, value: Any) -> None:
    parse_line(json.dumps({**VALID_LINE, "metadata": {**VALID_LINE["metadata"], key: value}}))


@FUZZ
@given(st.integers(0, 300), st.binary(min_size=1, max_size=3))
def test_a_valid_line_with_bytes_spliced_in(at: int, junk: bytes) -> None:
    line = json.dumps(VALID_LINE).encode()
    at %= len(line)
    parse_line(line[:at] + junk + line[at:])


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"null",
        b"[]",
        b'"x"',
        b"{}",
        b'{"kind": "SslWrite"}',
        b'{"kind": "SslWrite", "timestamp_ns": -1}',
        b'{"kind": "SslWrite", "timestamp_ns": 1.5}',
        b'{"kind": "SslWrite", "timestamp_ns": true}',
        b'{"kind": "SslWrite", "timestamp_ns": 99999999999999999999999}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "data": "***"}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "data": 5}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "metadata": []}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "metadata": {"fd": "3"}}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "pid": "1"}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "remote_port": 1e3}',
        b'{"kind": "SslWrite", "timestamp_ns": 1, "conn_id": [1]}',
        b'{"kind": "Exec", "timestamp_ns": 1}',
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b'{"kind": "SslWrite", "timestamp_ns": 1, "data": "' + b"A" * 3 + b'"}',
        b"\xff\xfe{}",
    ],
)
def test_known_malformations_are_decode_errors(line: bytes) -> None:
    with pytest.raises(DecodeError):
        RawCapture.from_json_line(line)


def test_a_huge_valid_line_is_accepted() -> None:
    big = {**VALID_LINE, "data": base64.b64encode(b"x" * (8 << 20)).decode()}
    raw = RawCapture.from_json_line(orjson.dumps(big))
    assert len(raw.data) == 8 << 20


# --- the config loader -----------------------------------------------------------------

TOML_KEYS = {
    "capture": ["proxy_port", "bind", "socket", "upstream_ca", "connect_to", "record_chunks"],
    "redaction": ["mode", "patterns"],
    "retention": ["days"],
    "sinks": ["jsonl", "jsonl_rotate_mb", "db", "no_db"],
    "web": ["enabled", "port", "bind", "token"],
    "bogus": ["x"],
}
TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=20),
    st.lists(st.text(max_size=10), max_size=3),
    st.lists(st.fixed_dictionaries({"name": st.text(max_size=5), "regex": st.text(max_size=8)})),
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return (
            "["
            + ", ".join(
                "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in item.items()) + "}"
                for item in value
            )
            + "]"
        )
    return json.dumps(value)


def load_or_error(path: Path, text: str | bytes, environ: dict[str, str] | None = None) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        config = config_mod.load(path, environ=environ or {})
    except ConfigError as e:
        assert str(e)
        return
    assert isinstance(config, Config)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(TOML_KEYS)), st.integers(0, 10), TOML_VALUES),
        max_size=6,
    )
)
def test_any_values_for_known_settings(tmp_path: Path, entries: list[tuple[str, int, Any]]) -> None:
    sections: dict[str, dict[str, Any]] = {}
    for section, i, value in entries:
        keys = TOML_KEYS[section]
        sections.setdefault(section, {})[keys[i % len(keys)]] = value
    text = "\n".join(
        f"[{section}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in values.items())
        for section, values in sections.items()
    )
    load_or_error(tmp_path / "config.toml", text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_a_config_file(tmp_path: Path, data: bytes) -> None:
    load_or_error(tmp_path / "config.toml", data)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('[]{}=".,\n #abcdeprxt0123456789-_:')), max_size=200))
def test_toml_like_text_as_a_config_file(tmp_path: Path, text: str) -> None:
    load_or_error(tmp_path / "config.toml", text)


@FUZZ
@given(
    st.sampled_from(
        [
            "OISP_CAPTURE_PROXY_PORT",
            "OISP_CAPTURE_CONNECT_TO",
            "OISP_CAPTURE_RECORD_CHUNKS",
            "OISP_REDACTION_MODE",
            "OISP_RETENTION_DAYS",
            "OISP_WEB_PORT",
            "OISP_WEB_ENABLED",
            "OISP_SINKS_NO_DB",
        ]
    ),
    st.text(max_size=20).filter(lambda s: "\0" not in s),
)
def test_any_environment_value(tmp_path: Path, name: str, value: str) -> None:
    load_or_error(tmp_path / "config.toml", "", environ={name: value})


@pytest.mark.parametrize("value", ["\u00b2", "--5", "1_0", "\u0663", "0x50", "8080.5"])
def test_known_bad_integers_from_the_environment_are_config_errors(
    tmp_path: Path, value: str
) -> None:
    """Found by hypothesis: "²".isdigit() is True but int("²") fails."""
    path = tmp_path / "config.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="expected an integer"):
        config_mod.load(path, environ={"OISP_CAPTURE_PROXY_PORT": value})


@pytest.mark.parametrize(
    "text",
    [
        "[capture]\nproxy_port = 99999999999999999999",
        "[capture]\nproxy_port = 1e400",
        "[retention]\ndays = nan",
        "[retention]\ndays = inf",
        "[redaction]\nmode = 'paranoid'",
        "[redaction]\npatterns = [{name = 'x', regex = '('}]",
        "[redaction]\npatterns = [{name = 'x'}]",
        "[redaction]\npatterns = 'x'",
        "[[providers]]\nhost = ''",
        "[[providers]]\napi = 5",
        "capture = 1",
        "[capture.proxy_port]",
        "a = " + "[" * 5000 + "]" * 5000,
    ],
)
def test_known_bad_configs_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        config_mod.load(path, environ={})


# --- the redactor ----------------------------------------------------------------------

SECRETS = [v for vs in planted.SECRETS.values() for v in vs]
EVENT_TYPES = [
    "ai.request",
    "ai.response",
    "ai.streaming_chunk",
    "agent.tool_call",
    "agent.tool_result",
    "network.connect",
    "process.exec",
]
CONTENT_KEYS = [
    "messages",
    "content",
    "choices",
    "message",
    "tool_calls",
    "arguments",
    "result",
    "delta",
    "tools",
    "description",
    "thinking",
    "error",
    "text",
    "content_hash",
    "request_id",
]


def with_secrets(value: Any, secret: str) -> Any:
    """Any JSON, with every string made to carry a secret (so there is always one to find)."""
    if isinstance(value, str):
        return f"{value} {secret} "
    if isinstance(value, list):
        return [with_secrets(v, secret) for v in value]
    if isinstance(value, dict):
        return {k: with_secrets(v, secret) for k, v in value.items()}
    return value


# What the decoder can produce: orjson (and decode's large-input parser) turn integers
# beyond 64 bits into floats, so events never hold them.
EVENT_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
EVENT_DATA = st.recursive(
    EVENT_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(CONTENT_KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    st.sampled_from(["safe", "full", "minimal"]),
    st.sampled_from(EVENT_TYPES),
    st.dictionaries(st.sampled_from(CONTENT_KEYS), EVENT_DATA, max_size=6),
    EVENT_DATA,
    st.sampled_from(SECRETS),
)
def test_the_redactor_takes_any_data_and_leaks_nothing(
    mode: str, event_type: str, data: dict[str, Any], attrs: Any, secret: str
) -> None:
    redactor = EventRedactor(mode, HASHER)
    event = Event(
        event_type=event_type,
        ts_ns=T0,
        data=with_secrets(data, secret),
        attrs={"x": with_secrets(attrs, secret)},
        process={"pid": 1, "cmdline": f"tool --key {secret}"},
        web_context={"referer": f"https://x.example/{secret}"},
    )
    out = redactor.redact(event).to_dict()
    assert redactor.counters.get("redaction.errors") == 0
    assert out["confidence"]["redaction_profile"] == mode
    orjson.dumps(out)
    # Only what the sensor itself makes (hashes, its ids) is not scanned.
    leaked = [s for s in _strings(out, skip_sensor_made=True) if secret in s]
    assert not leaked, leaked


SENSOR_MADE = ("request_id", "conversation_id", "key_prefix", "event_id")


def _strings(value: Any, *, skip_sensor_made: bool) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, skip_sensor_made=skip_sensor_made)]
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if skip_sensor_made and (k.endswith("_hash") or k in SENSOR_MADE):
                continue
            out += [k] if isinstance(k, str) else []
            out += _strings(v, skip_sensor_made=skip_sensor_made)
        return out
    return []


@FUZZ
@given(st.sampled_from(["safe", "full", "minimal"]), EVENT_DATA)
def test_the_redactor_never_raises_on_any_shape(mode: str, data: Any) -> None:
    redactor = EventRedactor(mode, HASHER)
    event = Event(event_type="ai.request", ts_ns=T0, data={"messages": data, "x": data})
    redactor.redact(event)
    assert redactor.counters.get("redaction.errors") == 0
    orjson.dumps(event.to_dict())


def test_tests_see_the_environment_unchanged() -> None:
    assert "OISP_REDACTION_MODE" not in os.environ
