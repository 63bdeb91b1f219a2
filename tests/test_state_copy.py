"""`narrative-bot state copy --to postgresql://…`: a SQLite state with every table filled reads
back through the PostgreSQL store equal row for row; `migrate` on both backends; the private
copy of a PostgreSQL state; one-line errors for a database that cannot be used."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from bot.cli import main
from bot.config import Config, load_config
from bot.storage.copy import TABLES
from bot.storage.database import run
from bot.storage.migrations import SCHEMA_VERSION
from bot.storage.store import Store
from tests.conftest import WriteConfig

AT = "2026-11-30T08:00:00+00:00"
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
BIG_ID = 7_123_456_789  # Telegram user ids outgrow 32 bits
PNG = bytes(range(256)) * 3

# One row or more for every table, with what is hard to carry over: non-Latin text, NULLs,
# 64-bit ids, floats, bytes and ids that later inserts must count on from.
ROWS: dict[str, list[dict[str, Any]]] = {
    "meta": [{"key": "button_secret", "value": "ab" * 32}],
    "feeds": [{"name": "Синьхуа", "url": "https://e.org/rss", "etag": '"x"', "last_modified": None,
               "last_poll_at": AT, "last_ok_at": AT, "last_error": None, "consecutive_errors": 2,
               "retry_at": None, "paused_at": None, "articles_seen": 41, "body_hash": "h",
               "page_error": "HTTP 404", "page_error_at": AT}],
    "notices": [{"id": 5, "chat_id": "42", "text": "✅ back", "status": "sent", "attempts": 1,
                 "created_at": AT, "sent_at": AT}],
    "articles": [{"key": f"k{i}", "source": "Синьхуа", "url": f"https://e.org/{i}",
                  "title": "哈萨克斯坦想回归中国", "published": AT if i else None, "seen_at": AT,
                  "passages": 3, "content_hash": f"c{i}", "text": "Текст " * 50,
                  "language": "zh"} for i in range(3)],
    "matches": [{"id": 10 + i, "article_key": f"k{i}", "narrative_id": "kz-return-to-china",
                 "narrative_title": "KZ", "score": 0.7123456789012345, "threshold": 0.63,
                 "passage_index": i, "evidence": "回归中国", "statement": "Kazakhstan…",
                 "created_at": AT} for i in range(3)],
    "outbox": [{"id": 20 + i, "article_key": f"k{i}", "chat_id": "@narrative_alerts",
                "narratives": '["kz-return-to-china"]', "status": status, "attempts": i,
                "interrupted": 1 if status == "sent" else 0, "not_before": None,
                "last_error": None, "message_id": 900 + i if status == "sent" else None,
                "created_at": AT, "sent_at": AT if status == "sent" else None,
                "origin_key": "k0" if i == 2 else None}
               for i, status in enumerate(("sent", "pending", "failed"))],
    "volumes": [{"narrative_id": "kz-return-to-china", "hour": "2026-11-30T08:00:00+00:00",
                 "source": "Синьхуа", "language": "zh", "matches": 3}],
    "spikes": [{"narrative_id": "kz-return-to-china", "active": 1, "started_at": AT,
                "calmed_at": None, "checked_at": AT, "z": 4.25, "window_count": 12,
                "details": '{"z": 4.25}'}],
    "charts": [{"id": 3, "png": PNG, "file_id": None, "created_at": AT}],
    "posts": [{"id": 7, "kind": "spike", "key": "spike:kz:1", "chat_id": "@narrative_alerts",
               "html": "<b>spike</b>", "plain": "spike", "chart_id": 3, "status": "pending",
               "attempts": 0, "interrupted": 0, "not_before": AT, "last_error": None,
               "message_id": None, "created_at": AT, "sent_at": None}],
    "chats": [{"chat_id": str(BIG_ID), "kind": "private", "title": "Айгерим", "active": 1,
               "reason": None, "joined_at": AT, "language": "ru"}],
    "subscriptions": [{"chat_id": str(BIG_ID), "narrative_id": "*"}],
    "mutes": [{"chat_id": str(BIG_ID), "source": "Синьхуа", "until": None, "muted_by": BIG_ID}],
    "feedback": [{"article_key": "k1", "narrative_id": "kz-return-to-china", "user_id": BIG_ID,
                  "vote": "wrong", "outbox_id": 21, "created_at": AT}],
    "learned_counters": [{"narrative_id": "kz-return-to-china", "text": "Визит в Пекин",
                          "article_key": "k1", "created_at": AT}],
    "stories": [{"article_key": "k0", "narratives": '["kz-return-to-china"]',
                 "vectors": PNG[:384 * 2], "dim": 384, "seen_at": AT, "origin_key": None}],
    "paused_chats": [{"chat_id": "-100200", "reason": "Forbidden: bot was kicked",
                      "paused_at": AT, "probe_at": AT, "probes": 2}],
    "pages": [{"url": "https://e.org/1", "title": "页", "text": "正文", "published": None,
               "fetched_at": AT}],
    "stored_feeds": [{"name": "Added", "url": "https://e.org/added.xml", "interval_s": 600.0,
                      "kind": None, "origin": "chat", "added_by": str(BIG_ID),
                      "tags": '["kz"]', "added_at": AT}],
}


def fill(store: Store) -> None:
    with store.transaction() as db:
        for table in TABLES:
            for row in ROWS[table]:
                run(db, f"INSERT INTO {table} ({', '.join(row)}) "
                        f"VALUES ({', '.join(':' + c for c in row)})", row)


def table_rows(db: Connection, table: str) -> list[tuple[object, ...]]:
    keys = ", ".join(ROWS[table][0])
    rows = db.execute(text(f"SELECT {keys} FROM {table} ORDER BY {keys}")).fetchall()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


def every_row(store: Store) -> dict[str, list[tuple[object, ...]]]:
    with store.transaction() as db:
        return {table: table_rows(db, table) for table in TABLES}


@pytest.fixture
def filled(write_config: WriteConfig) -> Config:
    config = write_config()
    store = Store(config.state.path)
    try:
        fill(store)
    finally:
        store.close()
    return config


def test_every_table_is_filled_by_the_fixture() -> None:
    assert set(ROWS) == set(TABLES)


def test_state_copy_reads_back_through_the_postgresql_store_row_for_row(
        filled: Config, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "copy", "--config", str(filled.source_file), "--to", pg_url]) == 0
    out = capsys.readouterr().out
    assert "copied to postgresql://" in out and "stored_feeds" in out
    source, target = Store(filled.state.path), Store(pg_url)
    try:
        assert every_row(target) == every_row(source)
        assert target.dialect == "postgresql"
        assert target.get_meta("schema_version") == str(SCHEMA_VERSION)
        # read back through the store's own methods too
        assert target.button_key() == source.button_key()
        assert [r.article_key for r in target.match_records(SINCE)] == ["k0", "k1", "k2"]
        # ids go on after the copied ones
        with target.transaction() as db:
            new_id = run(db, "INSERT INTO notices (chat_id, text, created_at) "
                             "VALUES ('1', 'x', :at) RETURNING id", {"at": AT}).scalar_one()
        assert new_id > 5
    finally:
        source.close()
        target.close()


def test_state_copy_refuses_a_target_that_holds_a_state(
        filled: Config, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["state", "copy", "--config", str(filled.source_file), "--to", pg_url]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a state" in capsys.readouterr().err
    target = Store(pg_url)
    try:
        assert len(every_row(target)["articles"]) == 3  # nothing doubled
    finally:
        target.close()


def test_a_private_copy_of_a_postgresql_state_is_in_memory_and_equal(
        filled: Config, pg_url: str) -> None:
    assert main(["state", "copy", "--config", str(filled.source_file), "--to", pg_url]) == 0
    copy = Store.in_memory_copy(pg_url)
    shared = Store(pg_url)
    try:
        assert copy.dialect == "sqlite" and every_row(copy) == every_row(shared)
        with copy.transaction() as db:
            run(db, "DELETE FROM chats")
        assert len(every_row(shared)["chats"]) == 1  # the copy's changes stay in the copy
    finally:
        copy.close()
        shared.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_brings_a_new_state_up_and_says_so(
        write_config: WriteConfig, pg_url: str, backend: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _with_url(write_config, pg_url) if backend == "postgresql" else write_config()
    args = ["migrate", "--config", str(config.source_file)]
    assert main(args) == 0
    assert f"→ {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out


def _with_url(write_config: WriteConfig, url: str) -> Config:
    config = write_config()
    path = Path(str(config.source_file))
    path.write_text(path.read_text("utf-8").replace(
        'path = "state/bot.sqlite3"', f'path = "state/bot.sqlite3"\nurl = "{url}"'), "utf-8")
    return load_config(path)


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://postgres:s3cret-pw@127.0.0.1:1/narrative", "Connection refused"),
    ("postgresql://nobody_here:s3cret-pw@127.0.0.1:5432/postgres", 'role "nobody_here"'),
    ("postgresql://postgres:s3cret-pw@127.0.0.1:5432/nb_scratch_missing", "does not exist"),
])
def test_a_database_that_cannot_be_used_is_one_line_without_the_password(
        write_config: WriteConfig, url: str, says: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = _with_url(write_config, url)
    assert main(["migrate", "--config", str(config.source_file)]) == 2
    err = capsys.readouterr().err
    assert says in err and "s3cret-pw" not in err and "***" in err
    assert len(err.strip().splitlines()) == 1


def test_a_postgresql_state_newer_than_the_code_is_one_line(
        write_config: WriteConfig, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    Store(pg_url).close()
    store = Store(pg_url)
    store.set_meta("schema_version", str(SCHEMA_VERSION + 3))
    store.close()
    config = _with_url(write_config, pg_url)
    assert main(["migrate", "--config", str(config.source_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "newer than this release" in err and len(err.splitlines()) == 1
