"""HTTP: conditional GET, timeouts, size cap, redirects; never raises.

This module owns getting a feed's bytes: one `fetch_feed` call = one conditional GET (ETag /
Last-Modified from `HttpCacheState`), redirects followed by hand up to a limit, an overall
deadline on the whole exchange (a server dripping a byte a second cannot hold a poll), and a cap
on the DECODED body. Content-Encoding (gzip, deflate, br, zstd) is decoded here rather than by
httpx, because httpx hands each network chunk to its decoder in one piece: a 64 KB brotli chunk
can expand to gigabytes before anyone can count it (an 809-byte body gave one 512 MB chunk). Our
decoders never emit more than the bytes still allowed, so the returned headers drop
Content-Encoding / Content-Length: they described the wire, not `body`.

Every network, HTTP or decoding problem comes back as `FetchResult(error=...)` with a short,
human-readable reason; `fetch_feed` does not raise (only cancellation of the caller propagates).
Parsing, backoff and storage belong to other modules.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import brotli
import httpx
import zstandard

from bot.models import FetchResult, HttpCacheState

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
HTTP_SCHEMES = ("http", "https")
_FILE_CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".xml": "application/xml",
    ".json": "application/json",
}
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_MIB = 1024 * 1024
_ZSTD_SLICE = 64  # zstd emits at most ~32 KiB per input byte; 64-byte slices bound each step
_ZSTD_MAX_WINDOW = 8 * _MIB  # RFC 8878: HTTP zstd windows are at most 8 MiB


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one fetch: time, size, redirects, identity, and whether file:// is allowed."""

    timeout_s: float = 20.0  # overall deadline of one fetch (also httpx's per-read timeout)
    connect_timeout_s: float = 10.0
    max_bytes: int = 10 * _MIB  # cap on the DECODED body (gzip bombs)
    max_redirects: int = 5
    user_agent: str = "narrative-bot/0.1 (RSS/Atom feed reader; +https://github.com/narrative-bot)"
    allow_file_urls: bool = False  # file:// URLs only when explicitly enabled (the offline demo)


class _TooLarge(Exception):
    """A decoder would have to emit more bytes than the cap still allows."""


