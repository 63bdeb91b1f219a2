"""Full text: the linked page fetched over real HTTP (gzip, charsets, robots.txt, politeness,
the page cache) and its main text extracted; and what `auto` decides, and what a hostile page
gets."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp import web

import bot.feeds.polite
from bot.app.sources import StatePageCache
from bot.feeds import FetchLimits, make_client
from bot.feeds.fulltext import needs_page, with_page, words
from bot.feeds.pages import PageFetcher
from bot.models import Article
from bot.storage.database import Location
from bot.storage.store import Store
from tests.feed_server import FeedServer
from tests.pages import article_html, declared_charset, saved_pages, serve_html

LIMITS = FetchLimits(timeout_s=5, connect_timeout_s=2)
BODY = [f"Paragraph {i} of the article says something about the regional economy and the "
        "weather, long enough to count as text of its own on any page." for i in range(5)]


def fetcher(cache: StatePageCache | None = None, *, delay_s: float = 0.0,
            max_bytes: int = 5 * 1024 * 1024, limits: FetchLimits = LIMITS) -> PageFetcher:
    return PageFetcher(limits, cache, delay_s=delay_s, max_bytes=max_bytes)


def article(text: str, url: str = "https://e.org/a") -> Article:
    return Article(key="k", source="S", url=url, title="Title", text=text)


async def test_saved_pages_yield_their_main_text_and_no_boilerplate(feeds: FeedServer) -> None:
    pages = saved_pages()
    urls = [serve_html(feeds, f"/p/{i}.html", p.body, charset=declared_charset(p.body))
            for i, p in enumerate(pages)]
    reader = fetcher()
    async with make_client(LIMITS) as client:
        texts = [await reader.read(client, url) for url in urls]
    good = []
    for page, text in zip(pages, texts, strict=True):
        missing = [s for s in page.with_ if s not in text.text]
        leaked = [s for s in page.without if s in text.text]
        print(f"{page.file}: {len(text.text)} chars, missing {missing}, boilerplate {leaked}")
        if not missing and not leaked and text.error is None:
            good.append(page.file)
    print(f"extraction: {len(good)} of {len(pages)} pages have every `with` snippet and no "
          "`without` snippet")
    assert len(pages) == 10
    assert len(good) >= 9
    assert all(r["accept-encoding"].startswith("gzip") for r in feeds.requests("/p/0.html"))


def test_auto_reads_the_page_for_short_or_cut_items_only() -> None:
    long_text = " ".join(["word"] * 120)
    assert needs_page(article("One neutral line about the day."), "auto")
    assert needs_page(article(long_text + " Read more"), "auto")
    assert needs_page(article(long_text + " …"), "auto")
    assert not needs_page(article(long_text), "auto")
    assert needs_page(article(long_text), "always")
    assert not needs_page(article("short"), "never")
    assert not needs_page(article("short", url=""), "always")  # nothing to read
    assert words("哈萨克斯坦" * 40) == 100  # two characters count as a word


def test_the_page_text_replaces_the_item_text_and_keeps_its_title() -> None:
    from bot.feeds.extract import PageText
    item = article("One neutral line.")
    merged = with_page(item, PageText(title="Page title", text="The whole article."))
    assert merged.text == "The whole article." and merged.title == "Title"
    failed = with_page(item, PageText(error="page: HTTP 404 Not Found"))
    assert failed == item


async def test_a_page_is_fetched_once_and_robots_txt_is_read_once(
        feeds: FeedServer, state_location: Location) -> None:
    url = serve_html(feeds, "/news/1.html", article_html("Title", BODY))
    feeds.route("/robots.txt", b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    store = Store(state_location)  # the page cache, on both backends
    try:
        reader = fetcher(StatePageCache(store))
        async with make_client(LIMITS) as client:
            first = await reader.read(client, url)
            second = await reader.read(client, url)
            again = await fetcher(StatePageCache(store)).read(client, url)  # after a restart
        assert first.error is None and "Paragraph 3 of the article" in first.text
        assert "Another headline number" not in first.text and "Section 4" not in first.text
        assert second.text == first.text == again.text
        assert feeds.hits("/news/1.html") == 1 and feeds.hits("/robots.txt") == 1
    finally:
        store.close()


async def test_robots_txt_that_disallows_the_page_is_obeyed(feeds: FeedServer) -> None:
    url = serve_html(feeds, "/private/1.html", article_html("Title", BODY))
    feeds.route("/robots.txt", b"User-agent: narrative-bot\nDisallow: /private/\n",
                content_type="text/plain")
    async with make_client(LIMITS) as client:
        page = await fetcher().read(client, url)
    assert page.error == "robots.txt disallows this page"
    assert feeds.hits("/private/1.html") == 0


async def test_an_unreadable_robots_txt_disallows_the_site_for_now(feeds: FeedServer) -> None:
    url = serve_html(feeds, "/news/2.html", article_html("Title", BODY))
    feeds.route("/robots.txt", b"oops", status=503, content_type="text/plain")
    async with make_client(LIMITS) as client:
        page = await fetcher().read(client, url)
    assert page.error is not None and page.error.startswith("robots.txt could not be read")
    assert "503" in page.error and feeds.hits("/news/2.html") == 0


async def test_one_request_per_host_at_a_time_with_the_delay_between(
        feeds: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = 0
    most = 0
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(bot.feeds.polite.asyncio, "sleep", record_sleep)
    page = gzip.compress(article_html("Title", BODY))

    async def slow(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await real_sleep(0.05)
        in_flight -= 1
        return web.Response(body=page, headers={"Content-Type": "text/html",
                                                "Content-Encoding": "gzip"})

    for i in range(4):
        feeds.set_handler(f"/n/{i}.html", slow)
    reader = fetcher(delay_s=2.5)
    async with make_client(LIMITS) as client:
        pages = await asyncio.gather(*(reader.read(client, feeds.url(f"/n/{i}.html"))
                                       for i in range(4)))
    assert all(p.error is None for p in pages)
    assert most == 1
    # robots.txt, then four pages: each request after the first waited for the delay
    assert len(waits) == 4 and all(0 < w <= 2.5 for w in waits)


@pytest.mark.parametrize(("name", "why"), [
    ("huge", "body larger than 64.0 KB"),
    ("bomb", "body larger than 64.0 KB"),
    ("pdf", "page is not HTML (application/pdf)"),
    ("wall", "page yields little text"),
    ("endless", "timed out after 1s"),
])
async def test_a_hostile_page_gets_a_clear_error(feeds: FeedServer, name: str, why: str) -> None:
    huge = article_html("Title", BODY * 200)
    feeds.route("/huge.html", huge, content_type="text/html")
    feeds.route("/bomb.html", gzip.compress(b"<p>" + b"a" * 50_000_000 + b"</p>"),
                content_type="text/html", headers={"Content-Encoding": "gzip"})
    feeds.route("/pdf.html", b"%PDF-1.7 ...", content_type="application/pdf")
    feeds.route("/wall.html", b"<html><body><p>Subscribe to read.</p></body></html>",
                content_type="text/html")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"<p>more</p>")
            await asyncio.sleep(0.2)
        return response

    feeds.set_handler("/endless.html", endless)
    reader = fetcher(max_bytes=64 * 1024, limits=FetchLimits(timeout_s=1, connect_timeout_s=1))
    async with make_client(LIMITS) as client:
        page = await reader.read(client, feeds.url(f"/{name}.html"))
    assert page.text == ""
    assert page.error is not None and why in page.error
