"""The page cache: article pages already read (their extracted title, text and date), so a
URL is fetched once however many feeds list it and however often they are polled.

Entries older than `PAGE_TTL` are dropped as new ones are written, which bounds the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.sqlite import Database, iso, parse_time, utcnow

PAGE_TTL = timedelta(days=30)
PAGE_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class CachedPage:
    """What was extracted from one article page."""

    url: str
    title: str
    text: str
    published: datetime | None
    fetched_at: datetime


class PagesStore(Database):
    """Rows of `pages`, keyed by URL."""

    def cached_page_row(self, url: str) -> CachedPage | None:
        row = self._db.execute("SELECT * FROM pages WHERE url = ?", (url,)).fetchone()
        if row is None:
            return None
        fetched = parse_time(row["fetched_at"]) or utcnow()
        return CachedPage(url=row["url"], title=row["title"], text=row["text"],
                          published=parse_time(row["published"]), fetched_at=fetched)

    def cache_page_row(self, url: str, title: str, text: str,
                       published: datetime | None) -> None:
        now = utcnow()
        with self._tx() as db:
            db.execute("INSERT INTO pages (url, title, text, published, fetched_at) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT(url) DO UPDATE SET "
                       "title = excluded.title, text = excluded.text, "
                       "published = excluded.published, fetched_at = excluded.fetched_at",
                       (url, title, text[:PAGE_TEXT_CHARS], iso(published), iso(now)))
            db.execute("DELETE FROM pages WHERE fetched_at < ?", (iso(now - PAGE_TTL),))