class _Failure(Exception):
    """A fetch failed for a reason already worded for people (it becomes FetchResult.error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Attempt:
    """What is known so far about a fetch in flight (to report the status when it fails)."""

    status: int | None = None
    host: str = ""


def make_client(limits: FetchLimits) -> httpx.AsyncClient:
    """An AsyncClient for fetch_feed: our headers and timeouts, redirects left to fetch_feed."""
    return httpx.AsyncClient(
        headers=_base_headers(limits),
        timeout=_timeout(limits),
        follow_redirects=False,
        max_redirects=limits.max_redirects,
    )


async def fetch_feed(
    client: httpx.AsyncClient, url: str, cache: HttpCacheState, limits: FetchLimits
) -> FetchResult:
    """GET `url` conditionally; return body, not-modified or a readable error. Never raises."""
    attempt = _Attempt()
    try:
        async with asyncio.timeout(limits.timeout_s):
            result = await _fetch(client, url, cache, limits, attempt)
    except Exception as exc:
        reason = _describe(exc, limits, attempt.host)
        if not _is_expected(exc):
            log.warning("unexpected error fetching %s", url, exc_info=True)
        result = FetchResult(url=url, status=attempt.status, cache=cache, error=reason)
    _log_result(result)
    return result


# --- the request -------------------------------------------------------------------------


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    cache: HttpCacheState,
    limits: FetchLimits,
    attempt: _Attempt,
) -> FetchResult:
    target = _parse_url(url)
    if target.scheme == "file":
        return await _fetch_file(url, limits)
    _check_http_url(target)
    attempt.host = target.host
    request = client.build_request(
        "GET", target, headers=_request_headers(cache, limits), timeout=_timeout(limits)
    )
    response = await _send(client, request, limits, attempt)
    try:
        return await _read_response(response, url, cache, limits)
    finally:
        await response.aclose()


async def _send(
    client: httpx.AsyncClient, request: httpx.Request, limits: FetchLimits, attempt: _Attempt
) -> httpx.Response:
    """Send `request`, following at most `max_redirects` redirects; return the final response."""
    response = await _send_one(client, request, attempt)
    redirects = 0
    while response.next_request is not None:
        next_request = response.next_request
        await response.aclose()
        redirects += 1
        if redirects > limits.max_redirects:
            raise _Failure(f"too many redirects (more than {limits.max_redirects})")
        if next_request.url.scheme not in HTTP_SCHEMES:
            raise _Failure(f"redirect to unsupported URL scheme '{next_request.url.scheme}'")
        attempt.host = next_request.url.host
        response = await _send_one(client, next_request, attempt)
    return response


async def _send_one(
    client: httpx.AsyncClient, request: httpx.Request, attempt: _Attempt
) -> httpx.Response:
    response = await client.send(request, stream=True, follow_redirects=False)
    attempt.status = response.status_code
    log.debug("GET %s -> %s", request.url, response.status_code)
    return response


async def _read_response(
    response: httpx.Response, url: str, cache: HttpCacheState, limits: FetchLimits
) -> FetchResult:
    status = response.status_code
    if status == httpx.codes.NOT_MODIFIED:
        return FetchResult(
            url=url, status=status, not_modified=True, cache=_merged_validators(cache, response)
        )
    if not 200 <= status < 300:
        return FetchResult(
            url=url,
            status=status,
            cache=cache,
            error=_status_reason(response),
            retry_after_s=_retry_after(response),
        )
    body = await _read_body(response, limits.max_bytes)
    return FetchResult(
        url=url,
        status=status,
        body=body,
        headers=_plain_headers(response),
        cache=_validators(response),
    )


def _plain_headers(response: httpx.Response) -> dict[str, str]:
    """Response headers, keys lower-cased; those describing the encoded wire body are dropped."""
    return {
        key.lower(): value
        for key, value in response.headers.items()
        if key.lower() not in _WIRE_HEADERS
    }


def _base_headers(limits: FetchLimits) -> dict[str, str]:
    return {"User-Agent": limits.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}


def _request_headers(cache: HttpCacheState, limits: FetchLimits) -> dict[str, str]:
    headers = _base_headers(limits)
    if cache.etag:
        headers["If-None-Match"] = cache.etag
    if cache.last_modified:
        headers["If-Modified-Since"] = cache.last_modified
    return headers


def _timeout(limits: FetchLimits) -> httpx.Timeout:
    return httpx.Timeout(limits.timeout_s, connect=limits.connect_timeout_s)


def _parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _Failure("invalid URL") from exc


def _check_http_url(target: httpx.URL) -> None:
    if not target.scheme:
        raise _Failure("invalid URL (no http:// or https://)")
    if target.scheme not in HTTP_SCHEMES:
        raise _Failure(f"unsupported URL scheme '{target.scheme}' (only http and https)")
    if not target.host or any(char.isspace() for char in target.host):
        raise _Failure("invalid URL (no valid host)")


# --- response metadata -------------------------------------------------------------------


def _validators(response: httpx.Response) -> HttpCacheState:
    return HttpCacheState(
        etag=response.headers.get("etag") or None,
        last_modified=response.headers.get("last-modified") or None,
    )


def _merged_validators(old: HttpCacheState, response: httpx.Response) -> HttpCacheState:
    """A 304 keeps the validators we sent unless it carries new ones."""
    new = _validators(response)
    return HttpCacheState(
        etag=new.etag or old.etag, last_modified=new.last_modified or old.last_modified
    )


def _status_reason(response: httpx.Response) -> str:
    status = response.status_code
    phrase = httpx.codes.get_reason_phrase(status) or response.reason_phrase.strip()
    return f"HTTP {status} {phrase[:80]}".rstrip()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from Retry-After (delta-seconds or HTTP-date) on 429 and 5xx responses."""
    status = response.status_code
    if status != httpx.codes.TOO_MANY_REQUESTS and status < 500:
        return None
    return parse_retry_after(response.headers.get("retry-after", ""))


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Parse a Retry-After value: delta-seconds or an HTTP-date; None when unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now or datetime.now(UTC))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- the body: size cap and Content-Encoding ---------------------------------------------


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """Stream the raw body, decode it, and fail as soon as the decoded size passes max_bytes."""
    declared = _content_length(response)
    if declared is not None and declared > max_bytes:
        raise _Failure(_too_large(max_bytes))
    decoder = _decoder_for(response.headers.get("content-encoding", ""))
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += decoder.decode(chunk, max_bytes - len(body))
    except _TooLarge:
        raise _Failure(_too_large(max_bytes)) from None
    return bytes(body)


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return None


def _too_large(max_bytes: int) -> str:
    return f"body larger than {_size_text(max_bytes)}"


def _size_text(size: int) -> str:
    if size >= _MIB:
        return f"{size / _MIB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


