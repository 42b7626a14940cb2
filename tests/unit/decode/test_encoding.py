"""Content-Encoding decoders: real compressors' output in, the original out, in any chunking."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Sequence

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.decode.encoding import (
    BodyTooLarge,
    BrotliDecoder,
    IdentityDecoder,
    ZlibDecoder,
    ZstdDecoder,
    content_decoder,
)
from oisp_sensor.errors import DecodeError

LIMIT = 32 * 1024 * 1024
TEXT = b'{"choices":[{"message":{"content":"' + b"hello compressed world " * 400 + b'"}}]}'


def raw_deflate(data: bytes) -> bytes:
    obj = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


def zstd_frames(data: bytes) -> bytes:
    cctx = zstandard.ZstdCompressor()
    half = len(data) // 2
    return cctx.compress(data[:half]) + cctx.compress(data[half:])


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
    "identity": lambda data: data,
}


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def decode_all(header: str, pieces: Sequence[bytes], limit: int = LIMIT) -> bytes:
    dec = content_decoder(header, limit)
    return b"".join(dec.decode(p) for p in pieces) + dec.flush()


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_round_trips(coding: str) -> None:
    assert decode_all(coding, [ENCODERS[coding](TEXT)]) == TEXT


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_split_at_every_byte(coding: str) -> None:
    encoded = ENCODERS[coding](TEXT)
    assert decode_all(coding, [encoded[i : i + 1] for i in range(len(encoded))]) == TEXT


def test_header_names_are_case_insensitive_and_trimmed() -> None:
    assert decode_all(" GZip ", [gzip.compress(TEXT)]) == TEXT


def test_multi_member_gzip() -> None:
    # RFC 1952 §2.2: a gzip file is a series of members; all of them are the body.
    body = gzip.compress(b"first member, ") + gzip.compress(b"second, ") + gzip.compress(b"third")
    assert decode_all("gzip", [body]) == b"first member, second, third"
    for cut in range(1, len(body)):
        assert decode_all("gzip", [body[:cut], body[cut:]]) == b"first member, second, third"


def test_raw_deflate_is_accepted_like_browsers_do() -> None:
    assert decode_all("deflate", [raw_deflate(TEXT)]) == TEXT


@pytest.mark.parametrize("make", [zlib.compress, raw_deflate], ids=["zlib", "raw"])
def test_deflate_flavour_is_chosen_right_when_the_first_byte_arrives_alone(
    make: Callable[[bytes], bytes],
) -> None:
    encoded = make(TEXT)
    assert decode_all("deflate", [encoded[:1], encoded[1:]]) == TEXT


def test_zstd_several_frames() -> None:
    assert decode_all("zstd", [zstd_frames(TEXT)]) == TEXT


def test_chained_codings_are_undone_last_applied_first() -> None:
    # "Content-Encoding: gzip, br" = gzip applied first, then br (RFC 9110 §8.4).
    body = brotli.compress(gzip.compress(TEXT))
    assert decode_all("gzip, br", [body]) == TEXT
    triple = zstandard.ZstdCompressor().compress(zlib.compress(gzip.compress(TEXT)))
    assert decode_all(
        "gzip, deflate, zstd", [triple[i : i + 7] for i in range(0, len(triple), 7)]
    ) == (TEXT)


def test_identity_in_a_chain_is_ignored() -> None:
    assert isinstance(content_decoder("identity", LIMIT), IdentityDecoder)
    assert isinstance(content_decoder(None, LIMIT), IdentityDecoder)
    assert decode_all("identity, gzip", [gzip.compress(TEXT)]) == TEXT


@pytest.mark.parametrize("coding", ["compress", "x-custom", "gzip, lzma"])
def test_unknown_coding_is_an_error(coding: str) -> None:
    with pytest.raises(DecodeError, match="unsupported Content-Encoding"):
        content_decoder(coding, LIMIT)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_corrupt_data_is_a_decode_error(coding: str) -> None:
    with pytest.raises(DecodeError):
        decode_all(coding, [b"this is not compressed at all, not in any format" * 3])


def test_corrupt_gzip_member_after_a_good_one_is_an_error() -> None:
    with pytest.raises(DecodeError, match="gzip"):
        decode_all("gzip", [gzip.compress(b"ok") + b"\x1f\x8bXXXXXXXXXXXXXXXXXXXX"])


def test_truncated_stream_yields_what_it_had() -> None:
    # The HTTP layer knows whether the body was complete; the codec returns what it can.
    encoded = gzip.compress(TEXT)
    got = decode_all("gzip", [encoded[: len(encoded) // 2]])
    assert TEXT.startswith(got) and got


BOMB = b"\0" * (64 * 1024 * 1024)


@pytest.mark.parametrize(
    "coding",
    ["gzip", "deflate", "br", "zstd"],
)
def test_decompression_bomb_stops_at_the_limit(coding: str) -> None:
    encoded = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": lambda d: brotli.compress(d, quality=5),
        "zstd": zstandard.ZstdCompressor(level=3).compress,
    }[coding](BOMB)
    assert len(encoded) < 200_000  # 64 MiB of zeros: a real bomb
    limit = 1024 * 1024
    dec = content_decoder(coding, limit)
    produced = 0
    with pytest.raises(BodyTooLarge):
        for i in range(0, len(encoded), 4096):
            produced += len(dec.decode(encoded[i : i + 4096]))
        produced += len(dec.flush())
    assert produced <= limit


def test_body_exactly_at_the_limit_is_fine() -> None:
    data = os.urandom(10_000)
    assert decode_all("gzip", [gzip.compress(data)], limit=10_000) == data
    with pytest.raises(BodyTooLarge):
        decode_all("gzip", [gzip.compress(data)], limit=9_999)


def test_body_too_large_is_a_decode_error() -> None:
    assert issubclass(BodyTooLarge, DecodeError)


def test_decoder_classes_have_the_incremental_shape() -> None:
    for dec in (
        ZlibDecoder(gzip=True, limit=LIMIT),
        BrotliDecoder(LIMIT),
        ZstdDecoder(LIMIT),
        IdentityDecoder(),
    ):
        assert dec.decode(b"") == b""


@settings(max_examples=80, deadline=None)
@given(
    coding=st.sampled_from(sorted(ENCODERS) + ["raw-deflate", "gzip-multi", "zstd-multi", "chain"]),
    payload=st.binary(max_size=2000),
    cuts=st.lists(st.integers(1, 3000), max_size=12),
)
def test_any_chunking_gives_the_same_bytes(coding: str, payload: bytes, cuts: list[int]) -> None:
    header, encoded = {
        "raw-deflate": ("deflate", lambda: raw_deflate(payload)),
        "gzip-multi": ("gzip", lambda: gzip.compress(payload[:7]) + gzip.compress(payload[7:])),
        "zstd-multi": ("zstd", lambda: zstd_frames(payload)),
        "chain": ("deflate, br", lambda: brotli.compress(zlib.compress(payload))),
    }.get(coding, (coding, lambda: ENCODERS[coding](payload)))
    body = encoded()
    assert decode_all(header, split_at(body, cuts)) == payload


@settings(max_examples=150, deadline=None)
@given(
    coding=st.sampled_from(["gzip", "deflate", "br", "zstd"]),
    garbage=st.binary(max_size=300),
    cuts=st.lists(st.integers(1, 300), max_size=5),
)
def test_garbage_raises_only_decode_error(coding: str, garbage: bytes, cuts: list[int]) -> None:
    try:
        decode_all(coding, split_at(garbage, cuts), limit=100_000)
    except DecodeError:
        pass
