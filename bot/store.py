"""SQLite (WAL) state: feeds' HTTP state and health, seen articles, matches, the alert outbox.

An article, its matches and their pending alerts are written in one transaction, so a crash
either loses nothing (the article is processed again) or keeps everything (it is never
processed again). Delivery marks each alert sent as soon as Telegram accepted it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.models import Alert, Article, Evidence, HttpCacheState, Match

SCHEMA_VERSION = 1
ARTICLE_TEXT_CHARS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_poll_at TEXT,
    last_ok_at TEXT,
    last_error TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    paused_at TEXT,
    articles_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS articles (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    published TEXT,
    seen_at TEXT NOT NULL,
    passages INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT  -- kept (capped) so that a new seed can be backtested on past articles
);
CREATE INDEX IF NOT EXISTS articles_content ON articles (source, content_hash);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    narrative_id TEXT NOT NULL,
    narrative_title TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    passage_index INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    statement TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (article_key, narrative_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    chat_id TEXT NOT NULL,
    narratives TEXT NOT NULL,  -- JSON list of the narrative ids this chat is alerted to
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- sends whose outcome is unknown (crash or timeout after the request left): resent, so
    -- Telegram may show them twice; counted so that every duplicate is accounted for
    interrupted INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    message_id INTEGER,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (article_key, chat_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, not_before);
CREATE INDEX IF NOT EXISTS matches_created ON matches (created_at);
"""


def _now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A datetime as stored: UTC ISO-8601 to the second."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Notice:
    """A plain message for an admin (a feed paused or recovered), not an alert."""

    id: int
    chat_id: str
    text: str
    attempts: int


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


