"""HTTP: conditional GET, timeouts, size cap, redirects; never raises.

This module owns getting a feed's bytes: one `fetch_feed` call = one conditional GET (ETag /
Last-Modified from `HttpCacheState`), redirects followed by hand up to `max_redirects` (httpx
never follows one itself), an overall deadline on the whole exchange (a server dripping a byte a
second cannot hold a poll), and a cap on the DECODED body. Content-Encoding is undone by
bot.feeds.decode rather than by httpx, whose decoders cannot be held to a cap; the returned
headers therefore drop Content-Encoding / Content-Length: they described the wire, not `body`.

Every network, HTTP or decoding problem comes back as `FetchResult(error=...)` with a short,
human-readable reason (bot.feeds._fetch_errors); `fetch_feed` does not raise (only cancellation
of the caller propagates). file:// URLs (the offline demo) are read by bot.feeds._file_urls.
Parsing, backoff and storage belong to other modules.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from bot.feeds._fetch_errors import Failure, describe, is_expected, too_large
from bot.feeds._file_urls import fetch_file
from bot.feeds.addresses import PrivateAddress, check_public
from bot.feeds.decode import BodyTooLarge, DecodeError, decoder_for
from bot.models import FetchResult, HttpCacheState

log = logging.getLogger(__name__)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
ACCEPT_ENCODING = "gzip, deflate, br, zstd"
HTTP_SCHEMES = ("http", "https")
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_MIB = 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one fetch: time, size, redirects, identity, and whether file:// is allowed."""

    timeout_s: float = 20.0  # overall deadline of one fetch (also httpx's per-read timeout)
    connect_timeout_s: float = 10.0
    max_bytes: int = 10 * _MIB  # cap on the DECODED body (gzip bombs)
    max_redirects: int = 5
    user_agent: str = "narrative-bot/0.1 (RSS/Atom feed reader; +https://github.com/narrative-bot)"
    allow_file_urls: bool = False  # file:// URLs only when explicitly enabled (the offline demo)
    accept: str = ACCEPT  # what the request asks for (article pages ask for HTML)
    # private, loopback and link-local targets (bot.feeds.addresses): the config's default
    # refuses them; the library's allows them
    allow_private: bool = True


@dataclass
class _Attempt:
    """What is known so far about a fetch in flight (to report the status when it fails)."""

    status: int | None = None
    host: str = ""
    trusted: bool = False  # the first URL was configured by the operator


def make_client(limits: FetchLimits, proxy: str | None = None) -> httpx.AsyncClient:
    """An AsyncClient for fetch_feed: our headers and timeouts, through `proxy` if given
    (http://, https:// or socks5://; socks needs httpx's `socks` extra).

    It never follows a redirect itself (so httpx's own redirect limit never applies):
    fetch_feed follows them by hand, checking each hop's scheme and `limits.max_redirects`."""
    return httpx.AsyncClient(
        headers=_base_headers(limits), timeout=_timeout(limits), follow_redirects=False,
        proxy=proxy,
    )


async def fetch_feed(
    client: httpx.AsyncClient, url: str, cache: HttpCacheState, limits: FetchLimits, *,
    trusted: bool = False,
) -> FetchResult:
    """GET `url` conditionally; return body, not-modified or a readable error. Never raises.
    `trusted`: the operator configured `url` (its address is not checked, its redirects are)."""
    attempt = _Attempt(trusted=trusted)
    try:
        async with asyncio.timeout(limits.timeout_s):
            result = await _fetch(client, url, cache, limits, attempt)
    except Exception as exc:
        reason = describe(
            exc,
            timeout_s=limits.timeout_s,
            connect_timeout_s=limits.connect_timeout_s,
            host=attempt.host,
        )
        if not is_expected(exc):
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
        if not limits.allow_file_urls:
            raise Failure("file:// URLs are disabled (set allow_file_urls)")
        return await fetch_file(url, limits.max_bytes)
    _check_http_url(target)
    attempt.host = target.host
    if not (limits.allow_private or attempt.trusted):
        await _check_public(target)
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
            raise Failure(f"too many redirects (more than {limits.max_redirects})")
        if next_request.url.scheme not in HTTP_SCHEMES:
            raise Failure(f"redirect to unsupported URL scheme '{next_request.url.scheme}'")
        attempt.host = next_request.url.host
        if not limits.allow_private:
            await _check_public(next_request.url)
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
    return {"User-Agent": limits.user_agent, "Accept": limits.accept,
            "Accept-Encoding": ACCEPT_ENCODING}


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
        raise Failure("invalid URL") from exc


async def _check_public(target: httpx.URL) -> None:
    try:
        await check_public(target.host, target.port)
    except PrivateAddress as exc:
        raise Failure(str(exc)) from None


def _check_http_url(target: httpx.URL) -> None:
    if not target.scheme:
        raise Failure("invalid URL (no http:// or https://)")
    if target.scheme not in HTTP_SCHEMES:
        raise Failure(f"unsupported URL scheme '{target.scheme}' (only http and https)")
    if not target.host or any(char.isspace() for char in target.host):
        raise Failure("invalid URL (no valid host)")


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
        raise Failure(too_large(max_bytes))
    decoder = decoder_for(response.headers.get("content-encoding", ""))
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += decoder.decode(chunk, max_bytes - len(body))
    except BodyTooLarge:
        raise Failure(too_large(max_bytes)) from None
    except DecodeError as exc:
        raise Failure(str(exc)) from exc
    return bytes(body)


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers.get("content-length", ""))
    except ValueError:
        return None


def _log_result(result: FetchResult) -> None:
    if result.error:
        log.info("fetch %s failed: %s", result.url, result.error)
    elif result.not_modified:
        log.debug("fetch %s: not modified", result.url)
    else:
        log.debug("fetch %s: %d bytes", result.url, len(result.body or b""))
