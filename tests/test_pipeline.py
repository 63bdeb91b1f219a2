"""Pipeline behaviour that is not about faults: the per-poll cap on new articles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.embed import AsyncEmbedder
from bot.fetch import make_client
from bot.match import NarrativeIndex
from bot.pipeline import Pipeline, fetch_limits
from bot.store import Store
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


async def test_a_big_feed_is_worked_off_over_several_polls(
        feeds: FeedServer, write_config: WriteConfig, shipped_narratives: list) -> None:
    feeds.route("/big.xml", rss(5), etag='"same"')
    config = write_config([("Big", feeds.url("/big.xml"))],
                          extra="[fetch]\nmax_new_per_poll = 2\n")
    store = Store(config.state.path)
    embedder = CountingEmbedder()
    index = NarrativeIndex(shipped_narratives, embedder, default_threshold=0.99)
    async with make_client(fetch_limits(config)) as client:
        pipeline = Pipeline(config, store, index, AsyncEmbedder(embedder), client,
                            route=lambda _source, _ids: [])
        reports = [await pipeline.poll_feed(config.feeds[0], force=True) for _ in range(4)]
    assert [(r.status, r.new_articles, r.backlog) for r in reports] == [
        ("new", 2, 3), ("new", 2, 1), ("new", 1, 0), ("not-modified", 0, 0)]
    # validators were held back while a backlog remained, so the server sent the feed again
    assert [h.get("if-none-match") for h in feeds.requests("/big.xml")] == [
        None, None, None, '"same"']
    assert store.counts()["articles"] == 5
