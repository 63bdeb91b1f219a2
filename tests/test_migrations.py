"""Migrations: a file from every earlier release reaches the schema of a new file, keeps its
rows, and a migration that cannot finish leaves the file as it was."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.feeds.language import guess_language
from bot.storage.audience import Audience
from bot.storage.migrations import MIGRATIONS
from bot.storage.store import SCHEMA_VERSION, MigrationError, Store
from tests.frozen_schemas import (
    V1_SCHEMA,
    V2_AUDIENCE,
    V2_SCHEMA,
    V2_STORIES,
    V4_PAUSED_CHATS,
    V5_SOURCES,
)
from tests.postgres import ScratchDatabase

Schema = dict[str, frozenset[tuple[object, ...]]]

START = datetime(2026, 1, 1, tzinfo=UTC)

# Columns a pre-release build had already added to some version-1 files.
V1_PRE_RELEASE = ("ALTER TABLE outbox ADD COLUMN origin_key TEXT;\n"
                  "ALTER TABLE feeds ADD COLUMN body_hash TEXT;\n")

EARLIER = {
    "v1": (1, V1_SCHEMA),
    "v1 with pre-release columns": (1, V1_SCHEMA + V1_PRE_RELEASE),
    "v2": (2, V2_SCHEMA),
    "v2 with audience and stories": (2, V2_SCHEMA + V2_AUDIENCE + V2_STORIES),
    "v3": (3, V2_SCHEMA + V2_AUDIENCE + V2_STORIES),  # the audience's tables became migration 3
    "v4": (4, V2_SCHEMA + V2_AUDIENCE + V2_STORIES + V4_PAUSED_CHATS),
    "v5": (5, V2_SCHEMA + V2_AUDIENCE + V2_STORIES + V4_PAUSED_CHATS + V5_SOURCES),
    "v6": (6, V2_SCHEMA + V2_AUDIENCE + V2_STORIES + V4_PAUSED_CHATS + V5_SOURCES
           + "ALTER TABLE chats ADD COLUMN language TEXT;\n"),
}


def schema(db: sqlite3.Connection) -> Schema:
    """Each table's and index's columns (name, type, not null, default, key), order aside."""
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN "
                                      "('table', 'index') AND name NOT LIKE 'sqlite_%'")]
    return {name: frozenset(tuple(r)[1:] for r in db.execute(f"PRAGMA table_xinfo({name})"))
            or frozenset(tuple(r) for r in db.execute(f"PRAGMA index_xinfo({name})"))
            for name in names}


def write_file(path: Path, version: int, sql: str) -> None:
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    db.execute("INSERT INTO articles (key, source, url, title, seen_at, passages, content_hash, "
               "text) VALUES ('k1', 'Sputnik', 'https://e.org/1', 'Казахстан хочет в Китай', "
               "'2026-11-22T09:00:00+00:00', 1, 'h1', 'Текст.')")
    db.execute("INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
               "threshold, passage_index, evidence, statement, created_at) VALUES "
               "('k1', 'kz', 'KZ', 0.8, 0.6, 0, 'ev', 'st', '2026-11-22T09:00:00+00:00')")
    db.commit()
    db.close()


def test_versions_follow_one_another() -> None:
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    assert {v for v, _ in EARLIER.values()} == set(range(1, SCHEMA_VERSION))  # each is tested


@pytest.fixture(scope="module")
def new_schema(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    store = Store(tmp_path_factory.mktemp("new") / "state.sqlite3")
    try:
        return schema(store.db)
    finally:
        store.close()


@pytest.mark.parametrize("release", list(EARLIER))
def test_every_earlier_release_migrates_to_the_schema_of_a_new_file(
        tmp_path: Path, new_schema: Schema, release: str) -> None:
    version, sql = EARLIER[release]
    path = tmp_path / "old.sqlite3"
    write_file(path, version, sql)
    store = Store(path, guess_language=guess_language)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert schema(store.db) == new_schema
        [record] = store.match_records(START)
        assert record.article_key == "k1" and record.narrative_id == "kz"
        if version == 1:  # languages guessed, volumes rebuilt from the matches
            assert record.language == "ru"
            assert [(v.narrative_id, v.language, v.matches)
                    for v in store.volumes(START)] == [("kz", "ru", 1)]
        audience = Audience(store, None)
        audience.register_chat("1", "private")
        assert audience.is_active("1") and store.story_origins(START, ["kz"]) == []
    finally:
        store.close()


def test_a_migration_that_cannot_finish_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    write_file(path, 1, V1_SCHEMA)
    with pytest.raises(MigrationError, match="language guesser"):
        Store(path)  # the first release's articles need their language guessed
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta").fetchall() == [("1",)]
        assert "language" not in {r[1] for r in db.execute("PRAGMA table_info(articles)")}
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'volumes'").fetchall() == []
    finally:
        db.close()


def test_a_file_from_a_newer_release_is_refused_and_left_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(MigrationError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        Store(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION + 1),)]
    finally:
        db.close()


# -- PostgreSQL: the same ordered list, from each earlier version ----------------------------

def pg_schema(url: str) -> Schema:
    """Each table's columns (name, type, nullable, default) and each index's definition."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as db:
            columns = db.execute(text(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public'")).fetchall()
            indexes = db.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                      "WHERE schemaname = 'public'")).fetchall()
    finally:
        engine.dispose()
    found: dict[str, set[tuple[object, ...]]] = {}
    for table, *column in columns:
        found.setdefault(table, set()).add(tuple(column))
    for name, definition in indexes:
        found.setdefault(name, set()).add((definition,))
    return {name: frozenset(rows) for name, rows in found.items()}


def write_pg_state(url: str, version: int) -> None:
    """A PostgreSQL state as release `version` left it: its migrations, then one article."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as db:
            for step in range(1, version + 1):
                MIGRATIONS[step](db, guess_language)
            db.execute(text("INSERT INTO meta VALUES ('schema_version', :v)"), {"v": str(version)})
            db.execute(text(
                "INSERT INTO articles (key, source, url, title, seen_at, passages, content_hash, "
                "text) VALUES ('k1', 'Sputnik', 'https://e.org/1', 'Казахстан хочет в Китай', "
                "'2026-11-22T09:00:00+00:00', 1, 'h1', 'Текст.')"))
            db.execute(text(
                "INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
                "threshold, passage_index, evidence, statement, created_at) VALUES "
                "('k1', 'kz', 'KZ', 0.8, 0.6, 0, 'ev', 'st', '2026-11-22T09:00:00+00:00')"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_every_earlier_postgresql_version_migrates_to_the_schema_of_a_new_state(
        pg_database: ScratchDatabase, version: int) -> None:
    url = pg_database.reset()
    Store(url).close()
    new = pg_schema(url)
    url = pg_database.reset()
    write_pg_state(url, version)
    store = Store(url, guess_language=guess_language)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        [record] = store.match_records(START)
        assert (record.article_key, record.narrative_id, record.score) == ("k1", "kz", 0.8)
        audience = Audience(store, None)
        audience.register_chat("-1001234567890123", "channel")  # needs 64-bit ids? text here
        assert audience.is_active("-1001234567890123")
    finally:
        store.close()
    assert pg_schema(url) == new


def test_a_postgresql_state_from_a_newer_release_is_refused(pg_url: str) -> None:
    Store(pg_url).close()
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as db:
        db.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
                   {"v": str(SCHEMA_VERSION + 1)})
    engine.dispose()
    with pytest.raises(MigrationError, match="newer than this release"):
        Store(pg_url)
