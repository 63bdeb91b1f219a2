"""What the pipeline needs to read a feed of any kind: its kind and URL, its HTTP client (its
proxy), its articles from the fetched body, and their full text from the linked pages.

One `SourceReader` serves every feed, so the page fetcher's host gate and robots cache, and
the page cache in state, are shared by all of them. Article pages are bounded per poll
(`[fetch] max_pages_per_poll`): articles past the bound wait for the next poll. A page that
cannot be read leaves its article as the item had it, and the reason is recorded on the feed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from bot.config import Config, FeedConfig
from bot.feeds.extract import PageText
from bot.feeds.fetch import FetchLimits, fetch_feed, make_client
from bot.feeds.fulltext import needs_page, with_page
from bot.feeds.pages import PageFetcher
from bot.feeds.sources import (
    FEED,
    SITEMAP,
    TELEGRAM,
    SourceRead,
    detect_kind,
    fetch_url,
    read_source,
)
from bot.models import Article, FetchResult, HttpCacheState
from bot.storage.store import Store

log = logging.getLogger(__name__)


class StatePageCache:
    """The page cache kept in state, as bot.feeds.pages wants it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cached_page(self, url: str) -> PageText | None:
        row = self.store.cached_page_row(url)
        return None if row is None else PageText(title=row.title, text=row.text,
                                                 published=row.published)

    def cache_page(self, url: str, page: PageText) -> None:
        self.store.cache_page_row(url, page.title, page.text, page.published)


@dataclass(frozen=True)
class Completed:
    """Articles with their pages read, and how many wait for the next poll's page budget."""

    articles: list[Article]
    backlog: int = 0
    pages_read: int = 0


class SourceReader:
    """Kinds, clients, source bodies and full text, for every feed of one pipeline."""

    def __init__(self, config: Config, store: Store | None, client: httpx.AsyncClient,
                 limits: FetchLimits) -> None:
        """`store`: where pages are cached and page failures recorded (None: a probe)."""
        self.config = config
        self.store = store
        self.limits = limits
        fetch = config.fetch
        self.pages = PageFetcher(limits, None if store is None else StatePageCache(store),
                                 delay_s=fetch.politeness_delay.total_seconds(),
                                 max_bytes=fetch.page_max_bytes)
        self._default = client
        self._proxied: dict[str, httpx.AsyncClient] = {}

    # -- kinds and clients ------------------------------------------------------------------

    def kind(self, feed: FeedConfig) -> str:
        return detect_kind(feed.url, feed.kind)

    def url(self, feed: FeedConfig) -> str:
        return fetch_url(feed.url, self.kind(feed))

    def client_for(self, feed: FeedConfig) -> httpx.AsyncClient:
        """The default client (through `[fetch] proxy`), or one through the feed's own proxy."""
        proxy = feed.proxy
        if proxy is None or proxy == self.config.fetch.proxy:
            return self._default
        client = self._proxied.get(proxy)
        if client is None:
            client = self._proxied[proxy] = make_client(self.limits, proxy)
        return client

    async def aclose(self) -> None:
        clients, self._proxied = list(self._proxied.values()), {}
        for client in clients:
            await client.aclose()

    # -- the source's articles -----------------------------------------------------------------

    async def read(self, feed: FeedConfig, result: FetchResult, *,
                   first_poll: bool) -> SourceRead:
        """The articles of a fetched body (a sitemap's children and a channel's older pages
        are fetched here, through the host gate)."""
        kind = self.kind(feed)
        client = self.client_for(feed)

        async def fetch(url: str) -> FetchResult:
            async with self.pages.gate.slot(url):
                return await fetch_feed(client, url, HttpCacheState(), self.limits)

        max_age = self.config.fetch.max_age
        older_than = (datetime.now(UTC) - max_age
                      if first_poll and max_age is not None and kind == TELEGRAM else None)
        read = await read_source(kind, result.body or b"", result.headers, fetch,
                                 source=feed.name, url=self.url(feed),
                                 max_urls=self.config.fetch.sitemap_max_urls,
                                 max_pages=self.config.fetch.telegram_max_pages,
                                 older_than=older_than)
        warning = read.parsed.warning
        if warning and kind != FEED and self.store is not None:
            # a sitemap cut to its newest URLs, a child sitemap or an older page not read
            self.store.record_page_error(feed.name, warning)
        return read

    # -- full text ------------------------------------------------------------------------------

    def mode(self, feed: FeedConfig) -> str:
        """auto, always or never: the feed's own, else a channel's posts are whole already,
        a sitemap's URLs have only their pages, else `[fetch] full_text`."""
        if feed.full_text is not None:
            return feed.full_text
        kind = self.kind(feed)
        if kind == TELEGRAM:
            return "never"
        return "always" if kind == SITEMAP else self.config.fetch.full_text

    async def complete(self, feed: FeedConfig, articles: list[Article]) -> Completed:
        """The articles with their linked pages' text where the mode asks for it."""
        mode = self.mode(feed)
        budget = self.config.fetch.max_pages_per_poll
        kept: list[Article] = []
        wanted: list[Article] = []
        for article in articles:
            if needs_page(article, mode):
                if len(wanted) >= budget:
                    break
                wanted.append(article)
            kept.append(article)
        if not wanted:
            return Completed(kept, backlog=len(articles) - len(kept))
        client = self.client_for(feed)
        pages = await asyncio.gather(*(self.pages.read(client, a.url) for a in wanted))
        by_key = dict(zip((a.key for a in wanted), pages, strict=True))
        failed = [(a, p) for a, p in zip(wanted, pages, strict=True) if p.error is not None]
        if failed:
            article, page = failed[-1]
            why = (f"{len(failed)} of {len(wanted)} article pages not read (the item's own "
                   f"text was used); last: {page.error} — {article.url}")
            log.info("feed %s: %s", feed.name, why)
            if self.store is not None:
                self.store.record_page_error(feed.name, why)
        sitemap = self.kind(feed) == SITEMAP
        done = [self._merged(a, by_key.get(a.key), sitemap) for a in kept]
        return Completed(done, backlog=len(articles) - len(kept),
                         pages_read=len(wanted) - len(failed))

    @staticmethod
    def _merged(article: Article, page: PageText | None, sitemap: bool) -> Article:
        if page is None:
            return article
        if page.error is not None and sitemap:
            return replace(article, text="")  # its text was only its URL
        return with_page(article, page)
