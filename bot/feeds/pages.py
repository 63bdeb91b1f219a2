"""An article's linked page, fetched politely and once: robots.txt, the host gate, the page
cache, the bounded fetcher, then trafilatura (bot.feeds.extract) off the event loop.

`PageFetcher.read(client, url)` never raises: a page that cannot be had comes back as
`PageText(error=...)`, worded for people. A page read successfully is kept in the cache the
app gives (the state), so a URL listed by two feeds, or polled again, is fetched once.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Protocol

import httpx

from bot.feeds.extract import PageText, extract_page
from bot.feeds.fetch import FetchLimits, fetch_feed
from bot.feeds.polite import ROBOTS_MAX_BYTES, HostGate, RobotsRules
from bot.models import FetchResult, HttpCacheState

HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
_HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]{1,40})", re.IGNORECASE)
MIN_PAGE_CHARS = 200  # less than this is a teaser or a wall, not the article


class PageCache(Protocol):
    """Where pages already read are kept (the state: bot.storage.pages)."""

    def cached_page(self, url: str) -> PageText | None: ...

    def cache_page(self, url: str, page: PageText) -> None: ...


class PageFetcher:
    """Reads article pages for every feed: one host gate and one robots cache for the bot."""

    def __init__(self, limits: FetchLimits, cache: PageCache | None, *, delay_s: float,
                 max_bytes: int) -> None:
        self.limits = replace(limits, accept=HTML_ACCEPT, max_bytes=max_bytes)
        self.robots_limits = replace(limits, max_bytes=ROBOTS_MAX_BYTES, accept="text/plain")
        self.cache = cache
        self.gate = HostGate(delay_s)
        self.robots = RobotsRules()

    async def read(self, client: httpx.AsyncClient, url: str) -> PageText:
        """The page's main text, from the cache or the site; a readable error otherwise."""
        if not url:
            return PageText(error="the item links no page")
        if self.cache is not None and (hit := self.cache.cached_page(url)) is not None:
            return hit
        page = await self._fetch(client, url)
        if page.error is None and self.cache is not None:
            self.cache.cache_page(url, page)
        return page

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> PageText:
        if url.lower().startswith("file:"):
            if not self.limits.allow_file_urls:
                return PageText(error="file:// URLs are disabled (set allow_file_urls)")
        else:
            refused = await self.robots.check(url, lambda u: self._get(client, u,
                                                                       self.robots_limits))
            if refused is not None:
                return PageText(error=refused)
        result = await self._get(client, url, self.limits)
        if result.error is not None or result.body is None:
            return PageText(error=f"page: {result.error or 'no body'}")
        content_type = result.headers.get("content-type", "")
        if content_type and not content_type.lower().startswith(_HTML_TYPES):
            return PageText(error=f"page is not HTML ({content_type.split(';')[0][:60]})")
        charset = _charset(content_type)
        page = await asyncio.to_thread(extract_page, result.body, url, charset)
        if page.error is None and len(page.text) < MIN_PAGE_CHARS:
            return PageText(title=page.title, error="page yields little text")
        return page

    async def _get(self, client: httpx.AsyncClient, url: str,
                   limits: FetchLimits) -> FetchResult:
        async with self.gate.slot(url):
            return await fetch_feed(client, url, HttpCacheState(), limits)


def _charset(content_type: str) -> str | None:
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None
