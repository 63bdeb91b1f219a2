"""Every feed the bot polls, config.toml's and those kept in state, and how feeds are added
(from the chat, from OPML) and removed.

A feed added from the chat is tried first: its URL is fetched and read as the poll would read
it; a plain site page is searched for the feed it announces (`<link rel="alternate">`). Only a
source that yields items is kept. A config feed's name is never taken by a stored feed, and a
config feed cannot be removed from here. The schedule learns of additions and removals
through the hooks the app sets (`on_added`, `on_removed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError

from bot.app.sources import SourceReader
from bot.config import Config, FeedConfig
from bot.feeds.discover import announced_feeds, looks_like_html
from bot.feeds.fetch import fetch_feed
from bot.feeds.opml import OpmlFeed
from bot.feeds.sources import TELEGRAM, detect_kind, fetch_url
from bot.models import HttpCacheState
from bot.storage.store import Store, StoredFeed

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(minutes=10)
CONFIG = "config"


@dataclass(frozen=True)
class ListedFeed:
    """A feed and where it comes from: "config", "chat" (by a user id) or "opml" (a file)."""

    feed: FeedConfig
    origin: str
    added_by: str | None = None


@dataclass(frozen=True)
class Added:
    """What /addfeed did: the feed kept, its source's title and item count, or why not."""

    feed: FeedConfig | None = None
    title: str = ""
    items: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Imported:
    """What an OPML import did."""

    added: list[str]
    skipped: list[str]  # "name: why"


class FeedList:
    """config.toml's feeds and the stored ones, as the pipeline and the commands see them."""

    def __init__(self, config: Config, store: Store, reader: SourceReader | None = None) -> None:
        """`reader`: how a new feed is tried (None: feeds can be listed and imported only)."""
        self.config = config
        self.store = store
        self.reader = reader
        self.on_added: Callable[[FeedConfig], None] | None = None
        self.on_removed: Callable[[str], None] | None = None

    def stored(self) -> list[FeedConfig]:
        """The feeds kept in state (any whose name config.toml now uses is left out)."""
        return [f.feed for f in self.listed() if f.origin != CONFIG]

    def listed(self) -> list[ListedFeed]:
        names = {f.name for f in self.config.feeds}
        listed = [ListedFeed(f, CONFIG) for f in self.config.feeds]
        for stored in self.store.stored_feeds():
            feed = _as_config(stored)
            if feed is None or stored.name in names:
                continue
            listed.append(ListedFeed(feed, stored.origin, stored.added_by))
        return listed

    def find(self, name: str) -> ListedFeed | None:
        folded = name.casefold()
        return next((f for f in self.listed() if f.feed.name.casefold() == folded), None)

    # -- adding and removing ----------------------------------------------------------------

    async def add(self, url: str, *, name: str | None = None,
                  interval: timedelta | None = None, added_by: str | None = None) -> Added:
        """Try `url` (or the feed its page announces) and keep it; never raises."""
        if self.reader is None:
            return Added(error="feeds cannot be tried here")
        found = await self._try(self.reader, url)
        if found.error is not None or found.feed is None:
            return found
        feed_name = (name or found.title or found.feed.url)[:100].strip()
        problem = self._clash(feed_name, found.feed.url)
        if problem:
            return Added(error=problem)
        try:
            feed = FeedConfig(name=feed_name, url=found.feed.url,
                              interval=interval or DEFAULT_INTERVAL, kind=found.feed.kind)
        except ValidationError as exc:
            return Added(error=f"not a usable feed: {exc.errors()[0]['msg']}")
        stored = StoredFeed(name=feed.name, url=feed.url, interval=feed.interval,
                            kind=feed.kind, origin="chat", added_by=added_by)
        if not self.store.add_stored_feed(stored):
            return Added(error=f"a feed named {feed.name!r} or with this URL exists already")
        if self.on_added is not None:
            self.on_added(feed)
        return Added(feed=feed, title=found.title, items=found.items)

    def remove(self, name: str) -> str | None:
        """None when the stored feed is gone; else why it was not removed."""
        listed = self.find(name)
        if listed is None:
            return f"no feed named {name!r}"
        if listed.origin == CONFIG:
            return (f"{listed.feed.name!r} is set in config.toml; remove it there "
                    "(feeds added from the chat or by import can be removed here)")
        self.store.remove_stored_feed(listed.feed.name)
        if self.on_removed is not None:
            self.on_removed(listed.feed.name)
        return None

    def import_opml(self, feeds: Iterable[OpmlFeed], *, interval: timedelta,
                    source: str) -> Imported:
        """Keep each OPML feed not known yet (by name or URL); report what was skipped."""
        added: list[str] = []
        skipped: list[str] = []
        for item in feeds:
            problem = self._clash(item.name, item.url)
            if problem is None:
                try:
                    feed = FeedConfig(name=item.name, url=item.url, interval=interval,
                                      tags=list(item.tags))
                except ValidationError as exc:
                    problem = exc.errors()[0]["msg"]
                else:
                    stored = StoredFeed(name=feed.name, url=feed.url, interval=interval,
                                        origin="opml", added_by=source, tags=item.tags)
                    if self.store.add_stored_feed(stored):
                        added.append(feed.name)
                        continue
                    problem = "already kept"
            skipped.append(f"{item.name}: {problem}")
        return Imported(added, skipped)

    def _clash(self, name: str, url: str) -> str | None:
        if not name:
            return "the feed has no name; give one"
        for listed in self.listed():
            if listed.feed.name.casefold() == name.casefold():
                return f"a feed named {listed.feed.name!r} exists already ({listed.origin})"
            if listed.feed.url == url:
                return f"this URL is polled already as {listed.feed.name!r}"
        return None

    async def _try(self, reader: SourceReader, url: str) -> Added:
        url = url.strip()
        if not url.lower().startswith(("http://", "https://")):
            return Added(error="give an http:// or https:// URL")
        kind = detect_kind(url)
        candidate = FeedConfig(name="new", url=fetch_url(url, kind),
                               kind="telegram" if kind == TELEGRAM else None)
        first = await self._read(reader, candidate)
        if first.error is None or kind == TELEGRAM:
            return first
        result = await fetch_feed(reader.client_for(candidate), url, HttpCacheState(),
                                  reader.limits)
        body = result.body or b""
        if not looks_like_html(body, result.headers.get("content-type", "")):
            return first
        for announced in announced_feeds(body, url):
            found = await self._read(reader, FeedConfig(name="new", url=announced))
            if found.error is None:
                return found
        return Added(error=f"{first.error}; the page announces no feed that works")

    @staticmethod
    async def _read(reader: SourceReader, feed: FeedConfig) -> Added:
        result = await fetch_feed(reader.client_for(feed), reader.url(feed), HttpCacheState(),
                                  reader.limits)
        if result.error is not None or result.body is None:
            return Added(error=result.error or "no body")
        parsed = (await reader.read(feed, result, first_poll=False)).parsed
        if parsed.error is not None:
            return Added(error=parsed.error)
        return Added(feed=feed, title=parsed.feed_title, items=len(parsed.articles))


def _as_config(stored: StoredFeed) -> FeedConfig | None:
    try:
        return FeedConfig(name=stored.name, url=stored.url, interval=stored.interval,
                          kind=stored.kind, tags=list(stored.tags))  # type: ignore[arg-type]
    except ValidationError:
        log.warning("stored feed %r is not valid any more; skipped", stored.name)
        return None
