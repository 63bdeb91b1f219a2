"""Each feed's HTTP state and health: validators, the hash of the last body processed, last
poll and error, back-off, the pause after too many failures (the admins are told once), and
the last article page of the feed that could not be read (the item's own text was used).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.models import HttpCacheState
from bot.storage.posts import queue_notice
from bot.storage.sqlite import Database, iso, parse_time, utcnow


@dataclass(frozen=True)
class FeedHealth:
    """What the state knows about one feed: validators, last poll, last error, back-off."""

    name: str
    url: str
    cache: HttpCacheState
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    consecutive_errors: int
    retry_at: datetime | None
    paused_at: datetime | None
    articles_seen: int
    body_hash: str | None = None
    page_error: str | None = None  # the last linked page that could not be read, and why
    page_error_at: datetime | None = None


class FeedsStore(Database):
    """Feeds' rows, keyed by the feed's configured name."""

    def feed_health(self, name: str, url: str) -> FeedHealth:
        row = self._db.execute("SELECT * FROM feeds WHERE name = ?", (name,)).fetchone()
        if row is None or row["url"] != url:
            # A feed whose URL changed starts afresh: old validators belong to the old URL.
            with self._tx() as db:
                db.execute("INSERT INTO feeds (name, url) VALUES (?, ?) ON CONFLICT(name) DO "
                           "UPDATE SET url = excluded.url, etag = NULL, last_modified = NULL, "
                           "body_hash = NULL",
                           (name, url))
            row = self._db.execute("SELECT * FROM feeds WHERE name = ?", (name,)).fetchone()
        return _feed_from_row(row)

    def all_feed_health(self) -> list[FeedHealth]:
        rows = self._db.execute("SELECT * FROM feeds ORDER BY name").fetchall()
        return [_feed_from_row(r) for r in rows]

    def record_feed_ok(self, name: str, cache: HttpCacheState, new_articles: int = 0,
                       body_hash: str | None = None) -> bool:
        """Store a good poll (and the hash of a body fully processed); return True when the
        feed had been paused (it has recovered)."""
        at = iso(utcnow())
        with self._tx() as db:
            row = db.execute("SELECT paused_at FROM feeds WHERE name = ?", (name,)).fetchone()
            db.execute("UPDATE feeds SET etag = ?, last_modified = ?, last_poll_at = ?, "
                       "last_ok_at = ?, last_error = NULL, consecutive_errors = 0, "
                       "retry_at = NULL, paused_at = NULL, articles_seen = articles_seen + ?, "
                       "body_hash = COALESCE(?, body_hash) WHERE name = ?",
                       (cache.etag, cache.last_modified, at, at, new_articles, body_hash,
                        name))
        return bool(row and row[0])

    def record_feed_error(self, name: str, error: str, retry_at: datetime | None) -> int:
        """Store the error; return how many polls in a row have failed."""
        with self._tx() as db:
            db.execute("UPDATE feeds SET last_poll_at = ?, last_error = ?, "
                       "consecutive_errors = consecutive_errors + 1, retry_at = ? WHERE name = ?",
                       (iso(utcnow()), error, iso(retry_at), name))
            row = db.execute("SELECT consecutive_errors FROM feeds WHERE name = ?",
                             (name,)).fetchone()
        return int(row[0]) if row else 0

    def record_page_error(self, name: str, error: str) -> None:
        """A linked page of this feed could not be read (the feed itself is fine)."""
        with self._tx() as db:
            db.execute("UPDATE feeds SET page_error = ?, page_error_at = ? WHERE name = ?",
                       (error, iso(utcnow()), name))

    def pause_feed(self, name: str, notice: str, admin_chats: Sequence[str]) -> bool:
        """Mark a long-failing feed paused and tell the admins, once; False if already paused."""
        at = iso(utcnow())
        with self._tx() as db:
            cur = db.execute("UPDATE feeds SET paused_at = ? WHERE name = ? AND paused_at IS NULL",
                             (at, name))
            if cur.rowcount == 0:
                return False
            queue_notice(db, admin_chats, notice, at)
        return True


def _feed_from_row(row: sqlite3.Row) -> FeedHealth:
    return FeedHealth(
        name=row["name"], url=row["url"],
        cache=HttpCacheState(etag=row["etag"], last_modified=row["last_modified"]),
        last_poll_at=parse_time(row["last_poll_at"]), last_ok_at=parse_time(row["last_ok_at"]),
        last_error=row["last_error"], consecutive_errors=row["consecutive_errors"],
        retry_at=parse_time(row["retry_at"]), paused_at=parse_time(row["paused_at"]),
        articles_seen=row["articles_seen"], body_hash=row["body_hash"],
        page_error=row["page_error"], page_error_at=parse_time(row["page_error_at"]))
