"""Feeds added from the chat (/addfeed) or imported from OPML, kept beside config.toml's.

A stored feed has the same fields a `[[feeds]]` table has; `origin` says where it came from
("chat" with the adding user's id, or "opml" with the file's name). Names are unique among
stored feeds; the caller checks them against the config's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import RowMapping

from bot.storage.database import Database, iso, parse_time, run, utcnow


@dataclass(frozen=True)
class StoredFeed:
    """A feed kept in state: as a `[[feeds]]` table would say it, and where it came from."""

    name: str
    url: str
    interval: timedelta
    kind: str | None = None
    origin: str = "chat"  # "chat" or "opml"
    added_by: str | None = None  # a user id, or the OPML file's name
    tags: tuple[str, ...] = field(default_factory=tuple)
    added_at: datetime | None = None


class SourcesStore(Database):
    """Rows of `stored_feeds`, keyed by name."""

    def stored_feeds(self) -> list[StoredFeed]:
        with self._read() as db:
            rows = run(db, "SELECT * FROM stored_feeds ORDER BY added_at, name"
                       ).mappings().fetchall()
        return [_feed_from_row(r) for r in rows]

    def add_stored_feed(self, feed: StoredFeed) -> bool:
        """Keep `feed`; False when a stored feed already has its name or its URL."""
        with self._tx() as db:
            clash = run(db, "SELECT 1 FROM stored_feeds WHERE name = :name OR url = :url",
                        {"name": feed.name, "url": feed.url}).first()
            if clash:
                return False
            run(db, "INSERT INTO stored_feeds (name, url, interval_s, kind, origin, added_by, "
                "tags, added_at) VALUES (:name, :url, :interval_s, :kind, :origin, :added_by, "
                ":tags, :added_at)",
                {"name": feed.name, "url": feed.url,
                 "interval_s": feed.interval.total_seconds(), "kind": feed.kind,
                 "origin": feed.origin, "added_by": feed.added_by,
                 "tags": json.dumps(list(feed.tags)),
                 "added_at": iso(feed.added_at or utcnow())})
        return True

    def remove_stored_feed(self, name: str) -> bool:
        with self._tx() as db:
            return run(db, "DELETE FROM stored_feeds WHERE name = :name",
                       {"name": name}).rowcount > 0


def _feed_from_row(row: RowMapping) -> StoredFeed:
    return StoredFeed(name=row["name"], url=row["url"],
                      interval=timedelta(seconds=row["interval_s"]), kind=row["kind"],
                      origin=row["origin"], added_by=row["added_by"],
                      tags=tuple(json.loads(row["tags"] or "[]")),
                      added_at=parse_time(row["added_at"]))
