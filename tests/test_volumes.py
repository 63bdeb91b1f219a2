"""Hourly match volumes kept in state, and the migration of a first-release (v1) database."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from bot.feeds.language import guess_language
from bot.models import Article, Match, Passage
from bot.storage.store import SCHEMA_VERSION, Store, Volume, volume_hour
from tests.frozen_schemas import V1_SCHEMA

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)

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

    store = Store(path, guess_language=guess_language)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
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
    assert copy.get_meta("schema_version") == str(SCHEMA_VERSION)
    copy.record_article(article("n1", published=NOW), 1, [match("kz")], [])
    assert len(copy.volumes(NOW - timedelta(days=1))) == 1
    copy.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("1",)  # the file is untouched
    db.close()
