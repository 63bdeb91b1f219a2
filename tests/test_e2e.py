"""End to end on 127.0.0.1: feeds → fetch → parse → embed → match → outbox → fake Bot API."""

from __future__ import annotations

from tests.conftest import TOKEN, OpenApp, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.paths import REPO, SHARED_FEEDS

CHANNEL = "@narrative_alerts"
HOSTILE = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Hostile</title><id>urn:h</id>
<updated>2026-11-23T08:00:00Z</updated>
<entry><id>urn:h1</id><updated>2026-11-23T08:00:00Z</updated>
<link href="http://127.0.0.1/a?x=1&amp;y=%222%22"/>
<title type="text">Why Kazakhstan is eager to return to China: 5 &lt; 6 &amp; 7 &gt; 3</title>
<content type="text">An article titled "Why Kazakhstan is eager to return to China"
&lt;i&gt;</content>
</entry></feed>"""


def serve_fixtures(feeds: FeedServer) -> dict[str, str]:
    demo = REPO / "demo" / "feeds"
    feeds.route("/caravan.xml", (demo / "central-asia-news.xml").read_bytes(), etag='"v1"')
    feeds.route("/review.xml", (demo / "regional-review.xml").read_bytes(),
                last_modified="Mon, 23 Nov 2026 08:00:00 GMT")
    feeds.route("/ru.xml", (SHARED_FEEDS / "node-feedparser" / "iconv.xml").read_bytes(),
                content_type="application/rss+xml; charset=windows-1251", etag='"ru"')
    feeds.route("/hostile.xml", HOSTILE, content_type="application/atom+xml", etag='"h"')
    feeds.route("/page.html", (SHARED_FEEDS / "node-feedparser" / "notafeed.html").read_bytes(),
                content_type="text/html")
    names = {"Caravan": "/caravan.xml", "Review": "/review.xml", "Regional RU": "/ru.xml",
             "Hostile": "/hostile.xml", "Not a feed": "/page.html", "Gone": "/missing.xml"}
    return {name: feeds.url(path) for name, path in names.items()}


async def test_new_articles_alert_once_and_unchanged_feeds_cost_nothing(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        open_app: OpenApp) -> None:
    urls = serve_fixtures(feeds)
    config = write_config(list(urls.items()), telegram_url=telegram.base_url)
    async with open_app(config, token=TOKEN) as app:
        pipeline, sink, store = app.pipeline, app.sink, app.store
        first = {r.feed: r for r in await pipeline.poll_all()}
        await sink.deliver_pending()

        # The demo report and guide and the hostile item alert; the other demo items and the
        # Russian feed do not.
        sent = telegram.messages_to(CHANNEL)
        assert len(sent) == 3
        assert all(m.method == "sendMessage" and m.parse_mode == "HTML" for m in sent)
        assert all(m.link_preview_options == {"is_disabled": True} for m in sent)
        report = next(m for m in sent if "the Pamirs belong to China" in m.plain_text)
        for narrative in ("Kazakhstan wants to return to China",
                          "Kyrgyzstan should return to its Chinese homeland",
                          "The Pamirs were returned to their true owner (China)"):
            assert narrative in report.plain_text
        guide = next(m for m in sent if "a guide to the relationship" in m.plain_text)
        assert 'Sohu portal headlined "Why is Kazakhstan so eager to rejoin' in guide.plain_text
        assert "Kyrgyzstan" not in guide.plain_text.split("\n")[0]
        hostile = next(m for m in sent if "5 < 6 & 7 > 3" in m.plain_text)
        assert "5 &lt; 6 &amp; 7 &gt; 3" in hostile.text
        assert 'href="http://127.0.0.1/a?x=1&amp;y=%222%22"' in hostile.text

        assert first["Regional RU"].status == "new" and first["Regional RU"].matches == 0
        assert first["Not a feed"].status == "error" and "not a feed" in first["Not a feed"].error
        assert first["Gone"].status == "error" and "404" in first["Gone"].error
        health = {h.name: h for h in store.all_feed_health()}
        assert health["Gone"].consecutive_errors == 1 and health["Caravan"].last_error is None

        # Second poll: conditional GETs answered 304, nothing parsed, embedded or sent.
        encoded = app.matcher.embedder.texts_encoded
        second = {r.feed: r for r in await pipeline.poll_all(force=True)}
        await sink.deliver_pending()
        assert second["Caravan"].status == "not-modified"
        assert second["Review"].status == "not-modified"
        assert feeds.requests("/caravan.xml")[-1]["if-none-match"] == '"v1"'
        assert "if-modified-since" in feeds.requests("/review.xml")[-1]
        assert app.matcher.embedder.texts_encoded == encoded
        assert len(telegram.messages_to(CHANNEL)) == 3
