"""Each feed's HTTP state and health: validators, the hash of the last body processed, last
poll and error, back-off, the pause after too many failures (the admins are told once), and
the last article page of the feed that could not be read (the item's own text was used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping

from bot.models import HttpCacheState
from bot.storage.database import Database, iso, parse_time, run, utcnow
from bot.storage.posts import queue_notice


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
        row = self._feed_row(name)
        if row is None or row["url"] != url:
            # A feed whose URL changed starts afresh: old validators belong to the old URL.
            with self._tx() as db:
                run(db, "INSERT INTO feeds (name, url) VALUES (:name, :url) ON CONFLICT (name) "
                    "DO UPDATE SET url = excluded.url, etag = NULL, last_modified = NULL, "
                    "body_hash = NULL", {"name": name, "url": url})
            row = self._feed_row(name)
        assert row is not None  # just written
        return _feed_from_row(row)

    def all_feed_health(self) -> list[FeedHealth]:
        with self._read() as db:
            rows = run(db, "SELECT * FROM feeds ORDER BY name").mappings().fetchall()
        return [_feed_from_row(r) for r in rows]

    def record_feed_ok(self, name: str, cache: HttpCacheState, new_articles: int = 0,
                       body_hash: str | None = None) -> bool:
        """Store a good poll (and the hash of a body fully processed); return True when the
        feed had been paused (it has recovered)."""
        at = iso(utcnow())
        with self._tx() as db:
            paused = run(db, "SELECT paused_at FROM feeds WHERE name = :name",
                         {"name": name}).scalar()
            # CAST: PostgreSQL cannot tell the type of a NULL parameter inside COALESCE
            run(db, "UPDATE feeds SET etag = :etag, last_modified = :last_modified, "
                "last_poll_at = :at, last_ok_at = :at, last_error = NULL, "
                "consecutive_errors = 0, retry_at = NULL, paused_at = NULL, "
                "articles_seen = articles_seen + :new_articles, "
                "body_hash = COALESCE(CAST(:body_hash AS TEXT), body_hash) WHERE name = :name",
                {"etag": cache.etag, "last_modified": cache.last_modified, "at": at,
                 "new_articles": new_articles, "body_hash": body_hash, "name": name})
        return bool(paused)

    def record_feed_error(self, name: str, error: str, retry_at: datetime | None) -> int:
        """Store the error; return how many polls in a row have failed."""
        with self._tx() as db:
            run(db, "UPDATE feeds SET last_poll_at = :at, last_error = :error, "
                "consecutive_errors = consecutive_errors + 1, retry_at = :retry_at "
                "WHERE name = :name",
                {"at": iso(utcnow()), "error": error, "retry_at": iso(retry_at), "name": name})
            errors = run(db, "SELECT consecutive_errors FROM feeds WHERE name = :name",
                         {"name": name}).scalar()
        return int(errors or 0)

    def record_page_error(self, name: str, error: str) -> None:
        """A linked page of this feed could not be read (the feed itself is fine)."""
        with self._tx() as db:
            run(db, "UPDATE feeds SET page_error = :error, page_error_at = :at WHERE name = :name",
                {"error": error, "at": iso(utcnow()), "name": name})

    def pause_feed(self, name: str, notice: str, admin_chats: Sequence[str]) -> bool:
        """Mark a long-failing feed paused and tell the admins, once; False if already paused."""
        at = iso(utcnow())
        with self._tx() as db:
            paused = run(db, "UPDATE feeds SET paused_at = :at "
                         "WHERE name = :name AND paused_at IS NULL", {"at": at, "name": name})
            if paused.rowcount == 0:
                return False
            queue_notice(db, admin_chats, notice, at)
        return True

    def _feed_row(self, name: str) -> RowMapping | None:
        with self._read() as db:
            return run(db, "SELECT * FROM feeds WHERE name = :name",
                       {"name": name}).mappings().first()


def _feed_from_row(row: RowMapping) -> FeedHealth:
    return FeedHealth(
        name=row["name"], url=row["url"],
        cache=HttpCacheState(etag=row["etag"], last_modified=row["last_modified"]),
        last_poll_at=parse_time(row["last_poll_at"]), last_ok_at=parse_time(row["last_ok_at"]),
        last_error=row["last_error"], consecutive_errors=int(row["consecutive_errors"]),
        retry_at=parse_time(row["retry_at"]), paused_at=parse_time(row["paused_at"]),
        articles_seen=int(row["articles_seen"]), body_hash=row["body_hash"],
        page_error=row["page_error"], page_error_at=parse_time(row["page_error_at"]))
