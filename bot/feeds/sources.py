"""The kinds of source a feed entry can name, and how each becomes articles.

- `feed`: RSS/Atom/RDF/JSON, parsed by bot.feeds.parse.
- `sitemap`: a sitemap, a sitemap index (its newest `MAX_CHILD_SITEMAPS` children are read) or
  a Google News sitemap; each URL is an article whose text is its page (bot.feeds.pages).
- `telegram`: a public channel's web preview, https://t.me/s/<channel>; on a first poll
  older posts are paged with ?before= while they are within `max_age`.

`detect_kind` tells the kind from the URL when the config leaves it out (an explicit kind
wins). The reading functions never raise; every extra request goes through the `fetch` the
caller gives (bounded, polite), and their number is bounded here.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from bot.feeds.parse import parse_feed
from bot.feeds.sitemap import Sitemap, SitemapEntry, looks_like_sitemap, parse_sitemap
from bot.feeds.tgchannel import ChannelPage, channel_url, parse_channel_page
from bot.models import Article, FetchResult, ParsedFeed

FEED, SITEMAP, TELEGRAM = "feed", "sitemap", "telegram"
KINDS = (FEED, SITEMAP, TELEGRAM)
MAX_CHILD_SITEMAPS = 3
_KEY_HEX_CHARS = 32
_SITEMAP_PATH = re.compile(r"sitemap[^/]*\.xml(?:\.gz)?$|/sitemap[^/]*/?$", re.IGNORECASE)

Fetch = Callable[[str], Awaitable[FetchResult]]


@dataclass(frozen=True)
class SourceRead:
    """A source's articles; `remember_body` is False when the body fetched is not all that was
    read (a sitemap index: its children may change while it does not)."""

    parsed: ParsedFeed
    remember_body: bool = True


def detect_kind(url: str, explicit: str | None = None) -> str:
    """The kind of source `url` is: `explicit` when given, else told by the URL."""
    if explicit:
        return explicit
    if channel_url(url) is not None:
        return TELEGRAM
    path = urlsplit(url).path
    return SITEMAP if _SITEMAP_PATH.search(path) else FEED


def fetch_url(url: str, kind: str) -> str:
    """The URL actually fetched: a channel's preview page for any t.me URL of it."""
    return (channel_url(url) or url) if kind == TELEGRAM else url


async def read_source(kind: str, body: bytes, headers: dict[str, str], fetch: Fetch, *,
                      source: str, url: str, max_urls: int, max_pages: int,
                      older_than: datetime | None) -> SourceRead:
    """The articles of one fetched source body. `older_than`: on a channel's first poll, page
    back until posts are older than this (None: the first page only)."""
    if kind == TELEGRAM:
        return await _read_channel(body, fetch, source=source, url=url, max_pages=max_pages,
                                   older_than=older_than)
    if kind == SITEMAP or (kind == FEED and looks_like_sitemap(body)):
        return await _read_sitemap(body, fetch, source=source, url=url, max_urls=max_urls)
    parsed = await asyncio.to_thread(parse_feed, body, headers, source=source, feed_url=url)
    return SourceRead(parsed)


# --- sitemaps ------------------------------------------------------------------------------


async def _read_sitemap(body: bytes, fetch: Fetch, *, source: str, url: str,
                        max_urls: int) -> SourceRead:
    sitemap = await asyncio.to_thread(parse_sitemap, body, url, max_urls=max_urls)
    if sitemap.error is not None:
        return SourceRead(ParsedFeed(articles=[], error=sitemap.error))
    if not sitemap.is_index:
        return SourceRead(_sitemap_articles(sitemap, source, url, max_urls))
    entries: list[SitemapEntry] = []
    total = 0
    problems: list[str] = []
    for child in sitemap.children[:MAX_CHILD_SITEMAPS]:
        result = await fetch(child.url)
        if result.error is not None or result.body is None:
            problems.append(f"{child.url}: {result.error or 'no body'}")
            continue
        part = await asyncio.to_thread(parse_sitemap, result.body, child.url, max_urls=max_urls)
        if part.error is not None or part.is_index:
            problems.append(f"{child.url}: {part.error or 'a nested sitemap index (not read)'}")
            continue
        entries += part.entries
        total += part.total
    if not entries and problems:
        return SourceRead(ParsedFeed(articles=[], error=f"sitemap index: {problems[0]}"),
                          remember_body=False)
    merged = Sitemap(entries=entries, total=total)
    parsed = _sitemap_articles(merged, source, url, max_urls)
    warning = "; ".join(w for w in (parsed.warning, *problems[:2]) if w) or None
    return SourceRead(ParsedFeed(articles=parsed.articles, feed_title=parsed.feed_title,
                                 warning=warning), remember_body=False)


def _sitemap_articles(sitemap: Sitemap, source: str, url: str, max_urls: int) -> ParsedFeed:
    entries = sorted(sitemap.entries, key=lambda e: e.published is None)[:max_urls]
    # Newest first, as feeds list them (the pipeline processes oldest first).
    articles = [_entry_article(e, source, url) for e in
                sorted(entries, key=lambda e: e.published.timestamp() if e.published else 0,
                       reverse=True)]
    warning = None
    if sitemap.total > len(articles):
        warning = (f"the sitemap lists {sitemap.total:,} URLs; only the newest "
                   f"{len(articles):,} are read")
    if not articles:
        return ParsedFeed(articles=[], error="sitemap lists no URLs")
    return ParsedFeed(articles=articles, feed_title=urlsplit(url).netloc, warning=warning)


def _entry_article(entry: SitemapEntry, source: str, feed_url: str) -> Article:
    digest = hashlib.sha256(f"{feed_url}\n{entry.url}".encode("utf-8", "surrogatepass"))
    # Until its page is read the article's text is its URL: unique, so that "seen" checks
    # (which also compare texts) tell two untitled entries apart.
    return Article(key=digest.hexdigest()[:_KEY_HEX_CHARS], source=source, url=entry.url,
                   title=entry.title, text=entry.url, published=entry.published,
                   language=entry.language)


# --- Telegram channels -----------------------------------------------------------------------


async def _read_channel(body: bytes, fetch: Fetch, *, source: str, url: str, max_pages: int,
                        older_than: datetime | None) -> SourceRead:
    page = await asyncio.to_thread(parse_channel_page, body, source=source, feed_url=url)
    if page.error is not None:
        return SourceRead(ParsedFeed(articles=[], error=page.error))
    pages = [page]
    warning = None
    while older_than is not None and len(pages) < max_pages and _goes_on(pages[-1], older_than):
        before = f"{url.split('?', 1)[0]}?before={pages[-1].oldest_id}"
        result = await fetch(before)
        if result.error is not None or result.body is None:
            warning = f"older posts not read: {result.error or 'no body'}"
            break
        older = await asyncio.to_thread(parse_channel_page, result.body, source=source,
                                        feed_url=url)
        if older.error is not None or not older.articles:
            break
        pages.append(older)
    # Each page lists its posts oldest first; feeds list newest first.
    articles = [a for p in pages for a in reversed(p.articles)]
    return SourceRead(ParsedFeed(articles=articles, feed_title=page.title, warning=warning))


def _goes_on(page: ChannelPage, older_than: datetime) -> bool:
    if page.oldest_id is None or page.oldest_id <= 1 or not page.articles:
        return False
    oldest = min((a.published for a in page.articles if a.published), default=None)
    return oldest is not None and oldest > older_than
