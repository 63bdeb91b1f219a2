"""SQLite (WAL) state: feeds' HTTP state and health, seen articles, matches, the alert outbox,
hourly match volumes, spike state and the outbox of narrative-level posts (spikes, digests).

An article, its matches, their hourly volumes and their pending alerts are written in one
transaction, so a crash either loses nothing (the article is processed again) or keeps
everything (it is never processed again). Delivery marks each alert sent as soon as Telegram
accepted it.

Schema versions: 1 is the first release; 2 adds `articles.language`, `volumes`, `spikes`,
`charts` and `posts`. Opening a version-1 file migrates it in one transaction (the language of
old articles is guessed from their stored text and the volumes are rebuilt from their matches).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.feeds.language import UNDETERMINED, guess_language
from bot.models import Alert, Article, Evidence, HttpCacheState, Match

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
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
    articles_seen INTEGER NOT NULL DEFAULT 0,
    body_hash TEXT  -- of the last body fully processed: the same bytes again are skipped
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
    text TEXT,  -- kept (capped) so that a new seed can be backtested on past articles
    language TEXT  -- schema 2: ISO 639 code (declared, configured or guessed)
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
    origin_key TEXT,  -- a syndicated copy: sent as "also in" under that article's alert
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (article_key, chat_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, not_before);
CREATE INDEX IF NOT EXISTS matches_created ON matches (created_at);
"""

