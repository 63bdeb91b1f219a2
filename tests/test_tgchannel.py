"""Public Telegram channels through their web preview: posts parsed (id, time, text, link),
service messages and quoted replies left out, older posts paged with ?before= on the first poll
up to max_age, later polls reading only the first page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.app.pipeline import fetch_limits
from bot.feeds import make_client
from bot.feeds.tgchannel import channel_url, parse_channel_page
from bot.storage.database import run
from bot.storage.store import Store
from tests.conftest import WriteConfig
from tests.feed_server import FeedServer
from tests.test_pipeline import stub_pipeline
from tests.tgpreview import Post, preview_page

NOW = datetime.now(UTC).replace(microsecond=0)
URL = "https://t.me/s/steppe_wire"


def test_posts_with_id_time_text_and_link() -> None:
    page = preview_page("steppe_wire", [
        Post(41, "Rail freight grew again.\nThe line to the port is busy.", NOW),
        Post(42, "Channel photo updated", NOW, service=True),
        Post(43, "We agree with this.", NOW + timedelta(minutes=5),
             reply_to="Some quoted words from an older post."),
    ])
    parsed = parse_channel_page(page, source="Wire", feed_url=URL)
    assert parsed.error is None and parsed.title == "Steppe Wire" and parsed.oldest_id == 41
    first, second = parsed.articles
    assert first.url == "https://t.me/steppe_wire/41" and first.published == NOW
    assert first.text == "Rail freight grew again.\nThe line to the port is busy."
    assert first.title == "Steppe Wire: Rail freight grew again."
    assert second.text == "We agree with this."  # the quoted reply is not the post's words
    again = parse_channel_page(page, source="Wire", feed_url=URL)
    assert [a.key for a in again.articles] == [a.key for a in parsed.articles]


def test_channel_urls_people_paste_are_normalised() -> None:
    assert channel_url("https://t.me/steppe_wire") == URL
    assert channel_url("https://telegram.me/s/steppe_wire/") == URL
    assert channel_url("http://t.me/steppe_wire?embed=1") == URL
    assert channel_url("https://t.me/steppe_wire/41") is None  # one post, not the channel
    assert channel_url("https://example.org/steppe_wire") is None


def test_a_page_that_is_no_channel_preview_says_so() -> None:
    parsed = parse_channel_page(b"<html><body><p>Hello</p></body></html>", source="W",
                                feed_url=URL)
    assert parsed.error is not None and "not a Telegram channel preview" in parsed.error


async def test_first_poll_pages_back_to_max_age_then_only_the_first_page(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    # 30 posts, one every 12 hours, 10 per page: posts 21–30 are the newest (first page).
    posts = [Post(n, f"Post number {n} about the river and the harvest this week.",
                  NOW - timedelta(hours=12 * (30 - n))) for n in range(1, 31)]
    befores: list[str] = []

    async def preview(request: web.Request) -> web.StreamResponse:
        before = int(request.query.get("before", str(len(posts) + 1)))
        befores.append(request.query.get("before", ""))
        page = [p for p in posts if before - 10 <= p.number < before]
        return web.Response(body=preview_page("steppe_wire", page),
                            headers={"Content-Type": "text/html; charset=utf-8"})

    feeds.set_handler("/s/steppe_wire", preview)
    config = write_config([("Wire", feeds.url("/s/steppe_wire"))],
                          extra='[fetch]\npoliteness_delay = "0s"\nmax_age = "8d"\n')
    config = config.model_copy(update={"feeds": [config.feeds[0].model_copy(
        update={"kind": "telegram"})]})
    store = Store(config.state.path)
    try:
        async with make_client(fetch_limits(config)) as client:
            pipeline = stub_pipeline(config, store, shipped_narratives, client)
            first = await pipeline.poll_feed(config.feeds[0], force=True)
            posts.append(Post(31, "A new post after the first poll, about the harvest.", NOW))
            second = await pipeline.poll_feed(config.feeds[0], force=True)
        # 8 days back = 16 posts within max_age (15..30); pages: 21–30, 11–20 (then old enough)
        assert befores[:2] == ["", "21"] and len(befores) == 3
        assert (first.status, first.new_articles, first.too_old) == ("new", 16, 4)
        assert second.new_articles == 1 and befores[2] == ""  # no paging after the first poll
        with store._read() as db:
            urls = [r[0] for r in run(db, "SELECT url FROM articles ORDER BY url")]
        assert "https://t.me/steppe_wire/31" in urls and "https://t.me/steppe_wire/14" not in urls
    finally:
        store.close()
