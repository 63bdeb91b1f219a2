"""Hourly match volumes kept in state, and the migration of a first-release (v1) database."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from bot.models import Article, Match, Passage
from bot.storage.store import SCHEMA_VERSION, Store, Volume, volume_hour

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)

# The schema of the first release (bot/store.py at schema version 1), verbatim.
V1_SCHEMA = '''
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
'''


def article(key: str, source: str = "Sohu", published: datetime | None = None,
            language: str | None = "zh", text: str = "Body.") -> Article:
    return Article(key=key, source=source, url=f"https://example.org/{key}", title=f"T {key}",
                   text=text, published=published, language=language)


def match(narrative: str, score: float = 0.8) -> Match:
    return Match(narrative_id=narrative, narrative_title=f"Title {narrative}", score=score,
                 threshold=0.6, passage=Passage(0, "evidence"), statement="claim")


def test_volumes_are_counted_per_narrative_hour_source_and_language(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    with time_machine.travel(NOW, tick=False):
        at = NOW - timedelta(hours=3, minutes=10)  # 09:20 → the 09:00 hour
        store.record_article(article("a1", published=at), 1, [match("kz"), match("kg")], [])
        store.record_article(article("a2", published=at + timedelta(minutes=30)), 1,
                             [match("kz")], [])
        store.record_article(article("a3", "Sputnik", published=at, language="ru"), 1,
                             [match("kz")], [])
        # no date: counted when seen; a date in the future: counted when seen
        store.record_article(article("a4", "Sputnik", language=None), 1, [match("kz")], [])
        store.record_article(article("a5", "Sputnik", published=NOW + timedelta(days=2),
                                     language="ru"), 1, [match("kz")], [])
        store.record_article(article("a6", published=at), 1, [], [])  # no match: not counted
        store.record_article(article("a1", published=at), 1, [match("kz")], [])  # seen: no-op
    hour = datetime(2026, 11, 23, 9, tzinfo=UTC)
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert store.volumes(NOW - timedelta(days=1)) == [
        Volume("kg", hour, "Sohu", "zh", 1),
        Volume("kz", hour, "Sohu", "zh", 2),
        Volume("kz", hour, "Sputnik", "ru", 1),
        Volume("kz", noon, "Sputnik", "ru", 1),
        Volume("kz", noon, "Sputnik", "und", 1),
    ]
    assert store.volumes(NOW - timedelta(days=1), noon, narrative_ids=["kz"]) == [
        Volume("kz", hour, "Sohu", "zh", 2), Volume("kz", hour, "Sputnik", "ru", 1)]
    assert store.volumes(NOW, narrative_ids=[]) == []
    assert store.narrative_titles() == {"kz": "Title kz", "kg": "Title kg"}
    [row] = store.db.execute("SELECT language FROM articles WHERE key = 'a3'").fetchall()
    assert row[0] == "ru"
    store.close()


def test_volumes_survive_pruned_articles(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.record_article(article("a1", published=NOW - timedelta(days=400)), 1, [match("kz")], [])
    with store.transaction() as db:  # an operator's clean-up of old rows
        db.execute("DELETE FROM matches")
        db.execute("DELETE FROM articles")
    [volume] = store.volumes(NOW - timedelta(days=500))
    assert volume.matches == 1 and volume.hour == volume_hour(NOW - timedelta(days=400), None)
    store.close()


def test_migration_from_schema_1_keeps_everything_and_builds_volumes(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    rows = [("k1", "Sohu", "2026-11-20T08:15:00+00:00", "哈萨克斯坦为何急于回归中国", "中文正文。"),
            ("k2", "Azattyq", None, "Қазақстан Қытайға қайтып оралғысы келеді", "Мәтін."),
            ("k3", "Sputnik", "2026-11-21T10:00:00+00:00", "Казахстан хочет в Китай", "Текст.")]
    for key, source, published, title, text in rows:
        db.execute("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                   (key, source, f"https://e.org/{key}", title, published,
                    "2026-11-22T09:00:00+00:00", f"hash-{key}", text))
        db.execute("INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
                   "threshold, passage_index, evidence, statement, created_at) VALUES "
                   "(?, 'kz', 'KZ', 0.8, 0.6, 0, 'ev', 'st', '2026-11-22T09:00:00+00:00')",
                   (key,))
    db.execute("INSERT INTO outbox (article_key, chat_id, narratives, created_at) VALUES "
               "('k1', '@chan', '[\"kz\"]', '2026-11-22T09:00:00+00:00')")
    db.commit()
    db.close()

    store = Store(path)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "2"
    languages = dict(store.db.execute("SELECT key, language FROM articles").fetchall())
    assert languages == {"k1": "zh", "k2": "kk", "k3": "ru"}
    assert store.volumes(datetime(2026, 11, 1, tzinfo=UTC)) == [
        Volume("kz", datetime(2026, 11, 20, 8, tzinfo=UTC), "Sohu", "zh", 1),
        Volume("kz", datetime(2026, 11, 21, 10, tzinfo=UTC), "Sputnik", "ru", 1),
        Volume("kz", datetime(2026, 11, 22, 9, tzinfo=UTC), "Azattyq", "kk", 1),
    ]
    [alert] = store.pending_alerts()  # the old outbox still delivers
    assert alert.chat_id == "@chan" and alert.evidence[0].narrative_id == "kz"
    store.record_article(article("k4", published=datetime(2026, 11, 20, 8, 40, tzinfo=UTC)), 1,
                         [match("kz")], [])
    store.close()

    again = Store(path)  # reopening does not migrate (or count) twice
    assert again.volumes(datetime(2026, 11, 20, 8, tzinfo=UTC),
                         datetime(2026, 11, 20, 9, tzinfo=UTC))[0].matches == 2
    again.close()


def test_a_dry_run_copy_of_a_v1_file_is_migrated_in_memory_only(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.commit()
    db.close()
    copy = Store.in_memory_copy(path)
    assert copy.get_meta("schema_version") == "2"
    copy.record_article(article("n1", published=NOW), 1, [match("kz")], [])
    assert len(copy.volumes(NOW - timedelta(days=1))) == 1
    copy.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("1",)  # the file is untouched
    db.close()
