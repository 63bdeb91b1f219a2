"""Hourly match volumes kept in state, and the migration of a first-release (v1) database, on
both backends (`state_location`); the dry-run copy is SQLite's alone."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine

from bot.feeds.language import guess_language
from bot.models import Article, Match, Passage
from bot.storage.database import Database, Location, run
from bot.storage.migrations import MIGRATIONS
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


def write_v1(location: Location) -> None:
    """A state as the first release left it: SQLite's frozen schema verbatim, PostgreSQL's
    by the first migration (there was no PostgreSQL release then)."""
    if isinstance(location, Path):
        location.parent.mkdir(parents=True, exist_ok=True)
        file = sqlite3.connect(location)
        file.executescript(V1_SCHEMA)
        file.close()
    state = Database(location)
    try:
        with state.transaction() as db:
            if state.dialect == "postgresql":
                MIGRATIONS[1](db, None)
            run(db, "INSERT INTO meta VALUES ('schema_version', '1')")
    finally:
        state.close()


def test_volumes_are_counted_per_narrative_hour_source_and_language(
        state_location: Location) -> None:
    store = Store(state_location)
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
    with store.transaction() as db:
        assert run(db, "SELECT language FROM articles WHERE key = 'a3'").scalar_one() == "ru"
    store.close()


def test_volumes_survive_pruned_articles(state_location: Location) -> None:
    store = Store(state_location)
    store.record_article(article("a1", published=NOW - timedelta(days=400)), 1, [match("kz")], [])
    with store.transaction() as db:  # an operator's clean-up of old rows
        run(db, "DELETE FROM matches")
        run(db, "DELETE FROM articles")
    [volume] = store.volumes(NOW - timedelta(days=500))
    assert volume.matches == 1 and volume.hour == volume_hour(NOW - timedelta(days=400), None)
    store.close()


def write_v1_rows(location: Location) -> None:
    state = Database(location)
    rows = [("k1", "Sohu", "2026-11-20T08:15:00+00:00", "哈萨克斯坦为何急于回归中国", "中文正文。"),
            ("k2", "Azattyq", None, "Қазақстан Қытайға қайтып оралғысы келеді", "Мәтін."),
            ("k3", "Sputnik", "2026-11-21T10:00:00+00:00", "Казахстан хочет в Китай", "Текст.")]
    try:
        with state.transaction() as db:
            for key, source, published, title, text in rows:
                run(db, "INSERT INTO articles VALUES (:key, :source, :url, :title, :published, "
                    "'2026-11-22T09:00:00+00:00', 1, :hash, :text)",
                    {"key": key, "source": source, "url": f"https://e.org/{key}",
                     "title": title, "published": published, "hash": f"hash-{key}",
                     "text": text})
                run(db, "INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
                    "threshold, passage_index, evidence, statement, created_at) VALUES "
                    "(:key, 'kz', 'KZ', 0.8, 0.6, 0, 'ev', 'st', '2026-11-22T09:00:00+00:00')",
                    {"key": key})
            run(db, "INSERT INTO outbox (article_key, chat_id, narratives, created_at) VALUES "
                "('k1', '@chan', '[\"kz\"]', '2026-11-22T09:00:00+00:00')")
    finally:
        state.close()


def test_migration_from_schema_1_keeps_everything_and_builds_volumes(
        state_location: Location) -> None:
    write_v1(state_location)
    write_v1_rows(state_location)

    store = Store(state_location, guess_language=guess_language)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    with store.transaction() as db:
        languages = {r["key"]: r["language"]
                     for r in run(db, "SELECT key, language FROM articles").mappings()}
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

    again = Store(state_location)  # reopening does not migrate (or count) twice
    assert again.volumes(datetime(2026, 11, 20, 8, tzinfo=UTC),
                         datetime(2026, 11, 20, 9, tzinfo=UTC))[0].matches == 2
    again.close()


def test_a_dry_run_copy_of_a_v1_file_is_migrated_in_memory_only(tmp_path: Path) -> None:
    # SQLite only: a private in-memory copy is SQLite's (a PostgreSQL state is copied with
    # `narrative-bot state copy`)
    path = tmp_path / "v1.sqlite3"
    write_v1(path)
    copy = Store.in_memory_copy(path)
    assert copy.get_meta("schema_version") == str(SCHEMA_VERSION)
    copy.record_article(article("n1", published=NOW), 1, [match("kz")], [])
    assert len(copy.volumes(NOW - timedelta(days=1))) == 1
    copy.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta").fetchone() == ("1",)  # the file is untouched
    db.close()
