"""End to end on 127.0.0.1 with the real model: sources whose items carry no claim of their own
(a feed of titles and one neutral line, a news sitemap, a Telegram channel's preview) alert
with the paragraph of the linked page (or post) that carries it; and /addfeed on a plain site
URL finds the site's feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.feeds.extract import PageText
from bot.storage.database import run
from tests.conftest import TOKEN, OpenApp, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.pages import article_html, serve_html
from tests.test_sitemap import news_sitemap
from tests.tgpreview import Post, preview_page

CHANNEL = "@narrative_alerts"
ADMIN, USER = 42, 7
NOW = datetime.now(UTC).replace(microsecond=0)
KZ_CLAIM = ("Some commentators on Chinese portals now write that Kazakhstan has always belonged "
            "to China and that the Kazakh people secretly long to return to their motherland.")
KG_CLAIM = ("A widely shared Chinese blog post insists that Kyrgyzstan is historically Chinese "
            "land and that the Kyrgyz should come back to their Chinese homeland.")
PAMIRS_CLAIM = ("One Chinese article claims the Pamirs were finally returned to their true "
                "owner, China, when Tajikistan handed over part of the mountains.")
NEUTRAL = ["The spring sowing campaign began early this year in the northern regions, farmers "
           "said on Tuesday after the first warm week.",
           "Rail freight between the two countries rose by a tenth over the first quarter, the "
           "railway company reported."]
AFTER = ["The weather service expects rain at the weekend and cooler nights in the mountains.",
         "Museums in the capital will stay open late on Friday for the annual night of culture."]


def rss(items: list[tuple[str, str, str]]) -> bytes:
    entries = "".join(f"<item><guid>{title}</guid><title>{title}</title><link>{link}</link>"
                      f"<description>{line}</description></item>" for title, line, link in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Steppe Courier</title>'
            f"<link>https://courier.example/</link>{entries}</channel></rss>").encode()


def serve_sources(feeds: FeedServer) -> list[tuple[str, str]]:
    """An RSS feed of two short items, a news sitemap of one page, a channel of two posts."""
    claim_page = serve_html(feeds, "/a/press-review.html", article_html(
        "Regional press review", [*NEUTRAL, KZ_CLAIM, *AFTER]))
    calm_page = serve_html(feeds, "/a/council.html", article_html(
        "City council", ["The city council discussed the budget for schools and hospitals "
                         "for the coming year, and the mayor spoke about the new bridge.", *AFTER]))
    feeds.route("/rss.xml", rss([
        ("Regional press review", "Our weekly look at what the region's papers wrote.",
         claim_page),
        ("City council", "The council met on Monday.", calm_page),
        ("Gone page", "A page that was taken down.", feeds.url("/a/gone.html")),
    ]))
    blog_page = serve_html(feeds, "/b/blogs.html", article_html(
        "Blogs of the week", [*NEUTRAL, KG_CLAIM, *AFTER]))
    feeds.route("/sitemap-news.xml", news_sitemap([(blog_page, "Blogs of the week", NOW)]),
                content_type="application/xml; charset=utf-8")
    post = "\n".join(["Good morning, here is what we read today.",
                      "Prices at the bazaar were stable this week.", PAMIRS_CLAIM,
                      "More in the evening."])
    feeds.route("/s/steppe_wire", preview_page("steppe_wire", [
        Post(7, "The channel will post twice a day from now on.", NOW - timedelta(hours=3)),
        Post(8, post, NOW - timedelta(hours=1))]), content_type="text/html; charset=utf-8")
    return [("Courier", feeds.url("/rss.xml")), ("Courier map", feeds.url("/sitemap-news.xml")),
            ("Wire", feeds.url("/s/steppe_wire"))]


async def test_each_kind_of_source_alerts_with_the_paragraph_that_carries_the_claim(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        open_app: OpenApp) -> None:
    config = write_config(serve_sources(feeds), telegram_url=telegram.base_url,
                          extra='[fetch]\npoliteness_delay = "0s"\n')
    wire = config.feeds[2].model_copy(update={"kind": "telegram"})  # a t.me URL is detected;
    config = config.model_copy(update={"feeds": [*config.feeds[:2], wire]})  # this one is local
    async with open_app(config, token=TOKEN) as app:
        reports = {r.feed: r for r in await app.pipeline.poll_all()}
        await app.sink.deliver_pending()
        sent = [m.plain_text for m in telegram.messages_to(CHANNEL)]
        links = [m.text for m in telegram.messages_to(CHANNEL)]

        assert len(sent) == 3, sent
        kz = next(i for i, m in enumerate(sent) if "Kazakhstan wants to return to China" in m)
        assert KZ_CLAIM in sent[kz] and "Regional press review" in sent[kz]
        assert f'href="{feeds.url("/a/press-review.html")}"' in links[kz]
        kg = next(i for i, m in enumerate(sent) if "Chinese homeland" in m)
        assert KG_CLAIM in sent[kg] and f'href="{feeds.url("/b/blogs.html")}"' in links[kg]
        pamirs = next(i for i, m in enumerate(sent) if "Pamirs were returned" in m)
        assert PAMIRS_CLAIM in sent[pamirs]
        assert 'href="https://t.me/steppe_wire/8"' in links[pamirs]
        assert not any("Section 3" in m or "Another headline" in m for m in sent)

        assert reports["Courier"].pages_read == 2 and reports["Courier map"].pages_read == 1
        assert reports["Wire"].new_articles == 2 and reports["Wire"].pages_read == 0
        health = {h.name: h for h in app.store.all_feed_health()}
        assert health["Courier"].last_error is None  # the feed itself is fine
        page_error = health["Courier"].page_error or ""
        assert "1 of 3 article pages not read" in page_error and "HTTP 404" in page_error
        with app.store._read() as db:
            gone = run(db, "SELECT text FROM articles WHERE url = :url",
                       {"url": feeds.url("/a/gone.html")}).scalar_one()
        assert gone == "A page that was taken down."  # the item's own text was used

        # A second poll: only the new item's page is fetched; none is fetched twice.
        later = serve_html(feeds, "/a/later.html", article_html("Later", [*NEUTRAL, *AFTER]))
        feeds.route("/rss.xml", rss([("New item", "A line.", later),
                                     ("Regional press review", "Our weekly look.",
                                      feeds.url("/a/press-review.html"))]))
        again = {r.feed: r for r in await app.pipeline.poll_all(force=True)}
        assert again["Courier"].new_articles == 1 and again["Courier"].pages_read == 1
        assert feeds.hits("/a/press-review.html") == 1 and feeds.hits("/a/later.html") == 1
        assert isinstance(app.pipeline.sources.pages.cache.cached_page(  # type: ignore[union-attr]
            feeds.url("/a/press-review.html")), PageText)


async def test_addfeed_on_a_site_url_finds_its_feed_and_removefeed_keeps_config_feeds(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        open_app: OpenApp) -> None:
    feeds.route("/site/", b"""<!DOCTYPE html><html><head><title>Steppe Courier</title>
