"""Content-Encoding (gzip, deflate, br, zstd) undone chunk by chunk, never past a size cap.

httpx hands each network chunk to its decoder in one piece, so a 64 KB brotli chunk can expand
to gigabytes before anyone can count it (an 809-byte body gave one 512 MB chunk). The decoders
here are told, for every chunk, how many decoded bytes are still allowed, and raise
`BodyTooLarge` rather than emit more; a corrupt stream raises `DecodeError`. Neither says what
the cap was: the caller words the failure.
"""

from __future__ import annotations

import logging
import zlib
from typing import Protocol

import brotli
from backports import zstd

log = logging.getLogger(__name__)

_MIB = 1024 * 1024
_ZSTD_WINDOW_LOG_MAX = 23  # RFC 9659: HTTP zstd windows are at most 8 MiB (2**23)


class BodyTooLarge(Exception):
    """A decoder would have to emit more bytes than the cap still allows."""


class DecodeError(Exception):
    """The body is not valid in its declared Content-Encoding (the message says why)."""


class Decoder(Protocol):
    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode the next chunk; raise BodyTooLarge rather than emit more than `limit` bytes."""
        ...


def decoder_for(content_encoding: str) -> Decoder:
    """The decoder for a Content-Encoding header value (a list, applied left to right)."""
    names = [name.strip().lower() for name in content_encoding.split(",") if name.strip()]
    decoders = [_make_decoder(name) for name in reversed(names)]
    return _Chain(decoders) if decoders else _Identity()


def _make_decoder(name: str) -> Decoder:
    if name in ("gzip", "x-gzip"):
        return _Zlib("gzip")
    if name == "deflate":
        return _Zlib("deflate")
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    if name != "identity":  # like httpx: an unknown coding is passed through as it is
        log.debug("unknown Content-Encoding %r passed through", name)
    return _Identity()


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise BodyTooLarge


class _Identity:
    def decode(self, data: bytes, limit: int) -> bytes:
        _check_size(len(data), limit)
        return data


class _Chain:
    """Several Content-Encodings, undone last-applied first; every stage is held to the cap."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self.decoders = decoders

    def decode(self, data: bytes, limit: int) -> bytes:
        for decoder in self.decoders:
            data = decoder.decode(data, limit)
        return data


class _Zlib:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self.inflater = zlib.decompressobj(self.wbits)
        self.first = True

    def decode(self, data: bytes, limit: int) -> bytes:
        first, self.first = self.first, False
        try:
            return self._inflate(data, limit)
        except zlib.error as exc:
            if first and self.encoding == "deflate":
                self.wbits = -zlib.MAX_WBITS
                self.inflater = zlib.decompressobj(self.wbits)
                return self.decode(data, limit)
            raise DecodeError(f"could not decode {self.encoding} body: {exc}") from exc

    def _inflate(self, data: bytes, limit: int) -> bytes:
        # max_length caps what zlib may emit (0 would mean "no cap", hence limit + 1)
        out = self.inflater.decompress(data, limit + 1)
        _check_size(len(out), limit)
        while self._next_gzip_member():
            rest = self.inflater.unused_data
            self.inflater = zlib.decompressobj(self.wbits)
            out += self.inflater.decompress(rest, limit + 1 - len(out))
            _check_size(len(out), limit)
        return out

    def _next_gzip_member(self) -> bool:
        """True when a finished gzip member is followed by another (trailing junk is ignored)."""
        inflater = self.inflater
        return (
            self.encoding == "gzip"
            and inflater.eof
            and inflater.unused_data.startswith(b"\x1f\x8b")
        )


class _Brotli:
    def __init__(self) -> None:
        self.decompressor = brotli.Decompressor()

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            out: bytes = self.decompressor.process(data, output_buffer_limit=limit + 1)
        except brotli.error as exc:
            raise DecodeError(f"could not decode br body: {exc}") from exc
        _check_size(len(out), limit)
        return out


class _Zstd:
    """zstd, several frames allowed; `max_length` caps each call's output like zlib's."""

    def __init__(self) -> None:
        self.decompressor = self._new()

    @staticmethod
    def _new() -> zstd.ZstdDecompressor:
        return zstd.ZstdDecompressor(
            options={zstd.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG_MAX})

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            return self._decompress(data, limit)
        except zstd.ZstdError as exc:
            raise DecodeError(f"could not decode zstd body: {exc}") from exc

    def _decompress(self, data: bytes, limit: int) -> bytes:
        # limit + 1: one byte past the cap is proof enough, and nothing more is ever made
        out = self.decompressor.decompress(data, max_length=limit + 1)
        _check_size(len(out), limit)
        while self.decompressor.eof and self.decompressor.unused_data:  # the next frame
            rest = self.decompressor.unused_data
            self.decompressor = self._new()
            out += self.decompressor.decompress(rest, max_length=limit + 1 - len(out))
            _check_size(len(out), limit)
        return out
