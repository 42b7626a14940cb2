"""RawCapture: the bridge's line format, parsed strictly, every fault named."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.errors import DecodeError
from oisp_sensor.events import CaptureKind, RawCapture

GOOD: dict[str, Any] = {
    "id": "cap-1",
    "timestamp_ns": 1703123456789000000,
    "kind": "SslWrite",
    "pid": 12345,
    "tid": 12346,
    "data": base64.b64encode(b"POST /v1/chat/completions HTTP/1.1\r\n").decode(),
    "metadata": {"comm": "python3", "exe": "/usr/bin/python3", "uid": 501, "fd": 5, "ppid": 1},
    "remote_host": "api.openai.com",
    "remote_port": 443,
}


def line(**changes: Any) -> bytes:
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def test_the_design_doc_example_parses() -> None:
    raw = RawCapture.from_json_line(line())
    assert raw.kind is CaptureKind.SSL_WRITE
    assert raw.timestamp_ns == 1703123456789000000
    assert raw.data == b"POST /v1/chat/completions HTTP/1.1\r\n"
    assert (raw.pid, raw.tid, raw.id) == (12345, 12346, "cap-1")
    assert raw.metadata["comm"] == "python3"
    assert (raw.remote_host, raw.remote_port) == ("api.openai.com", 443)
    assert raw.capture_method == "tls_boundary"


def test_str_input_and_minimal_lines() -> None:
    raw = RawCapture.from_json_line('{"kind": "ConnClose", "timestamp_ns": 0}')
    assert raw.kind is CaptureKind.CONN_CLOSE
    assert raw.data == b"" and raw.metadata == {} and raw.pid is None


@pytest.mark.parametrize("kind", list(CaptureKind))
def test_every_kind_round_trips_through_the_wire_form(kind: CaptureKind) -> None:
    raw = RawCapture(
        kind=kind,
        timestamp_ns=5,
        data=bytes(range(256)),
        pid=1,
        tid=2,
        id="x",
        conn_id="c9",
        metadata={"fd": 3, "comm": "node"},
        remote_host="h",
        remote_port=1,
        capture_method="mitm_proxy",
    )
    wire = raw.to_json_line()
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert RawCapture.from_json_line(wire) == raw


def test_connection_key_prefers_conn_id_then_fd_then_remote() -> None:
    with_conn = RawCapture.from_json_line(line(conn_id=77))
    assert with_conn.connection_key == ("conn", 12345, "77")
    assert RawCapture.from_json_line(line()).connection_key == ("fd", 12345, 5)
    bare = RawCapture.from_json_line(line(metadata={}))
    assert bare.connection_key == ("remote", 12345, "api.openai.com", 443)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'"text"', "not a JSON object but str"),
        (b"null", "not a JSON object but NoneType"),
        (line(kind="SslPeek"), "unknown kind 'SslPeek'"),
        (line(kind=...), "unknown kind None"),
        (line(kind=["SslRead"]), "unknown kind"),
        (line(kind=3), "unknown kind 3"),
        (line(timestamp_ns=...), "timestamp_ns must be a non-negative integer"),
        (line(timestamp_ns=-1), "timestamp_ns must be a non-negative integer"),
        (line(timestamp_ns="1703123456789000000"), "timestamp_ns must be a non-negative integer"),
        (line(timestamp_ns=1.5), "timestamp_ns must be a non-negative integer"),
        (line(timestamp_ns=True), "timestamp_ns must be a non-negative integer"),
        (line(data=12), "data must be a base64 string"),
        (line(data=False), "data must be a base64 string"),
        (line(data=[]), "data must be a base64 string"),
        (line(data="not base64!"), "bad base64"),
        (line(data="QU=JD"), "bad base64"),
        (line(data="QUJ"), "bad base64"),
        (line(metadata=[]), "metadata must be an object"),
        (line(metadata="comm=python"), "metadata must be an object"),
        (line(metadata={"fd": "5"}), "metadata.fd must be a non-negative integer"),
        (line(metadata={"uid": -1}), "metadata.uid must be a non-negative integer"),
        (line(metadata={"ppid": True}), "metadata.ppid must be a non-negative integer"),
        (line(pid="12345"), "pid must be a non-negative integer"),
        (line(pid=-5), "pid must be a non-negative integer"),
        (line(tid=1.0), "tid must be a non-negative integer"),
        (line(remote_port=70000), "remote_port must be an integer from 0 to 65535"),
        (line(remote_port="443"), "remote_port must be an integer from 0 to 65535"),
        (line(remote_host=1), "remote_host must be a string"),
        (line(id=5), "id must be a string"),
        (line(conn_id=True), "conn_id must be a string or integer"),
        (line(conn_id={"a": 1}), "conn_id must be a string or integer"),
        (line(capture_method="telepathy"), "capture_method must be one of"),
        (line(capture_method=None), "capture_method must be one of"),
    ],
)
def test_every_malformation_is_a_decode_error_that_says_what(bad: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        RawCapture.from_json_line(bad)
    assert message in str(info.value)
    assert len(str(info.value)) < 300


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "kind",
                    "timestamp_ns",
                    "data",
                    "metadata",
                    "pid",
                    "tid",
                    "remote_port",
                    "id",
                    "remote_host",
                    "conn_id",
                    "capture_method",
                ]
            ),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
                max_leaves=6,
            ),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_arbitrary_lines_parse_or_raise_decode_error(data: bytes) -> None:
    try:
        raw = RawCapture.from_json_line(data)
    except DecodeError:
        return
    assert isinstance(raw.kind, CaptureKind)
    assert raw.timestamp_ns >= 0