# Schema 2. Volumes are counted when matches are recorded (same transaction) and never pruned
# with articles: one row per narrative, UTC hour, source and language.
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS volumes (
    narrative_id TEXT NOT NULL,
    hour TEXT NOT NULL,  -- start of the UTC hour the article was published in (see volume_hour)
    source TEXT NOT NULL,
    language TEXT NOT NULL,
    matches INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (narrative_id, hour, source, language)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS volumes_hour ON volumes (hour);
CREATE TABLE IF NOT EXISTS spikes (
    narrative_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 0,  -- alerted and not calmed down yet: never alerted again
    started_at TEXT,
    calmed_at TEXT,
    checked_at TEXT,
    z REAL,
    window_count INTEGER,
    details TEXT  -- JSON of the spike that was alerted
);
CREATE TABLE IF NOT EXISTS charts (
    id INTEGER PRIMARY KEY,
    png BLOB NOT NULL,
    file_id TEXT,  -- Telegram's id once uploaded: later sends reuse it
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,  -- 'spike' or 'digest'
    key TEXT NOT NULL,   -- what it is about: one spike, one digest period
    chat_id TEXT NOT NULL,
    html TEXT NOT NULL,  -- the message, or the photo's caption
    plain TEXT NOT NULL,
    chart_id INTEGER REFERENCES charts(id),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    message_id INTEGER,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (key, chat_id)  -- a spike or a digest period reaches a chat once
);
CREATE INDEX IF NOT EXISTS posts_pending ON posts (status, not_before);
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
class Volume:
    """Matches of one narrative in one UTC hour, from one source, in one language."""

    narrative_id: str
    hour: datetime
    source: str
    language: str
    matches: int


@dataclass(frozen=True)
class MatchRecord:
    """One stored match with its article and evidence (for exports, digests and audits)."""

    narrative_id: str
    narrative_title: str
    score: float
    threshold: float
    source: str
    language: str | None
    url: str
    title: str
    published: datetime | None
    matched_at: datetime
    counted_at: datetime  # the moment its volume was counted in (see volume_hour)
    evidence: str
    statement: str
    article_key: str


@dataclass(frozen=True)
class SpikeState:
    """Where a narrative stands: in a spike (alerted, not calmed down yet) or not."""

    narrative_id: str
    active: bool
    started_at: datetime | None
    calmed_at: datetime | None
    z: float | None
    window_count: int | None


@dataclass(frozen=True)
class Post:
    """A pending narrative-level message (spike alert, digest): text, or a chart with caption."""

    id: int
    kind: str
    key: str
    chat_id: str
    html: str
    plain: str
    chart_id: int | None
    attempts: int


@dataclass(frozen=True)
class PostDraft:
    """A narrative-level message to queue for some chats: text, or a chart and its caption."""

    kind: str
    key: str
    chat_ids: tuple[str, ...]
    html: str
    plain: str
    chart: bytes | None = None


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
        # idempotent; executescript manages its own transaction
        self._db.executescript(_SCHEMA + _SCHEMA_2)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a file from an earlier release up to SCHEMA_VERSION, in one transaction."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else SCHEMA_VERSION  # a new file starts current
            if version > SCHEMA_VERSION:
                log.warning("state %s has schema version %d, newer than this release (%d)",
                            self.path, version, SCHEMA_VERSION)
                return
            if version < 2:
                log.info("migrating state %s from schema version %d to 2", self.path, version)
                columns = {r[1] for r in db.execute("PRAGMA table_info(articles)")}
                if "language" not in columns:
                    db.execute("ALTER TABLE articles ADD COLUMN language TEXT")
                rows = db.execute("SELECT key, title, text FROM articles "
                                  "WHERE language IS NULL").fetchall()
                db.executemany("UPDATE articles SET language = ? WHERE key = ?",
                               [(guess_language(f"{r['title']}\n{r['text'] or ''}"), r["key"])
                                for r in rows])
                _rebuild_volumes(db)
                if "origin_key" not in {r[1] for r in db.execute("PRAGMA table_info(outbox)")}:
                    db.execute("ALTER TABLE outbox ADD COLUMN origin_key TEXT")
                if "body_hash" not in {r[1] for r in db.execute("PRAGMA table_info(feeds)")}:
                    db.execute("ALTER TABLE feeds ADD COLUMN body_hash TEXT")
            db.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) "
                       "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

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
            # the copy is of the file as it is: bring an older schema up to date, in memory
            store._db.executescript(_SCHEMA + _SCHEMA_2)
            store._migrate()
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
        now = iso(_now())
        with self._tx() as db:
            row = db.execute("SELECT paused_at FROM feeds WHERE name = ?", (name,)).fetchone()
            db.execute("UPDATE feeds SET etag = ?, last_modified = ?, last_poll_at = ?, "
                       "last_ok_at = ?, last_error = NULL, consecutive_errors = 0, "
                       "retry_at = NULL, paused_at = NULL, articles_seen = articles_seen + ?, "
                       "body_hash = COALESCE(?, body_hash) WHERE name = ?",
                       (cache.etag, cache.last_modified, now, now, new_articles, body_hash,
                        name))
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
                       routes: Mapping[str, Sequence[str]] | Sequence[str], *,
                       origin_key: str | None = None,
                       also: Callable[[sqlite3.Connection], None] | None = None) -> list[int]:
        """Mark the article seen, store its matches and queue one alert per chat, atomically.

        `routes` maps each chat to the narratives (among `matches`) it is alerted to; a plain
        list of chat ids alerts each of them to every match. With `origin_key` the article is a
        syndicated copy of that one and its alerts are "also in" notes under it. `also` runs
        inside the same transaction (another module's rows about this article).
        """
        seen = _now()
        now = iso(seen)
        outbox_ids: list[int] = []
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO articles (key, source, url, title, published, seen_at, "
                "passages, content_hash, text, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (article.key, article.source, article.url, article.title,
                 iso(article.published), now, passages, article.content_hash,
                 article.text[:ARTICLE_TEXT_CHARS], article.language))
            if cur.rowcount == 0:
                return []  # another poll got there first
            hour = iso(volume_hour(article.published, seen))
            for narrative_id in dict.fromkeys(m.narrative_id for m in matches):
                _count_volume(db, narrative_id, hour, article.source,
                              article.language or UNDETERMINED)
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
                        "INSERT INTO outbox (article_key, chat_id, narratives, origin_key, "
                        "created_at) VALUES (?, ?, ?, ?, ?)",
                        (article.key, chat_id, json.dumps(chosen), origin_key, now)).lastrowid)
            if also is not None:
                also(db)
        return outbox_ids

    def origin_delivery(self, origin_key: str, chat_id: str) -> tuple[str, int | None] | None:
        """(status, message id) of the alert about `origin_key` in that chat, if there is one."""
        row = self._db.execute("SELECT status, message_id FROM outbox WHERE article_key = ? "
                               "AND chat_id = ?", (origin_key, chat_id)).fetchone()
        return None if row is None else (row["status"], row["message_id"])

    def pending_alerts(self, limit: int = 100, now: datetime | None = None) -> list[Alert]:
        rows = self._db.execute(
            "SELECT o.id, o.chat_id, o.attempts, o.narratives, o.origin_key, a.key, a.source, "
            "a.title, a.url, a.published FROM outbox o JOIN articles a ON a.key = o.article_key "
            "WHERE o.status = 'pending' AND (o.not_before IS NULL OR o.not_before <= ?) "
            "ORDER BY o.id LIMIT ?", (iso(now or _now()), limit)).fetchall()
        return [self._alert_from_row(r) for r in rows]

    def _alert_from_row(self, r: sqlite3.Row) -> Alert:
        return Alert(id=r["id"], chat_id=r["chat_id"], source=r["source"],
                     article_title=r["title"], article_url=r["url"],
                     evidence=self._evidence(r["key"], json.loads(r["narratives"])),
                     published=parse_time(r["published"]), attempts=r["attempts"],
                     origin_key=r["origin_key"])

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
            posts = db.execute("UPDATE posts SET status = 'pending', "
                               "interrupted = interrupted + 1 WHERE status = 'sending'").rowcount
            return posts + db.execute("UPDATE outbox SET status = 'pending', "
                                      "interrupted = interrupted + 1 "
                                      "WHERE status = 'sending'").rowcount

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

    def defer(self, alert_id: int, delay: timedelta) -> None:
        """Not now and not a failed attempt: try again after `delay`."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET not_before = ? WHERE id = ? AND status = 'pending'",
                       (iso(_now() + delay), alert_id))

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
            db.execute("UPDATE OR IGNORE posts SET chat_id = ? WHERE chat_id = ? "
                       "AND status = 'pending'", (new_chat_id, old_chat_id))
            db.execute("UPDATE posts SET status = 'failed', last_error = ? WHERE chat_id = ? "
                       "AND status = 'pending'",
                       (f"duplicate after migration to {new_chat_id}", old_chat_id))

    def alert(self, alert_id: int) -> tuple[Alert, str] | None:
        """One outbox entry (any status) and its article key: what a button press refers to."""
        row = self._db.execute(
            "SELECT o.id, o.chat_id, o.attempts, o.narratives, o.origin_key, a.key, a.source, "
            "a.title, a.url, a.published FROM outbox o JOIN articles a ON a.key = o.article_key "
            "WHERE o.id = ?",
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
                         text=r["text"] or "", published=parse_time(r["published"]),
                         language=r["language"]),
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

    # -- volumes and trends --------------------------------------------------------------

    def volumes(self, since: datetime, until: datetime | None = None,
                narrative_ids: Collection[str] | None = None) -> list[Volume]:
        """Hourly volume rows with since <= hour < until (UTC hour starts), oldest first."""
        sql = "SELECT * FROM volumes WHERE hour >= ?"
        args: list[object] = [iso(volume_hour(since, since))]
        if until is not None:
            sql += " AND hour < ?"
            args.append(iso(until))
        if narrative_ids is not None:
            ids = list(narrative_ids)
            sql += f" AND narrative_id IN ({', '.join('?' * len(ids))})" if ids else " AND 0"
            args += ids
        rows = self._db.execute(sql + " ORDER BY hour, narrative_id, source, language", args)
        return [Volume(r["narrative_id"], datetime.fromisoformat(r["hour"]), r["source"],
                       r["language"], r["matches"]) for r in rows]

    def narrative_titles(self) -> dict[str, str]:
        """narrative id → the title it last matched under (narratives no longer loaded too)."""
        # SQLite takes the bare column from the row that has the MAX
        rows = self._db.execute("SELECT narrative_id, narrative_title, MAX(id) FROM matches "
                                "GROUP BY narrative_id")
        return {r[0]: r[1] for r in rows}

    def match_records(self, since: datetime, until: datetime | None = None, *,
                      narrative_ids: Collection[str] | None = None,
                      by: str = "matched") -> list[MatchRecord]:
        """Stored matches with their articles, oldest first. `by`: "matched" filters on when
        the match was recorded, "counted" on the moment its volume counts in."""
        column = {"matched": "m.created_at", "counted": _COUNTED_AT}[by]
        sql = (f"SELECT m.*, a.source, a.language, a.url, a.title, a.published, "
               f"{_COUNTED_AT} AS counted_at FROM matches m JOIN articles a "
               f"ON a.key = m.article_key WHERE {column} >= ?")
        args: list[object] = [iso(since)]
        if until is not None:
            sql += f" AND {column} < ?"
            args.append(iso(until))
        if narrative_ids is not None:
            ids = list(narrative_ids)
            sql += f" AND m.narrative_id IN ({', '.join('?' * len(ids))})" if ids else " AND 0"
            args += ids
        rows = self._db.execute(sql + f" ORDER BY {column}, m.id", args)
        return [MatchRecord(
            narrative_id=r["narrative_id"], narrative_title=r["narrative_title"],
            score=r["score"], threshold=r["threshold"], source=r["source"],
            language=r["language"], url=r["url"], title=r["title"],
            published=parse_time(r["published"]),
            matched_at=datetime.fromisoformat(r["created_at"]),
            counted_at=volume_hour(parse_time(r["counted_at"]), None, floor=False),
            evidence=r["evidence"], statement=r["statement"], article_key=r["article_key"])
            for r in rows]

    def spike_states(self) -> dict[str, SpikeState]:
        rows = self._db.execute("SELECT * FROM spikes").fetchall()
        return {r["narrative_id"]: SpikeState(
            r["narrative_id"], bool(r["active"]), parse_time(r["started_at"]),
            parse_time(r["calmed_at"]), r["z"], r["window_count"]) for r in rows}

    def open_spike(self, narrative_id: str, z: float, window_count: int, details: str,
                   drafts: Sequence[PostDraft]) -> list[int]:
        """Flag the narrative as spiking and queue its alert, atomically.

        Returns the queued post ids; [] when the narrative was already flagged (a restart, or a
        second checker, never alerts the same spike twice).
        """
        now = iso(_now())
        with self._tx() as db:
            row = db.execute("SELECT active FROM spikes WHERE narrative_id = ?",
                             (narrative_id,)).fetchone()
            if row is not None and row[0]:
                return []
            db.execute("INSERT INTO spikes (narrative_id, active, started_at, calmed_at, "
                       "checked_at, z, window_count, details) VALUES (?, 1, ?, NULL, ?, ?, ?, ?) "
                       "ON CONFLICT(narrative_id) DO UPDATE SET active = 1, "
                       "started_at = excluded.started_at, calmed_at = NULL, "
                       "checked_at = excluded.checked_at, z = excluded.z, "
                       "window_count = excluded.window_count, details = excluded.details",
                       (narrative_id, now, now, z, window_count, details))
            return [i for d in drafts for i in self._queue_posts(db, d, now)]

    def note_spike_check(self, narrative_id: str, z: float, window_count: int, *,
                         calm: bool) -> bool:
        """Record the latest z of a spiking narrative; `calm` ends the spike. True if it ended."""
        now = iso(_now())
        with self._tx() as db:
            if calm:
                return db.execute("UPDATE spikes SET active = 0, calmed_at = ?, checked_at = ?, "
                                  "z = ?, window_count = ? WHERE narrative_id = ? AND active = 1",
                                  (now, now, z, window_count, narrative_id)).rowcount > 0
            db.execute("UPDATE spikes SET checked_at = ?, z = ?, window_count = ? "
                       "WHERE narrative_id = ?", (now, z, window_count, narrative_id))
            return False

    # -- posts: spike alerts and digests -------------------------------------------------

    def queue_posts(self, drafts: Sequence[PostDraft]) -> list[int]:
        """Queue one message per draft and chat, atomically; a (key, chat) queued before is
        left alone, so a spike or a digest period never reaches a chat twice."""
        with self._tx() as db:
            now = iso(_now())
            return [i for d in drafts for i in self._queue_posts(db, d, now)]

    @staticmethod
    def _queue_posts(db: sqlite3.Connection, draft: PostDraft, now: str | None) -> list[int]:
        new_chats = [c for c in dict.fromkeys(draft.chat_ids) if db.execute(
            "SELECT 1 FROM posts WHERE key = ? AND chat_id = ?", (draft.key, c)).fetchone() is None]
        if not new_chats:
            return []
        chart_id = None
        if draft.chart is not None:  # stored once, however many chats get it
            chart_id = db.execute("INSERT INTO charts (png, created_at) VALUES (?, ?)",
                                  (draft.chart, now)).lastrowid
        return [db.execute("INSERT INTO posts (kind, key, chat_id, html, plain, chart_id, "
                           "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (draft.kind, draft.key, chat, draft.html, draft.plain, chart_id,
                            now)).lastrowid
                for chat in new_chats]

    def has_posts(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM posts WHERE key = ? LIMIT 1",
                                (key,)).fetchone() is not None

    def posts(self, key_prefix: str = "") -> list[tuple[Post, str]]:
        """Every post whose key starts with `key_prefix`, with its status (for tests, status)."""
        rows = self._db.execute("SELECT * FROM posts WHERE substr(key, 1, ?) = ? ORDER BY id",
                                (len(key_prefix), key_prefix)).fetchall()
        return [(_post_from_row(r), r["status"]) for r in rows]

    def pending_posts(self, limit: int = 100, now: datetime | None = None) -> list[Post]:
        rows = self._db.execute(
            "SELECT * FROM posts WHERE status = 'pending' AND (not_before IS NULL OR "
            "not_before <= ?) ORDER BY id LIMIT ?", (iso(now or _now()), limit)).fetchall()
        return [_post_from_row(r) for r in rows]

    def chart(self, chart_id: int) -> tuple[bytes, str | None]:
        """A queued chart: its PNG and, once Telegram has it, its file_id."""
        row = self._db.execute("SELECT png, file_id FROM charts WHERE id = ?",
                               (chart_id,)).fetchone()
        return bytes(row[0]), row[1]

    def mark_post_sending(self, post_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE posts SET status = 'sending' WHERE id = ?", (post_id,))

    def mark_post_sent(self, post_id: int, message_id: int | None,
                       file_id: str | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE posts SET status = 'sent', message_id = ?, sent_at = ?, "
                       "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                       (message_id, iso(_now()), post_id))
            if file_id:
                db.execute("UPDATE charts SET file_id = ? WHERE id = (SELECT chart_id FROM "
                           "posts WHERE id = ?) AND file_id IS NULL", (file_id, post_id))

    def mark_post_retry(self, post_id: int, error: str, delay: timedelta,
                        *, outcome_unknown: bool = False) -> None:
        with self._tx() as db:
            db.execute("UPDATE posts SET status = 'pending', attempts = attempts + 1, "
                       "last_error = ?, not_before = ?, interrupted = interrupted + ? "
                       "WHERE id = ?",
                       (error, iso(_now() + delay), int(outcome_unknown), post_id))

    def mark_post_failed(self, post_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE posts SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ? WHERE id = ?", (error, post_id))

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = excluded.value", (key, value))


# When a match counts: its article's publication time, but never later than when the article
# was seen (feeds with clocks or time zones in the future) and the seen time when undated.
_COUNTED_AT = "COALESCE(MIN(a.published, a.seen_at), a.seen_at)"


def volume_hour(published: datetime | None, seen: datetime | None, *,
                floor: bool = True) -> datetime:
    """The UTC hour a match is counted in: publication time, capped at when it was seen.

    Counting by publication rather than by discovery keeps a new feed's back catalogue (or a
    backlog after downtime) in the days it was published instead of one false spike now.
    """
    moment = published if published is not None else seen
    if moment is None:
        raise ValueError("either published or seen is needed")
    if seen is not None and moment > seen:
        moment = seen
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0) if floor else moment


def _count_volume(db: sqlite3.Connection, narrative_id: str, hour: str | None, source: str,
                  language: str, matches: int = 1) -> None:
    db.execute("INSERT INTO volumes VALUES (?, ?, ?, ?, ?) ON CONFLICT(narrative_id, hour, "
               "source, language) DO UPDATE SET matches = matches + excluded.matches",
               (narrative_id, hour, source, language, matches))


def _rebuild_volumes(db: sqlite3.Connection) -> None:
    """Volumes from the stored matches (the migration from schema 1)."""
    db.execute("DELETE FROM volumes")
    counts: dict[tuple[str, str | None, str, str], int] = {}
    rows = db.execute(f"SELECT DISTINCT m.narrative_id, m.article_key, a.source, a.language, "
                      f"{_COUNTED_AT} AS counted_at FROM matches m JOIN articles a "
                      f"ON a.key = m.article_key")
    for r in rows:
        hour = iso(volume_hour(parse_time(r["counted_at"]), None))
        key = (r["narrative_id"], hour, r["source"], r["language"] or UNDETERMINED)
        counts[key] = counts.get(key, 0) + 1
    for (narrative_id, hour, source, language), n in counts.items():
        _count_volume(db, narrative_id, hour, source, language, n)


def _post_from_row(r: sqlite3.Row) -> Post:
    return Post(id=r["id"], kind=r["kind"], key=r["key"], chat_id=r["chat_id"], html=r["html"],
                plain=r["plain"], chart_id=r["chart_id"], attempts=r["attempts"])


def _feed_from_row(row: sqlite3.Row) -> FeedHealth:
    return FeedHealth(
        name=row["name"], url=row["url"],
        cache=HttpCacheState(etag=row["etag"], last_modified=row["last_modified"]),
        last_poll_at=parse_time(row["last_poll_at"]), last_ok_at=parse_time(row["last_ok_at"]),
        last_error=row["last_error"], consecutive_errors=row["consecutive_errors"],
        retry_at=parse_time(row["retry_at"]), paused_at=parse_time(row["paused_at"]),
        articles_seen=row["articles_seen"], body_hash=row["body_hash"])