class _Decoder(Protocol):
    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode the next chunk; raise _TooLarge rather than emit more than `limit` bytes."""
        ...


class _Identity:
    def decode(self, data: bytes, limit: int) -> bytes:
        _check_size(len(data), limit)
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
            raise _Failure(f"could not decode {self.encoding} body: {exc}") from exc

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
            out = self.decompressor.process(data, output_buffer_limit=limit + 1)
        except brotli.error as exc:
            raise _Failure(f"could not decode br body: {exc}") from exc
        _check_size(len(out), limit)
        return out


class _ZstdStream(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class _Zstd:
    """zstd, fed in small slices: its decompressor has no output limit of its own."""

    def __init__(self) -> None:
        self.decompressor = self._new()

    @staticmethod
    def _new() -> _ZstdStream:
        return zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj()

    def decode(self, data: bytes, limit: int) -> bytes:
        out = bytearray()
        try:
            for start in range(0, len(data), _ZSTD_SLICE):
                out += self._step(data[start : start + _ZSTD_SLICE])
                _check_size(len(out), limit)
        except zstandard.ZstdError as exc:
            raise _Failure(f"could not decode zstd body: {exc}") from exc
        return bytes(out)

    def _step(self, data: bytes) -> bytes:
        out = self.decompressor.decompress(data)
        while self.decompressor.eof and self.decompressor.unused_data:  # next frame
            rest = self.decompressor.unused_data
            self.decompressor = self._new()
            out += self.decompressor.decompress(rest)
        return out


class _Chain:
    """Several Content-Encodings, undone last-applied first; every stage is held to the cap."""

    def __init__(self, decoders: list[_Decoder]) -> None:
        self.decoders = decoders

    def decode(self, data: bytes, limit: int) -> bytes:
        for decoder in self.decoders:
            data = decoder.decode(data, limit)
        return data


def _decoder_for(content_encoding: str) -> _Decoder:
    names = [name.strip().lower() for name in content_encoding.split(",") if name.strip()]
    decoders = [_make_decoder(name) for name in reversed(names)]
    return _Chain(decoders) if decoders else _Identity()


def _make_decoder(name: str) -> _Decoder:
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
        raise _TooLarge


# --- file:// (the offline demo) -----------------------------------------------------------


async def _fetch_file(url: str, limits: FetchLimits) -> FetchResult:
    if not limits.allow_file_urls:
        raise _Failure("file:// URLs are disabled (set allow_file_urls)")
    path = _file_path(url)
    body = await asyncio.to_thread(_read_file, path, limits.max_bytes)
    content_type = _FILE_CONTENT_TYPES.get(path.suffix.lower())
    headers = {"content-type": content_type} if content_type else {}
    return FetchResult(url=url, body=body, headers=headers)


def _file_path(url: str) -> Path:
    parts = urlsplit(url.strip())
    if parts.netloc not in ("", "localhost"):
        raise _Failure(f"file:// URL on another host ({parts.netloc}) is not supported")
    if not parts.path:
        raise _Failure("invalid URL (file:// without a path)")
    return Path(url2pathname(parts.path))


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise _Failure(f"file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise _Failure(f"not a file: {path}") from exc
    except OSError as exc:
        raise _Failure(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise _Failure(_too_large(max_bytes))
    return data


# --- errors ------------------------------------------------------------------------------


def _describe(exc: BaseException, limits: FetchLimits, host: str) -> str:
    """A short reason for people: what went wrong, without a traceback."""
    if isinstance(exc, _Failure):
        return exc.reason
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {limits.connect_timeout_s:g}s"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out after {limits.timeout_s:g}s"
    if isinstance(exc, httpx.ConnectError):
        return _describe_connect_error(exc, host)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "invalid URL (only http and https)"
    if isinstance(exc, httpx.InvalidURL):
        return "invalid URL"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects (more than {limits.max_redirects})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {_short(exc)}"
    if isinstance(exc, httpx.HTTPError):
        return f"network error: {_short(exc)}"
    return f"unexpected error: {type(exc).__name__}: {_short(exc)}"


def _describe_connect_error(exc: httpx.ConnectError, host: str) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed for {host}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or _short(cause)}"
    if "refused" in str(exc).lower():
        return "connection refused"
    return f"could not connect: {_short(exc)}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and members of exception groups."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _is_expected(exc: BaseException) -> bool:
    return isinstance(exc, _Failure | TimeoutError | httpx.HTTPError)


def _log_result(result: FetchResult) -> None:
    if result.error:
        log.info("fetch %s failed: %s", result.url, result.error)
    elif result.not_modified:
        log.debug("fetch %s: not modified", result.url)
    else:
        log.debug("fetch %s: %d bytes", result.url, len(result.body or b""))
