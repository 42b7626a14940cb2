"""Incremental Content-Encoding decoders: gzip, deflate, br, zstd (RFC 9110 §8.4).

Each has the httpx shape `decode(chunk) -> bytes` plus `flush() -> bytes`, and all
of them stop at a byte budget: a few kilobytes of gzip can inflate to gigabytes,
and the sensor must not be the thing that runs out of memory.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

from oisp_sensor.errors import DecodeError


class BodyTooLarge(DecodeError):
    """A decoded body passed the configured limit; the rest is not kept."""


class ContentDecoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, out: bytes) -> bytes:
        self.left -= len(out)
        if self.left < 0:
            raise BodyTooLarge("decoded body larger than the limit")
        return out


class IdentityDecoder:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class ZlibDecoder:
    """gzip (possibly multi-member) or deflate.

    "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2) but some servers send
    a raw deflate stream; like browsers we tell them apart by the zlib header
    (RFC 1950 §2.2), which needs the first two bytes — and they may come one at a time.
    """

    def __init__(self, gzip: bool, limit: int) -> None:
        self._gzip = gzip
        self._budget = _Budget(limit)
        self._head: bytes | None = None if gzip else b""  # deflate: bytes before the choice
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        if self._head is not None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._head = None
            wbits = zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS
            self._obj = zlib.decompressobj(wbits)
        out: list[bytes] = []  # joined at the end: one piece is returned without a copy
        try:
            while data:
                chunk = self._obj.decompress(data, self._budget.left + 1)
                out.append(self._budget.spend(chunk))
                data = self._obj.unconsumed_tail
                if self._obj.eof:
                    # gzip allows several members back to back (RFC 1952 §2.2).
                    data = self._obj.unused_data + data
                    if not self._gzip or not data:
                        break
                    self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as e:
            raise DecodeError(f"bad {'gzip' if self._gzip else 'deflate'} data: {e}") from e
        return b"".join(out)

    def flush(self) -> bytes:
        try:
            if self._head:  # a one-byte body: whatever it is, it is not a zlib stream
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                head, self._head = self._head, None
                return self.decode(head) + self._budget.spend(self._obj.flush())
            return self._budget.spend(self._obj.flush())
        except zlib.error as e:
            raise DecodeError(f"bad compressed data at end: {e}") from e


def _zlib_header(data: bytes) -> bool:
    """CM = 8 (deflate), CINFO <= 7, and the FCHECK bits make CMF*256+FLG a multiple of 31."""
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0


class BrotliDecoder:
    def __init__(self, limit: int) -> None:
        self._obj = brotli.Decompressor()
        self._budget = _Budget(limit)

    def decode(self, data: bytes) -> bytes:
        try:
            chunk = self._obj.process(data, output_buffer_limit=self._budget.left + 1)
            out = [self._budget.spend(chunk)]
            while not self._obj.can_accept_more_data():
                out.append(
                    self._budget.spend(
                        self._obj.process(b"", output_buffer_limit=self._budget.left + 1)
                    )
                )
        except brotli.error as e:
            raise DecodeError(f"bad brotli data: {e}") from e
        return b"".join(out)

    def flush(self) -> bytes:
        return b""


class ZstdDecoder:
    # zstd output per call is unbounded, so input goes in small slices and the
    # budget is checked between them (a slice can expand ~40x128 KiB at worst).
    _SLICE = 256

    def __init__(self, limit: int) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        self._budget = _Budget(limit)

    def decode(self, data: bytes) -> bytes:
        out = bytearray()
        try:
            for i in range(0, len(data), self._SLICE):
                out += self._budget.spend(self._obj.decompress(data[i : i + self._SLICE]))
        except zstandard.ZstdError as e:
            raise DecodeError(f"bad zstd data: {e}") from e
        return bytes(out)

    def flush(self) -> bytes:
        return b""


class _Chain:
    """Codings are listed in the order applied, so they are undone last-first."""

    def __init__(self, decoders: list[ContentDecoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> bytes:
        for d in self._decoders:
            data = d.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for d in self._decoders:
            data = d.decode(data) + d.flush() if data else d.flush()
        return data


def content_decoder(header: str | None, limit: int) -> ContentDecoder:
    """The decoder for a Content-Encoding header value; unknown codings are an error."""
    codings = [c.strip().lower() for c in (header or "").split(",") if c.strip()]
    decoders: list[ContentDecoder] = []
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            decoders.append(ZlibDecoder(gzip=True, limit=limit))
        elif coding == "deflate":
            decoders.append(ZlibDecoder(gzip=False, limit=limit))
        elif coding == "br":
            decoders.append(BrotliDecoder(limit))
        elif coding == "zstd":
            decoders.append(ZstdDecoder(limit))
        elif coding != "identity":
            raise DecodeError(f"unsupported Content-Encoding {coding!r}")
    if not decoders:
        return IdentityDecoder()
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)
