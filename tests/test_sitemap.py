"""Sitemaps as sources: real sitemaps (plain, gzip, index, hreflang), Google News sitemaps,
kind detection, and bounds (10,000 links, a gzip bomb); polled by the real pipeline, each URL's
page read for its text."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

from bot.app.pipeline import fetch_limits
from bot.config import Config
from bot.feeds import fetch_feed, make_client
from bot.feeds.sitemap import parse_sitemap
from bot.feeds.sources import FEED, SITEMAP, TELEGRAM, detect_kind, read_source
from bot.models import FetchResult, HttpCacheState
from bot.storage.database import run
from bot.storage.store import Store
from tests.conftest import WriteConfig
from tests.feed_server import FeedServer
from tests.pages import SITEMAPS, article_html, serve_html
from tests.test_pipeline import stub_pipeline

NOW = datetime.now(UTC)


def news_sitemap(entries: list[tuple[str, str, datetime]]) -> bytes:
    urls = "".join(
        f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Steppe Courier"
        f"</news:name><news:language>ru</news:language></news:publication>"
        f"<news:publication_date>{when.isoformat()}</news:publication_date>"
        f"<news:title>{title}</news:title></news:news></url>" for loc, title, when in entries)
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
            f"{urls}</urlset>").encode()


async def no_fetch(url: str) -> FetchResult:
    raise AssertionError(f"unexpected fetch of {url}")


def test_real_sitemaps_plain_gzip_index_and_hreflang() -> None:
    plain = parse_sitemap((SITEMAPS / "sitemap.xml").read_bytes(), "https://www.sitemaps.org/",
                          max_urls=1000)
    assert plain.error is None and plain.total == 84 and len(plain.entries) == 84
    assert plain.entries[0].url == "https://www.sitemaps.org/"
    assert plain.entries[0].published == datetime(2016, 11, 21, tzinfo=UTC)
    packed = parse_sitemap((SITEMAPS / "sitemap.xml.gz").read_bytes(), "https://x/",
                           max_urls=1000)
    assert [e.url for e in packed.entries] == [e.url for e in plain.entries]
    index = parse_sitemap((SITEMAPS / "sitemap2.xml").read_bytes(), "http://www.example.com/",
                          max_urls=1000)
    assert index.is_index and [c.url for c in index.children] == [
        "http://www.example.com/sitemap1.xml.gz", "http://www.example.com/sitemap2.xml.gz"]
    hreflang = parse_sitemap((SITEMAPS / "sitemap-hreflang.xml").read_bytes(), "http://e/",
                             max_urls=1000)
    assert len(hreflang.entries) == 3  # the alternates are not extra URLs


def test_a_google_news_sitemap_gives_title_date_and_language() -> None:
    when = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    parsed = parse_sitemap(news_sitemap([("https://e.org/a", "Заголовок &amp; новость", when)]),
                           "https://e.org/sitemap-news.xml", max_urls=10)
    entry = parsed.entries[0]
    assert (entry.url, entry.title, entry.published, entry.language) == (
        "https://e.org/a", "Заголовок & новость", when, "ru")


def test_kind_is_told_by_the_url_and_an_explicit_kind_wins() -> None:
    assert detect_kind("https://e.org/sitemap-news.xml") == SITEMAP
    assert detect_kind("https://e.org/sitemaps/sitemap_index.xml.gz") == SITEMAP
    assert detect_kind("https://t.me/s/some_channel") == TELEGRAM
    assert detect_kind("https://t.me/some_channel") == TELEGRAM
    assert detect_kind("https://e.org/rss.xml") == FEED
    assert detect_kind("https://e.org/sitemap-news.xml", "feed") == FEED


async def test_ten_thousand_links_are_cut_to_the_newest_and_said_so() -> None:
    entries = [(f"https://e.org/{i}", f"T {i}", NOW - timedelta(minutes=i)) for i in range(10_000)]
    read = await read_source(SITEMAP, news_sitemap(entries), {}, no_fetch, source="S",
                             url="https://e.org/sitemap.xml", max_urls=200, max_pages=1,
                             older_than=None)
    parsed = read.parsed
    assert parsed.error is None and len(parsed.articles) == 200
    assert parsed.articles[0].url == "https://e.org/0"  # newest first, as feeds list them
    assert parsed.warning == "the sitemap lists 10,000 URLs; only the newest 200 are read"


async def test_a_gzip_bomb_and_a_page_that_is_no_sitemap_get_clear_errors() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * 40_000_000 + b"</urlset>")
    read = await read_source(SITEMAP, bomb, {}, no_fetch, source="S", url="https://e.org/s.xml",
                             max_urls=10, max_pages=1, older_than=None)
    assert read.parsed.error == "gzip sitemap inflates past 32 MB or is corrupt"
    read = await read_source(SITEMAP, b"<html><body>hi</body></html>", {}, no_fetch,
                             source="S", url="https://e.org/s.xml", max_urls=10, max_pages=1,
                             older_than=None)
    assert read.parsed.error == "not a sitemap: root element <html>"


async def test_a_sitemap_index_is_read_through_its_children(feeds: FeedServer) -> None:
    feeds.route("/child.xml.gz", (SITEMAPS / "sitemap.xml.gz").read_bytes(),
                content_type="application/gzip")
    index = (f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
             f'sitemap/0.9"><sitemap><loc>{feeds.url("/child.xml.gz")}</loc></sitemap>'
             f'<sitemap><loc>{feeds.url("/gone.xml")}</loc></sitemap></sitemapindex>').encode()
    limits = fetch_limits(Config.model_validate({"fetch": {"allow_private": True}}))
    async with make_client(limits) as client:
        async def fetch(url: str) -> FetchResult:
            return await fetch_feed(client, url, HttpCacheState(), limits)

        read = await read_source(SITEMAP, index, {}, fetch, source="S",
                                 url=feeds.url("/index.xml"), max_urls=1000, max_pages=1,
                                 older_than=None)
    assert len(read.parsed.articles) == 84 and not read.remember_body
    assert read.parsed.warning is not None and "gone.xml: HTTP 404" in read.parsed.warning


async def test_a_news_sitemap_polled_reads_each_new_pages_text(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    for i in range(3):
        serve_html(feeds, f"/news/{i}.html", article_html(
            f"Story {i}", [f"Story {i} paragraph {j}: the council met again on the budget, "
                           "and the mayor spoke about the new bridge and the river." for j in
                           range(4)]))
    entries = [(feeds.url(f"/news/{i}.html"), f"Story {i}", NOW - timedelta(days=i * 10))
               for i in range(3)]
    feeds.route("/sitemap-news.xml", news_sitemap(entries), content_type="application/xml")
    config = write_config([("Courier", feeds.url("/sitemap-news.xml"))],
                          extra='[fetch]\npoliteness_delay = "0s"\nmax_age = "15d"\n')
    store = Store(config.state.path)
    try:
        async with make_client(fetch_limits(config)) as client:
            pipeline = stub_pipeline(config, store, shipped_narratives, client)
            report = await pipeline.poll_feed(config.feeds[0], force=True)
        assert (report.status, report.new_articles, report.too_old, report.pages_read) == (
            "new", 2, 1, 2)
        with store._read() as db:
            texts = {r["url"]: r["text"]
                     for r in run(db, "SELECT url, text FROM articles").mappings()}
        first = texts[feeds.url("/news/0.html")]
        assert "Story 0 paragraph 3: the council met again" in first
        assert "Section 3" not in first  # the menus stayed on the page
        assert feeds.hits("/news/2.html") == 0  # older than max_age: not fetched
    finally:
        store.close()
