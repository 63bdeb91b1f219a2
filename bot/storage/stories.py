"""Stories: the passage vectors of matched articles, kept to recognise later re-publications
(bot/matching/syndicate.py decides what is a copy), and which article copies which.

Vectors are stored as float16 (half the bytes; alignment only needs cosines to about 1e-3).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from bot.storage.sqlite import Database


@dataclass(frozen=True, eq=False)  # arrays do not compare to a bool
class Story:
    """What is remembered of a matched article, in the transaction that records it."""

    narrative_ids: tuple[str, ...]
    vectors: np.ndarray  # one row per kept passage, L2-normalised
    seen_at: datetime


@dataclass(frozen=True, eq=False)
class OriginStory:
    """A story that copies nothing: a candidate origin for later articles."""

    article_key: str
    vectors: np.ndarray  # float32


@dataclass(frozen=True)
class Copy:
    """A later copy of an alerted story, listed under it."""

    article_key: str
    source: str
    title: str
    url: str


def _stamp(moment: datetime) -> str:
    # the moment as given (not converted to UTC): the window compares these strings
    return moment.isoformat(timespec="seconds")


def remember_story(db: sqlite3.Connection, article_key: str, story: Story,
                   origin_key: str | None) -> None:
    """Inside the caller's transaction (the one that records the article)."""
    db.execute("INSERT OR IGNORE INTO stories VALUES (?, ?, ?, ?, ?, ?)",
               (article_key, json.dumps(list(story.narrative_ids)),
                story.vectors.astype(np.float16).tobytes(), story.vectors.shape[1],
                _stamp(story.seen_at), origin_key))


class StoriesStore(Database):
    """Stored stories and their copies."""

    def story_origins(self, since: datetime,
                      narrative_ids: Collection[str]) -> list[OriginStory]:
        """Origins seen since `since` that carry one of the narratives, oldest first."""
        rows = self._db.execute(
            "SELECT article_key, narratives, vectors, dim FROM stories WHERE origin_key IS NULL "
            "AND seen_at >= ? ORDER BY seen_at, article_key", (_stamp(since),)).fetchall()
        wanted = set(narrative_ids)
        return [OriginStory(key, np.frombuffer(blob, dtype=np.float16).reshape(-1, dim)
                            .astype(np.float32))
                for key, narratives, blob, dim in rows if wanted & set(json.loads(narratives))]

    def copies_of(self, origin_key: str) -> list[Copy]:
        rows = self._db.execute(
            "SELECT a.key, a.source, a.title, a.url FROM stories s JOIN articles a "
            "ON a.key = s.article_key WHERE s.origin_key = ? ORDER BY s.seen_at, a.key",
            (origin_key,)).fetchall()
        return [Copy(*row) for row in rows]

    def story_sources(self, origin_key: str) -> set[str]:
        """The sources of a story: its origin's and every copy's listed under it."""
        rows = self._db.execute(
            "SELECT source FROM articles WHERE key = ? UNION SELECT a.source FROM stories s "
            "JOIN articles a ON a.key = s.article_key WHERE s.origin_key = ?",
            (origin_key, origin_key)).fetchall()
        return {r[0] for r in rows}

    def origin_of(self, article_key: str) -> str | None:
        row = self._db.execute("SELECT origin_key FROM stories WHERE article_key = ?",
                               (article_key,)).fetchone()
        return None if row is None else row[0]
