"""Stories: the passage vectors of matched articles, kept to recognise later re-publications
(bot/matching/syndicate.py decides what is a copy), and which article copies which.

Vectors are stored as float16 (half the bytes; alignment only needs cosines to about 1e-3).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Connection

from bot.storage.database import Database, run


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


def _vectors(blob: bytes | memoryview, dim: int) -> np.ndarray:
    # BYTEA may come back as a memoryview: bytes() for both backends
    return np.frombuffer(bytes(blob), dtype=np.float16).reshape(-1, dim).astype(np.float32)


def remember_story(db: Connection, article_key: str, story: Story,
                   origin_key: str | None) -> None:
    """Inside the caller's transaction (the one that records the article)."""
    run(db, "INSERT INTO stories (article_key, narratives, vectors, dim, seen_at, origin_key) "
        "VALUES (:article_key, :narratives, :vectors, :dim, :seen_at, :origin_key) "
        "ON CONFLICT (article_key) DO NOTHING",
        {"article_key": article_key, "narratives": json.dumps(list(story.narrative_ids)),
         "vectors": story.vectors.astype(np.float16).tobytes(), "dim": story.vectors.shape[1],
         "seen_at": _stamp(story.seen_at), "origin_key": origin_key})


class StoriesStore(Database):
    """Stored stories and their copies."""

    def story_origins(self, since: datetime,
                      narrative_ids: Collection[str]) -> list[OriginStory]:
        """Origins seen since `since` that carry one of the narratives, oldest first."""
        with self._read() as db:
            rows = run(db, "SELECT article_key, narratives, vectors, dim FROM stories "
                       "WHERE origin_key IS NULL AND seen_at >= :since "
                       "ORDER BY seen_at, article_key",
                       {"since": _stamp(since)}).mappings().fetchall()
        wanted = set(narrative_ids)
        return [OriginStory(r["article_key"], _vectors(r["vectors"], r["dim"]))
                for r in rows if wanted & set(json.loads(r["narratives"]))]

    def copies_of(self, origin_key: str) -> list[Copy]:
        with self._read() as db:
            rows = run(db, "SELECT a.key, a.source, a.title, a.url FROM stories s "
                       "JOIN articles a ON a.key = s.article_key WHERE s.origin_key = :origin "
                       "ORDER BY s.seen_at, a.key", {"origin": origin_key}).mappings().fetchall()
        return [Copy(r["key"], r["source"], r["title"], r["url"]) for r in rows]

    def story_sources(self, origin_key: str) -> set[str]:
        """The sources of a story: its origin's and every copy's listed under it."""
        with self._read() as db:
            rows = run(db, "SELECT source FROM articles WHERE key = :origin UNION "
                       "SELECT a.source FROM stories s JOIN articles a ON a.key = s.article_key "
                       "WHERE s.origin_key = :origin", {"origin": origin_key}).fetchall()
        return {r[0] for r in rows}

    def origin_of(self, article_key: str) -> str | None:
        with self._read() as db:
            row = run(db, "SELECT origin_key FROM stories WHERE article_key = :key",
                      {"key": article_key}).first()
        return None if row is None else row[0]
