"""The page cache: article pages already read (their extracted title, text and date), so a
URL is fetched once however many feeds list it and however often they are polled.

Entries older than `PAGE_TTL` are dropped as new ones are written, which bounds the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.database import Database, iso, parse_time, run, utcnow

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
        with self._read() as db:
            row = run(db, "SELECT * FROM pages WHERE url = :url",
                      {"url": url}).mappings().first()
        if row is None:
            return None
        fetched = parse_time(row["fetched_at"]) or utcnow()
        return CachedPage(url=row["url"], title=row["title"], text=row["text"],
                          published=parse_time(row["published"]), fetched_at=fetched)

    def cache_page_row(self, url: str, title: str, text: str,
                       published: datetime | None) -> None:
        now = utcnow()
        with self._tx() as db:
            run(db, "INSERT INTO pages (url, title, text, published, fetched_at) "
                "VALUES (:url, :title, :text, :published, :fetched_at) ON CONFLICT (url) "
                "DO UPDATE SET title = excluded.title, text = excluded.text, "
                "published = excluded.published, fetched_at = excluded.fetched_at",
                {"url": url, "title": title, "text": text[:PAGE_TEXT_CHARS],
                 "published": iso(published), "fetched_at": iso(now)})
            run(db, "DELETE FROM pages WHERE fetched_at < :oldest",
                {"oldest": iso(now - PAGE_TTL)})