class Store:
    """One SQLite database in WAL mode; all methods are short transactions."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        with self._tx():
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))

    @classmethod
    def in_memory_copy(cls, path: Path) -> Store:
        """A private copy of the state at `path` (for dry runs): changes never reach the file."""
        store = cls(Path(":memory:"))
        if Path(path).exists():
            source = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
            try:
                source.backup(store._db)
            finally:
                source.close()
        return store

    def close(self) -> None:
        self._db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for modules that keep their own tables in this file (audience)."""
        return self._db

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- feeds ---------------------------------------------------------------------------

    def feed_health(self, name: str, url: str) -> FeedHealth:
        row = self._db.execute("SELECT * FROM feeds WHERE name = ?", (name,)).fetchone()
        if row is None or row["url"] != url:
            # A feed whose URL changed starts afresh: old validators belong to the old URL.
            with self._tx() as db:
                db.execute("INSERT INTO feeds (name, url) VALUES (?, ?) ON CONFLICT(name) DO "
                           "UPDATE SET url = excluded.url, etag = NULL, last_modified = NULL",
                           (name, url))
            row = self._db.execute("SELECT * FROM feeds WHERE name = ?", (name,)).fetchone()
        return _feed_from_row(row)

    def all_feed_health(self) -> list[FeedHealth]:
        rows = self._db.execute("SELECT * FROM feeds ORDER BY name").fetchall()
        return [_feed_from_row(r) for r in rows]

    def record_feed_ok(self, name: str, cache: HttpCacheState, new_articles: int = 0) -> bool:
        """Store a good poll; return True when the feed had been paused (it has recovered)."""
        now = iso(_now())
        with self._tx() as db:
            row = db.execute("SELECT paused_at FROM feeds WHERE name = ?", (name,)).fetchone()
            db.execute("UPDATE feeds SET etag = ?, last_modified = ?, last_poll_at = ?, "
                       "last_ok_at = ?, last_error = NULL, consecutive_errors = 0, "
                       "retry_at = NULL, paused_at = NULL, articles_seen = articles_seen + ? "
                       "WHERE name = ?",
                       (cache.etag, cache.last_modified, now, now, new_articles, name))
        return bool(row and row[0])

    def pause_feed(self, name: str, notice: str, admin_chats: Sequence[str]) -> bool:
        """Mark a long-failing feed paused and tell the admins, once; False if already paused."""
        now = iso(_now())
        with self._tx() as db:
            cur = db.execute("UPDATE feeds SET paused_at = ? WHERE name = ? AND paused_at IS NULL",
                             (now, name))
            if cur.rowcount == 0:
                return False
            self._queue_notice(db, admin_chats, notice, now)
        return True

    def add_notice(self, chat_ids: Sequence[str], text: str) -> None:
        with self._tx() as db:
            self._queue_notice(db, chat_ids, text, iso(_now()))

    @staticmethod
    def _queue_notice(db: sqlite3.Connection, chat_ids: Sequence[str], text: str,
                      now: str | None) -> None:
        db.executemany("INSERT INTO notices (chat_id, text, created_at) VALUES (?, ?, ?)",
                       [(chat, text, now) for chat in chat_ids])

    def pending_notices(self, limit: int = 100) -> list[Notice]:
        rows = self._db.execute("SELECT id, chat_id, text, attempts FROM notices "
                                "WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,))
        return [Notice(r["id"], r["chat_id"], r["text"], r["attempts"]) for r in rows]

    def mark_notice(self, notice_id: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE notices SET status = ?, attempts = attempts + 1, sent_at = ? "
                       "WHERE id = ?", (status, iso(_now()), notice_id))

    def record_feed_error(self, name: str, error: str, retry_at: datetime | None) -> int:
        """Store the error; return how many polls in a row have failed."""
        with self._tx() as db:
            db.execute("UPDATE feeds SET last_poll_at = ?, last_error = ?, "
                       "consecutive_errors = consecutive_errors + 1, retry_at = ? WHERE name = ?",
                       (iso(_now()), error, iso(retry_at), name))
            row = db.execute("SELECT consecutive_errors FROM feeds WHERE name = ?",
                             (name,)).fetchone()
        return int(row[0]) if row else 0

    # -- articles, matches, outbox -------------------------------------------------------

    def unseen(self, articles: Sequence[Article]) -> list[Article]:
        """Articles never processed: neither their key nor, from the same source, their text."""
        fresh: list[Article] = []
        batch: set[str] = set()
        for article in articles:
            row = self._db.execute(
                "SELECT 1 FROM articles WHERE key = ? OR (source = ? AND content_hash = ?)",
                (article.key, article.source, article.content_hash)).fetchone()
            if row is None and not {article.key, article.content_hash} & batch:
                batch |= {article.key, article.content_hash}
                fresh.append(article)
        return fresh

    def record_article(self, article: Article, passages: int, matches: Sequence[Match],
                       routes: Mapping[str, Sequence[str]] | Sequence[str]) -> list[int]:
        """Mark the article seen, store its matches and queue one alert per chat, atomically.

        `routes` maps each chat to the narratives (among `matches`) it is alerted to; a plain
        list of chat ids alerts each of them to every match.
        """
        now = iso(_now())
        outbox_ids: list[int] = []
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (article.key, article.source, article.url, article.title,
                              iso(article.published), now, passages, article.content_hash,
                              article.text[:ARTICLE_TEXT_CHARS]))
            if cur.rowcount == 0:
                return []  # another poll got there first
            for match in matches:
                db.execute(
                    "INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
                    "threshold, passage_index, evidence, statement, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.key, match.narrative_id, match.narrative_title, match.score,
                     match.threshold, match.passage.index, match.passage.text, match.statement,
                     now))
            matched = [m.narrative_id for m in matches]
            pairs = (routes.items() if isinstance(routes, Mapping)
                     else [(chat_id, matched) for chat_id in routes])
            for chat_id, narrative_ids in pairs:
                chosen = [n for n in narrative_ids if n in matched]
                if chosen:
                    outbox_ids.append(db.execute(
                        "INSERT INTO outbox (article_key, chat_id, narratives, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (article.key, chat_id, json.dumps(chosen), now)).lastrowid)
        return outbox_ids

    def pending_alerts(self, limit: int = 100, now: datetime | None = None) -> list[Alert]:
        rows = self._db.execute(
            "SELECT o.id, o.chat_id, o.attempts, o.narratives, a.key, a.source, a.title, a.url, "
            "a.published FROM outbox o JOIN articles a ON a.key = o.article_key "
            "WHERE o.status = 'pending' AND (o.not_before IS NULL OR o.not_before <= ?) "
            "ORDER BY o.id LIMIT ?", (iso(now or _now()), limit)).fetchall()
        return [self._alert_from_row(r) for r in rows]

    def _alert_from_row(self, r: sqlite3.Row) -> Alert:
        return Alert(id=r["id"], chat_id=r["chat_id"], source=r["source"],
                     article_title=r["title"], article_url=r["url"],
                     evidence=self._evidence(r["key"], json.loads(r["narratives"])),
                     published=parse_time(r["published"]), attempts=r["attempts"])

    def _evidence(self, article_key: str, narrative_ids: list[str]) -> tuple[Evidence, ...]:
        rows = self._db.execute(
            "SELECT narrative_id, narrative_title, score, evidence FROM matches "
            "WHERE article_key = ? ORDER BY score DESC", (article_key,)).fetchall()
        return tuple(Evidence(r["narrative_id"], r["narrative_title"], r["score"], r["evidence"])
                     for r in rows if r["narrative_id"] in narrative_ids)

    def mark_sending(self, alert_id: int) -> None:
        """Recorded before the request leaves, so a crash mid-send is known after restart."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'sending' WHERE id = ?", (alert_id,))

    def recover_interrupted(self) -> int:
        """Sends cut off by a crash: back to pending (resent), counted as interrupted."""
        with self._tx() as db:
            return db.execute("UPDATE outbox SET status = 'pending', "
                              "interrupted = interrupted + 1 WHERE status = 'sending'").rowcount

    def mark_sent(self, alert_id: int, message_id: int | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'sent', message_id = ?, sent_at = ?, "
                       "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                       (message_id, iso(_now()), alert_id))

    def mark_retry(self, alert_id: int, error: str, delay: timedelta,
                   *, outcome_unknown: bool = False) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'pending', attempts = attempts + 1, "
                       "last_error = ?, not_before = ?, interrupted = interrupted + ? "
                       "WHERE id = ?",
                       (error, iso(_now() + delay), int(outcome_unknown), alert_id))

    def mark_failed(self, alert_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ? WHERE id = ?", (error, alert_id))

    def move_chat(self, old_chat_id: str, new_chat_id: str) -> None:
        """Follow a group that Telegram migrated to a supergroup."""
        with self._tx() as db:
            db.execute("UPDATE OR IGNORE outbox SET chat_id = ? WHERE chat_id = ? "
                       "AND status = 'pending'", (new_chat_id, old_chat_id))
            # What could not move is already queued for the new chat.
            db.execute("UPDATE outbox SET status = 'failed', last_error = ? WHERE chat_id = ? "
                       "AND status = 'pending'",
                       (f"duplicate after migration to {new_chat_id}", old_chat_id))

    def alert(self, alert_id: int) -> tuple[Alert, str] | None:
        """One outbox entry (any status) and its article key: what a button press refers to."""
        row = self._db.execute(
            "SELECT o.id, o.chat_id, o.attempts, o.narratives, a.key, a.source, a.title, a.url, "
            "a.published FROM outbox o JOIN articles a ON a.key = o.article_key WHERE o.id = ?",
            (alert_id,)).fetchone()
        if row is None:
            return None
        return self._alert_from_row(row), row["key"]

    def match_counts(self, since: datetime) -> dict[str, int]:
        """narrative id → matches found since `since`."""
        rows = self._db.execute("SELECT narrative_id, COUNT(*) FROM matches WHERE created_at >= ? "
                                "GROUP BY narrative_id", (iso(since),))
        return {r[0]: r[1] for r in rows}

    def source_counts(self) -> dict[str, tuple[int, int]]:
        """source → (articles seen, articles matched)."""
        rows = self._db.execute(
            "SELECT a.source, COUNT(*), COUNT(DISTINCT m.article_key) FROM articles a "
            "LEFT JOIN matches m ON m.article_key = a.key GROUP BY a.source")
        return {r[0]: (r[1], r[2]) for r in rows}

    def articles_since(self, since: datetime) -> list[tuple[Article, str]]:
        """Stored articles (with their text, for backtests) seen since `since`."""
        rows = self._db.execute("SELECT * FROM articles WHERE seen_at >= ? ORDER BY seen_at",
                                (iso(since),)).fetchall()
        return [(Article(key=r["key"], source=r["source"], url=r["url"], title=r["title"],
                         text=r["text"] or "", published=parse_time(r["published"])),
                 r["seen_at"]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Totals for status displays: articles, matches and alerts by status."""
        one = self._db.execute
        result = {
            "articles": one("SELECT COUNT(*) FROM articles").fetchone()[0],
            "matches": one("SELECT COUNT(*) FROM matches").fetchone()[0],
        }
        result["alerts_interrupted"] = one(
            "SELECT COALESCE(SUM(interrupted), 0) FROM outbox").fetchone()[0]
        for status in ("pending", "sending", "sent", "failed"):
            result[f"alerts_{status}"] = one(
                "SELECT COUNT(*) FROM outbox WHERE status = ?", (status,)).fetchone()[0]
        return result

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = excluded.value", (key, value))


def _feed_from_row(row: sqlite3.Row) -> FeedHealth:
    return FeedHealth(
        name=row["name"], url=row["url"],
        cache=HttpCacheState(etag=row["etag"], last_modified=row["last_modified"]),
        last_poll_at=parse_time(row["last_poll_at"]), last_ok_at=parse_time(row["last_ok_at"]),
        last_error=row["last_error"], consecutive_errors=row["consecutive_errors"],
        retry_at=parse_time(row["retry_at"]), paused_at=parse_time(row["paused_at"]),
        articles_seen=row["articles_seen"])
