"""Syndicated copies: the same story re-published by other outlets, in the same or another language.

A matching article is a *copy* of an earlier alerted article (its *origin*) when both carry a
common narrative, the origin was seen within the window, and their passages align one to one:
enough of the shorter article's passages have a mutual best partner in the other at
translation-level similarity. Different articles that push the same narrative share a passage
or two, not most of them. A copy is recorded like any article but alerts nobody on its own;
delivery lists it under its origin ("also in: …").

Vectors are the passages' raw embeddings (not centered: translation pairs are judged in the
model's own space), kept as float16 for matched articles only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from bot.embedding.embedder import normalise

STORY_PASSAGES = 12  # passages per article kept for alignment (title + lead + body start)
ALIGNED_SIMILARITY = 0.84  # raw cosine of a passage and its translation (NTREX: p10 ≈ 0.84)
ALIGNED_SHARE = 0.6  # of the shorter article's passages
MAX_LENGTH_RATIO = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    article_key TEXT PRIMARY KEY,
    narratives TEXT NOT NULL,   -- JSON list of matched narrative ids
    vectors BLOB NOT NULL,      -- float16, STORY_PASSAGES × dim at most
    dim INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    origin_key TEXT             -- NULL for an origin; else the story it copies
);
CREATE INDEX IF NOT EXISTS stories_seen ON stories (seen_at);
"""


@dataclass(frozen=True)
class Copy:
    """A later copy of an alerted story, listed under it."""

    article_key: str
    source: str
    title: str
    url: str


def story_vectors(passage_vectors: np.ndarray) -> np.ndarray:
    """The rows kept for alignment: the first passages, L2-normalised."""
    return normalise(passage_vectors[:STORY_PASSAGES])


def is_copy(new: np.ndarray, origin: np.ndarray) -> bool:
    """Most passages of the shorter article have a mutual best partner at translation level."""
    if not len(new) or not len(origin):
        return False
    shorter, longer = sorted((len(new), len(origin)))
    if longer > MAX_LENGTH_RATIO * shorter + 1:
        return False
    sims = new @ origin.T
    best_in_origin = sims.argmax(axis=1)
    mutual = sims.argmax(axis=0)[best_in_origin] == np.arange(len(new))
    aligned = mutual & (sims.max(axis=1) >= ALIGNED_SIMILARITY)
    return int(aligned.sum()) >= max(1, int(np.ceil(ALIGNED_SHARE * shorter)))


class Stories:
    """Alerted stories and their copies, in their own table of the state database."""

    def __init__(self, db: sqlite3.Connection, window: timedelta) -> None:
        self._db = db
        self.window = window
        db.executescript(_SCHEMA)

    def find_origin(self, narrative_ids: Sequence[str], vectors: np.ndarray,
                    now: datetime) -> str | None:
        """The earliest origin in the window that shares a narrative and aligns with `vectors`."""
        since = (now - self.window).isoformat(timespec="seconds")
        rows = self._db.execute(
            "SELECT article_key, narratives, vectors, dim FROM stories WHERE origin_key IS NULL "
            "AND seen_at >= ? ORDER BY seen_at, article_key", (since,)).fetchall()
        wanted = set(narrative_ids)
        for key, narratives, blob, dim in rows:
            if wanted & set(json.loads(narratives)) and dim == vectors.shape[1]:
                origin = np.frombuffer(blob, dtype=np.float16).reshape(-1, dim)
                if is_copy(vectors, origin.astype(np.float32)):
                    return key
        return None

    @staticmethod
    def remember(db: sqlite3.Connection, article_key: str, narrative_ids: Sequence[str],
                 vectors: np.ndarray, seen_at: datetime, origin_key: str | None) -> None:
        """Inside the caller's transaction (the one that records the article)."""
        db.execute("INSERT OR IGNORE INTO stories VALUES (?, ?, ?, ?, ?, ?)",
                   (article_key, json.dumps(list(narrative_ids)),
                    vectors.astype(np.float16).tobytes(), vectors.shape[1],
                    seen_at.isoformat(timespec="seconds"), origin_key))

    def copies_of(self, origin_key: str) -> list[Copy]:
        rows = self._db.execute(
            "SELECT a.key, a.source, a.title, a.url FROM stories s JOIN articles a "
            "ON a.key = s.article_key WHERE s.origin_key = ? ORDER BY s.seen_at, a.key",
            (origin_key,)).fetchall()
        return [Copy(*row) for row in rows]

    def origin_of(self, article_key: str) -> str | None:
        row = self._db.execute("SELECT origin_key FROM stories WHERE article_key = ?",
                               (article_key,)).fetchone()
        return None if row is None else row[0]