<link rel="alternate" type="application/rss+xml" title="RSS" href="/site/feed.xml">
</head><body><h1>Steppe Courier</h1><p>News.</p></body></html>""", content_type="text/html")
    feeds.route("/site/feed.xml", rss([("One", "First.", "https://courier.example/1"),
                                       ("Two", "Second.", "https://courier.example/2")]))
    config = write_config([("Review", feeds.url("/review.xml"))], telegram_url=telegram.base_url)
    app = open_app(config, token=TOKEN, chat=True)
    async with app, app.answering(poll_timeout=1):
        async def ask(text: str, user: int = ADMIN) -> str:
            before = len(telegram.messages_to(user))
            telegram.push_message(user, user, text)
            await telegram.wait_for(lambda: len(telegram.messages_to(user)) > before, 10)
            return telegram.messages_to(user)[-1].plain_text

        assert "only the bot's admins" in await ask(f"/addfeed {feeds.url('/site/')}", USER)
        reply = await ask(f"/addfeed {feeds.url('/site/')} Steppe 15m")
        assert reply.startswith("✅ Added Steppe (Steppe Courier): 2 items now, polled every "
                                "15 min from " + feeds.url("/site/feed.xml")), reply
        assert app.scheduler.get_job("feed:Steppe") is not None
        assert [f.name for f in app.pipeline.feeds()] == ["Review", "Steppe"]
        listing = await ask("/feeds")
        assert "Review —" in listing and "config" in listing and "Steppe —" in listing
        assert "chat" in listing

        failed = await ask(f"/addfeed {feeds.url('/nothing/')}")
        assert failed.startswith("❌ Not added: HTTP 404")
        twice = await ask(f"/addfeed {feeds.url('/site/feed.xml')}")
        assert "this URL is polled already as 'Steppe'" in twice

        kept = await ask("/removefeed Review")
        assert "set in config.toml" in kept
        assert "Removed Steppe" in await ask("/removefeed Steppe")
        assert app.scheduler.get_job("feed:Steppe") is None
        assert app.store.stored_feeds() == []
