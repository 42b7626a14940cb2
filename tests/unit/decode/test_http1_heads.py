"""Head parsing works on one latin-1 decode per head: it must accept, reject and strip
exactly what the per-line bytes parser it replaced did (kept here as the reference)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.http1 import Head, Http1Connection, _parse_header_lines
from oisp_sensor.errors import DecodeError


def reference(lines: list[bytes]) -> list[tuple[str, str]]:
    """The bytes parser as it was: bytes.strip(), then decode each part."""
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not items:
                raise DecodeError("header continuation line before any header")
            name, value = items[-1]
            items[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        colon = line.find(b":")
        if colon <= 0:
            raise DecodeError(f"malformed header line ({len(line)} bytes, no field name)")
        raw_name = line[:colon]
        if raw_name != raw_name.strip() or b" " in raw_name:
            raise DecodeError("whitespace in a header field name")
        items.append(
            (raw_name.decode("latin-1").lower(), line[colon + 1 :].strip().decode("latin-1"))
        )
    return items


def parsed(lines: list[bytes]) -> list[tuple[str, str]] | str:
    try:
        return list(_parse_header_lines([line.decode("latin-1") for line in lines]))
    except DecodeError as e:
        return f"error: {e}"


def expected(lines: list[bytes]) -> list[tuple[str, str]] | str:
    try:
        return reference(lines)
    except DecodeError as e:
        return f"error: {e}"


# Bytes that matter to the parser (separators, every kind of whitespace, bytes that
# str.strip() but not bytes.strip() would remove), plus letters.
_BYTES = st.sampled_from(list(b" \t\r\x0b\x0c\x1c\x1f\x85\xa0:;aZ\xc0\xde\xff-"))
_LINE = st.lists(_BYTES, max_size=12).map(bytes)


@settings(max_examples=3000)
@given(st.lists(_LINE, max_size=6))
def test_header_lines_parse_as_the_bytes_parser_did(lines: list[bytes]) -> None:
    assert parsed(lines) == expected(lines)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"X-A: \xa0v\xa0", "\xa0v\xa0"),  # NBSP is not whitespace to HTTP (nor to bytes.strip)
        (b"X-A:\x85v\x85", "\x85v\x85"),
        (b"X-A: \x0bv\x0c ", "v"),
        (b"X-\xc0: v", None),  # latin-1 letters are lower-cased as before
    ],
)
def test_values_keep_what_is_not_ascii_whitespace(line: bytes, value: str | None) -> None:
    got = parsed([line])
    assert got == expected([line])
    if value is not None:
        assert got == [("x-a", value)]


def test_a_name_ending_in_ascii_whitespace_is_refused() -> None:
    assert parsed([b"X-A\x0b: v"]) == "error: whitespace in a header field name"
    assert parsed([b"X-A\xa0: v"]) == [("x-a\xa0", "v")]  # as the bytes parser accepted it


@settings(max_examples=300)
@given(
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from([b"\r\n", b"\n"]),
    st.integers(min_value=1, max_value=80),
)
def test_the_end_of_a_head_is_found_across_any_split(eol: bytes, blank: bytes, cut: int) -> None:
    head = b"GET /v1/x HTTP/1.1" + eol + b"Host: h" + eol + b"X-A: b" + eol + blank
    stream = head + b"GET /v1/y HTTP/1.1" + eol + blank
    conn = Http1Connection()
    events = []
    for piece in (stream[:cut], stream[cut:]):
        events += conn.feed_client(piece)
    targets = [e.head.target for e in events if isinstance(e, Head)]
    assert targets == ["/v1/x", "/v1/y"]
