"""bot.feeds.fetch against a real HTTP server on 127.0.0.1 (tests/feed_server.py)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path

import brotli
import httpx
import pytest
from aiohttp import web
from backports import zstd

from bot.feeds.fetch import FetchLimits, fetch_feed, make_client, parse_retry_after
from bot.models import HttpCacheState
from tests.feed_server import FeedServer, Handler

RSS = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>T</title>'
    b"<item><title>Hello \xc3\xa9t\xc3\xa9</title><link>https://example.org/1</link></item>"
    b"</channel></rss>\n"
)
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
NO_CACHE = HttpCacheState()
LIMITS = FetchLimits(timeout_s=5.0, connect_timeout_s=2.0)
BOMB_SIZE = 64 * 1024 * 1024


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(LIMITS) as http_client:
        yield http_client


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 1)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _brotli(data: bytes) -> bytes:
    return brotli.compress(data, quality=5)


def _zstd(data: bytes) -> bytes:
    return zstd.compress(data)


ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", _gzip),
    "deflate": ("deflate", _deflate),
    "raw-deflate": ("deflate", _raw_deflate),
    "br": ("br", _brotli),
    "zstd": ("zstd", _zstd),
}


@cache
def _bomb(name: str) -> bytes:
    return ENCODERS[name][1](bytes(BOMB_SIZE))


# --- success and conditional GET -------------------------------------------------------


async def test_200_returns_body_headers_and_validators(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route(
        "/feed.xml", RSS, etag=ETAG, last_modified=LAST_MODIFIED, headers={"X-Extra": "yes"}
    )
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.ok and result.error is None and not result.not_modified
    assert result.status == 200
    assert result.url == server.url("/feed.xml")
    assert result.body == RSS
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-extra"] == "yes"
    assert all(key == key.lower() for key in result.headers)
    assert result.cache == HttpCacheState(etag=ETAG, last_modified=LAST_MODIFIED)


async def test_request_headers_user_agent_accept_and_encodings(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", RSS)
    await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    sent = server.requests("/feed.xml")[0]
    assert sent["user-agent"] == LIMITS.user_agent
    assert "application/rss+xml" in sent["accept"] and "application/atom+xml" in sent["accept"]
    assert {"gzip", "deflate", "br", "zstd"} <= {
        coding.strip() for coding in sent["accept-encoding"].split(",")
    }
    assert "if-none-match" not in sent and "if-modified-since" not in sent


async def test_user_agent_from_limits_even_with_a_plain_client(server: FeedServer) -> None:
    server.route("/feed.xml", RSS)
    limits = FetchLimits(user_agent="custom-agent/9")
    async with httpx.AsyncClient() as plain:
        result = await fetch_feed(plain, server.url("/feed.xml"), NO_CACHE, limits)
    assert result.ok
    assert server.requests("/feed.xml")[0]["user-agent"] == "custom-agent/9"


async def test_etag_second_fetch_is_not_modified(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", RSS, etag=ETAG)
    first = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    second = await fetch_feed(client, server.url("/feed.xml"), first.cache, LIMITS)
    assert second.not_modified and second.status == 304
    assert second.body is None and second.error is None and not second.ok
    assert second.cache == HttpCacheState(etag=ETAG)
    assert server.hits("/feed.xml") == 2
    assert server.requests("/feed.xml")[1]["if-none-match"] == ETAG


async def test_last_modified_second_fetch_is_not_modified(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", RSS, last_modified=LAST_MODIFIED)
    first = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert first.cache == HttpCacheState(last_modified=LAST_MODIFIED)
    second = await fetch_feed(client, server.url("/feed.xml"), first.cache, LIMITS)
    assert second.not_modified
    assert second.cache == HttpCacheState(last_modified=LAST_MODIFIED)
    sent = server.requests("/feed.xml")[1]
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert "if-none-match" not in sent


async def test_stale_validators_get_the_new_body_and_new_validators(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", RSS, etag='"v2"')
    stale = HttpCacheState(etag=ETAG, last_modified=LAST_MODIFIED)
    result = await fetch_feed(client, server.url("/feed.xml"), stale, LIMITS)
    assert result.body == RSS
    assert result.cache == HttpCacheState(etag='"v2"')


async def test_304_keeps_old_validators_unless_it_carries_new_ones(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": '"v2"'})

    server.set_handler("/feed.xml", not_modified)
    old = HttpCacheState(etag=ETAG, last_modified=LAST_MODIFIED)
    result = await fetch_feed(client, server.url("/feed.xml"), old, LIMITS)
    assert result.not_modified
    assert result.cache == HttpCacheState(etag='"v2"', last_modified=LAST_MODIFIED)


# --- Content-Encoding and the size cap ------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENCODERS))
async def test_compressed_body_is_decoded(
    server: FeedServer, client: httpx.AsyncClient, name: str
) -> None:
    coding, encode = ENCODERS[name]
    server.route("/feed.xml", encode(RSS * 50), headers={"Content-Encoding": coding})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.error is None
    assert result.body == RSS * 50
    assert "content-encoding" not in result.headers  # the body handed on is decoded
    assert result.headers["content-type"].startswith("application/rss+xml")


async def test_multi_member_gzip_is_decoded_whole(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    body = gzip.compress(RSS[:50]) + gzip.compress(RSS[50:])
    server.route("/feed.xml", body, headers={"Content-Encoding": "gzip"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.body == RSS


async def test_corrupt_gzip_is_a_readable_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.error is not None and result.error.startswith("could not decode gzip body")
    assert result.status == 200 and result.body is None


async def test_body_exactly_at_the_cap_is_accepted(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    body = b"x" * 4096
    server.route("/exact", _gzip(body), headers={"Content-Encoding": "gzip"})
    server.route("/over", _gzip(body + b"x"), headers={"Content-Encoding": "gzip"})
    limits = FetchLimits(max_bytes=4096)
    assert (await fetch_feed(client, server.url("/exact"), NO_CACHE, limits)).body == body
    over = await fetch_feed(client, server.url("/over"), NO_CACHE, limits)
    assert over.error == "body larger than 4.0 KB"


async def test_body_over_cap_rejected_from_content_length(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/big", b"x" * 5000)
    result = await fetch_feed(client, server.url("/big"), NO_CACHE, FetchLimits(max_bytes=1000))
    assert result.error == "body larger than 1000 bytes"
    assert result.status == 200 and result.body is None


async def test_body_over_cap_rejected_when_chunked(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    sent: list[int] = []

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(200):
                await response.write(b"x" * 500)
                sent.append(500)
                await asyncio.sleep(0.005)
        except ConnectionError:
            return response
        await response.write_eof()
        return response

    server.set_handler("/chunked", chunked)
    limits = FetchLimits(max_bytes=2048)
    result = await fetch_feed(client, server.url("/chunked"), NO_CACHE, limits)
    assert result.error == "body larger than 2.0 KB"
    assert result.status == 200
    await asyncio.sleep(0.1)
    assert sum(sent) < 100 * 500  # the client hung up instead of reading all 100 KB


async def test_default_cap_message(server: FeedServer, client: httpx.AsyncClient) -> None:
    async def huge_length(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(11 * 1024 * 1024)})
        await response.prepare(request)
        return response

    server.set_handler("/huge", huge_length)
    result = await fetch_feed(client, server.url("/huge"), NO_CACHE, FetchLimits())
    assert result.error == "body larger than 10.0 MB"


@pytest.mark.parametrize("name", ["gzip", "br", "zstd", "deflate"])
async def test_compression_bomb_is_stopped_without_decoding_it_all(
    server: FeedServer, client: httpx.AsyncClient, name: str
) -> None:
    coding = ENCODERS[name][0]
    server.route("/bomb", _bomb(name), headers={"Content-Encoding": coding})
    limits = FetchLimits(max_bytes=1024 * 1024)
    tracemalloc.start()
    try:
        result = await fetch_feed(client, server.url("/bomb"), NO_CACHE, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == "body larger than 1.0 MB"
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes: the bomb was decoded too far"


def _zstd_stream(data: bytes, window_log: int) -> bytes:
    """A zstd frame written as a stream: its header names the window, not the content size."""
    compressor = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: window_log})
    return compressor.compress(data, mode=zstd.ZstdCompressor.CONTINUE) + compressor.flush()


async def test_zstd_frames_in_a_row_are_one_body(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    half = len(RSS) // 2
    body = zstd.compress(RSS[:half]) + _zstd_stream(RSS[half:], window_log=20)
    server.route("/feed.xml", body, headers={"Content-Encoding": "zstd"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.error is None and result.body == RSS


async def test_zstd_window_over_8_mib_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    body = _zstd_stream(RSS * 1000, window_log=25)  # RFC 9659 allows HTTP 8 MiB windows
    server.route("/feed.xml", body, headers={"Content-Encoding": "zstd"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.body is None
    assert result.error is not None and result.error.startswith("could not decode zstd body")


# --- HTTP errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "HTTP 404 Not Found"), (410, "HTTP 410 Gone"), (500, "HTTP 500 Internal Server Error")],
)
async def test_http_error_status_is_readable(
    server: FeedServer, client: httpx.AsyncClient, status: int, reason: str
) -> None:
    server.route("/feed.xml", b"<html>oops</html>", status=status, content_type="text/html")
    old = HttpCacheState(etag=ETAG)
    result = await fetch_feed(client, server.url("/feed.xml"), old, LIMITS)
    assert result.error == reason
    assert result.status == status and result.body is None and not result.ok
    assert result.retry_after_s is None
    assert result.cache == old  # a failed poll keeps the validators for the next one


async def test_unrouted_path_is_404(server: FeedServer, client: httpx.AsyncClient) -> None:
    result = await fetch_feed(client, server.url("/nowhere"), NO_CACHE, LIMITS)
    assert result.error == "HTTP 404 Not Found"
    assert server.hits("/nowhere") == 1


async def test_503_retry_after_seconds(server: FeedServer, client: httpx.AsyncClient) -> None:
    server.route("/feed.xml", b"busy", status=503, headers={"Retry-After": "120"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.error == "HTTP 503 Service Unavailable"
    assert result.retry_after_s == 120.0


async def test_429_retry_after_http_date(server: FeedServer, client: httpx.AsyncClient) -> None:
    when = datetime.now(UTC) + timedelta(seconds=90)
    server.route(
        "/feed.xml", b"slow down", status=429, headers={"Retry-After": format_datetime(when, True)}
    )
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.error == "HTTP 429 Too Many Requests"
    assert result.retry_after_s is not None and 87 <= result.retry_after_s <= 91


async def test_retry_after_ignored_on_other_statuses(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.route("/feed.xml", b"gone", status=404, headers={"Retry-After": "120"})
    result = await fetch_feed(client, server.url("/feed.xml"), NO_CACHE, LIMITS)
    assert result.retry_after_s is None


def test_parse_retry_after_values() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    for bad in ("", "-5", "soon", "nan", "inf"):
        assert parse_retry_after(bad, now) is None


# --- redirects -------------------------------------------------------------------------


def _redirect_to(location: str, status: int = 302) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handler


async def test_redirect_chain_within_limit(server: FeedServer, client: httpx.AsyncClient) -> None:
    server.set_handler("/a", _redirect_to("/b", 301))
    server.set_handler("/b", _redirect_to(server.url("/c"), 307))
    server.set_handler("/c", _redirect_to("feed.xml", 308))
    server.route("/feed.xml", RSS, etag='"v2"')
    result = await fetch_feed(client, server.url("/a"), HttpCacheState(etag=ETAG), LIMITS)
    assert result.body == RSS and result.status == 200
    assert result.url == server.url("/a")
    assert result.cache.etag == '"v2"'
    assert server.requests("/feed.xml")[0]["if-none-match"] == ETAG


async def test_redirect_loop_is_too_many_redirects(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.set_handler("/loop", _redirect_to("/loop"))
    result = await fetch_feed(client, server.url("/loop"), NO_CACHE, LIMITS)
    assert result.error == "too many redirects (more than 5)"
    assert result.status == 302
    assert server.hits("/loop") == 6  # the request and five redirects


async def test_redirect_limit_is_configurable(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.set_handler("/a", _redirect_to("/b"))
    server.set_handler("/b", _redirect_to("/feed.xml"))
    server.route("/feed.xml", RSS)
    result = await fetch_feed(client, server.url("/a"), NO_CACHE, FetchLimits(max_redirects=1))
    assert result.error == "too many redirects (more than 1)"
    assert server.hits("/feed.xml") == 0


async def test_redirect_to_another_scheme_is_refused(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    server.set_handler("/a", _redirect_to("ftp://example.org/feed.xml"))
    result = await fetch_feed(client, server.url("/a"), NO_CACHE, LIMITS)
    assert result.error == "redirect to unsupported URL scheme 'ftp'"


# --- time and connection failures ------------------------------------------------------


async def test_drip_feeding_server_times_out_on_the_overall_deadline(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        try:
            for _ in range(1000):
                await response.write(b"x")
                await asyncio.sleep(0.2)
        except ConnectionError:
            pass
        return response

    server.set_handler("/drip", drip)
    limits = FetchLimits(timeout_s=1.0, connect_timeout_s=1.0)
    started = time.monotonic()
    result = await fetch_feed(client, server.url("/drip"), NO_CACHE, limits)
    elapsed = time.monotonic() - started
    assert result.error == "timed out after 1s"
    assert result.status == 200 and result.body is None
    assert 0.9 <= elapsed < 2.0


async def test_connection_refused(client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await fetch_feed(client, f"http://127.0.0.1:{port}/feed.xml", NO_CACHE, LIMITS)
    assert result.error == "connection refused"
    assert result.status is None and result.body is None


def _client_raising(exc: Exception) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _connect_error_from(cause: Exception) -> httpx.ConnectError:
    try:
        raise httpx.ConnectError(str(cause)) from cause
    except httpx.ConnectError as error:
        return error


async def test_dns_failure_names_the_host() -> None:
    error = _connect_error_from(socket.gaierror(-2, "Name or service not known"))
    async with _client_raising(error) as mocked:
        result = await fetch_feed(mocked, "https://feeds.example.net/rss", NO_CACHE, LIMITS)
    assert result.error == "DNS lookup failed for feeds.example.net"


async def test_connect_timeout_is_reported_as_such() -> None:
    async with _client_raising(httpx.ConnectTimeout("timed out")) as mocked:
        result = await fetch_feed(mocked, "https://example.net/rss", NO_CACHE, FetchLimits())
    assert result.error == "connect timed out after 10s"


async def test_unexpected_exception_is_returned_not_raised() -> None:
    async with _client_raising(RuntimeError("boom")) as mocked:
        result = await fetch_feed(mocked, "https://example.net/rss", NO_CACHE, LIMITS)
    assert result.error == "unexpected error: RuntimeError: boom"


async def test_server_closing_mid_body_is_a_readable_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.close()
        return response

    server.set_handler("/cut", truncated)
    result = await fetch_feed(client, server.url("/cut"), NO_CACHE, LIMITS)
    assert result.error is not None and result.error.startswith("protocol error:")
    assert result.status == 200


# --- URLs ------------------------------------------------------------------------------


async def test_unsupported_scheme(client: httpx.AsyncClient) -> None:
    result = await fetch_feed(client, "ftp://example.org/feed.xml", NO_CACHE, LIMITS)
    assert result.error == "unsupported URL scheme 'ftp' (only http and https)"


@pytest.mark.parametrize(
    "url", ["", "example.org/feed.xml", "http://", "http://[::1", "https:///x"]
)
async def test_invalid_urls(client: httpx.AsyncClient, url: str) -> None:
    result = await fetch_feed(client, url, NO_CACHE, LIMITS)
    assert result.error is not None and result.error.startswith("invalid URL")


async def test_file_url_disabled_by_default(client: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(RSS)
    result = await fetch_feed(client, path.as_uri(), NO_CACHE, LIMITS)
    assert result.error == "file:// URLs are disabled (set allow_file_urls)"


async def test_file_url_when_enabled(client: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "my feed.rss"
    path.write_bytes(RSS)
    limits = FetchLimits(allow_file_urls=True)
    result = await fetch_feed(client, path.as_uri(), NO_CACHE, limits)
    assert result.ok and result.body == RSS and result.status is None
    assert result.headers == {"content-type": "application/rss+xml"}


async def test_file_url_missing_or_too_big(client: httpx.AsyncClient, tmp_path: Path) -> None:
    limits = FetchLimits(allow_file_urls=True, max_bytes=100)
    missing = await fetch_feed(client, (tmp_path / "nope.xml").as_uri(), NO_CACHE, limits)
    assert missing.error == f"file not found: {tmp_path / 'nope.xml'}"
    big = tmp_path / "big.xml"
    big.write_bytes(b"x" * 101)
    too_big = await fetch_feed(client, big.as_uri(), NO_CACHE, limits)
    assert too_big.error == "body larger than 100 bytes"
