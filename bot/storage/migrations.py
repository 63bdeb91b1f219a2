"""The schema of every table, as one ordered list of migrations.

A new file runs them all; a file from an earlier release runs those after its version (kept in
`meta`), all in the one transaction that opens it, so a failed migration leaves the file as it
was. A migration once released never changes: a later change is a new entry at the end.

1. The first release: feeds, notices, articles, matches, the alert outbox.
2. `articles.language` (guessed for old articles from their stored text), hourly `volumes`
   (rebuilt from the stored matches), `spikes`, `charts`, `posts`; `outbox.origin_key` and
   `feeds.body_hash` where a pre-release file lacks them.
3. The audience (chats, subscriptions, mutes, feedback, learned counter-examples) and the
   stories of syndication, until then created by their own modules when first used.
4. `paused_chats`: chats Telegram says the bot cannot reach (403, chat not found); their
   deliveries wait until a probe succeeds.
5. Sources: `pages` (the article pages already read), `stored_feeds` (feeds added from the
   chat or imported from OPML) and `feeds.page_error` / `page_error_at` (the last article
   page of a feed that could not be read).
6. `chats.language`: the language a chat's messages are written in (/language, or its user's
   Telegram language); NULL: `[telegram] language`.
7. An index of articles by source and link: an article seen under another GUID (or another
   tracking URL) is still seen.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable

from sqlalchemy import Connection, inspect, text

from bot.storage.postgres import lock_for_migration
from bot.storage.volumes import rebuild_volumes

log = logging.getLogger(__name__)

LanguageGuesser = Callable[[str], str]  # text → ISO 639 code (bot.feeds.guess_language)


class MigrationError(Exception):
    """A file that cannot be brought up to date as opened."""


_FIRST_RELEASE = """
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

# Volumes are counted when matches are recorded (same transaction) and never pruned with
# articles: one row per narrative, UTC hour, source and language.
_TRENDS = """
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

_AUDIENCE_AND_STORIES = """
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    reason TEXT,
    joined_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    chat_id TEXT NOT NULL,
    narrative_id TEXT NOT NULL,  -- '*' follows every narrative, present and future
    PRIMARY KEY (chat_id, narrative_id)
);
CREATE TABLE IF NOT EXISTS mutes (
    chat_id TEXT NOT NULL,
    source TEXT NOT NULL,
    until TEXT,                  -- NULL: until unmuted
    muted_by INTEGER,
    PRIMARY KEY (chat_id, source)
);
CREATE TABLE IF NOT EXISTS feedback (
    article_key TEXT NOT NULL,
    narrative_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('relevant', 'wrong')),
    outbox_id INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (article_key, narrative_id, user_id)
);
CREATE TABLE IF NOT EXISTS learned_counters (
    narrative_id TEXT NOT NULL,
    text TEXT NOT NULL,
    article_key TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (narrative_id, text)
);
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


_PAUSED_CHATS = """
CREATE TABLE IF NOT EXISTS paused_chats (
    chat_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    probe_at TEXT NOT NULL,     -- when reachability is checked again
    probes INTEGER NOT NULL DEFAULT 0
);
"""


Migration = Callable[[Connection, LanguageGuesser | None], None]


def _script(sql: str) -> Migration:
    def run(db: Connection, guess_language: LanguageGuesser | None) -> None:
        _execute_script(db, sql)
    return run


def _trends(db: Connection, guess_language: LanguageGuesser | None) -> None:
    _execute_script(db, _TRENDS)
    _add_column(db, "articles", "language TEXT")  # ISO 639: declared, configured or guessed
    _add_column(db, "outbox", "origin_key TEXT")  # a syndicated copy: "also in" under that one
    _add_column(db, "feeds", "body_hash TEXT")  # of the last body fully processed
    rows = db.execute(text("SELECT key, title, text FROM articles "
                           "WHERE language IS NULL")).mappings().fetchall()
    if rows:
        if guess_language is None:
            raise MigrationError("articles from the first release need their language "
                                 "guessed: open this state with a language guesser")
        db.execute(text("UPDATE articles SET language = :language WHERE key = :key"),
                   [{"language": guess_language(f"{r['title']}\n{r['text'] or ''}"),
                     "key": r["key"]} for r in rows])
    rebuild_volumes(db)


_SOURCES = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    published TEXT,
    fetched_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_fetched ON pages (fetched_at);
CREATE TABLE IF NOT EXISTS stored_feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    interval_s REAL NOT NULL,
    kind TEXT,                  -- feed, sitemap, telegram; NULL: told by the URL
    origin TEXT NOT NULL,       -- chat or opml
    added_by TEXT,              -- the user id, or the OPML file's name
    tags TEXT NOT NULL DEFAULT '[]',  -- JSON list (the OPML folder)
    added_at TEXT NOT NULL
);
"""


def _sources(db: Connection, guess_language: LanguageGuesser | None) -> None:
    _execute_script(db, _SOURCES)
    _add_column(db, "feeds", "page_error TEXT")
    _add_column(db, "feeds", "page_error_at TEXT")


def _chat_languages(db: Connection, guess_language: LanguageGuesser | None) -> None:
    _add_column(db, "chats", "language TEXT")  # en, ru: chosen, or the user's; NULL: default


# version → what brings a file from the version before to it
MIGRATIONS: dict[int, Migration] = {
    1: _script(_FIRST_RELEASE),
    2: _trends,
    3: _script(_AUDIENCE_AND_STORIES),
    4: _script(_PAUSED_CHATS),
    5: _sources,
    6: _chat_languages,
    7: _script("CREATE INDEX IF NOT EXISTS articles_url ON articles (source, url);\n"),
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(db: Connection, name: str, guess_language: LanguageGuesser | None) -> None:
    """Bring the database up to SCHEMA_VERSION, inside the caller's transaction (on
    PostgreSQL under a lock: one process migrates, the others then find it done). A state
    newer than this release is refused (MigrationError), never written to."""
    if db.dialect.name == "postgresql":
        lock_for_migration(db)
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise MigrationError(
            f"state {name} has schema version {version}, newer than this release "
            f"({SCHEMA_VERSION}): upgrade narrative-bot, or restore a backup of the older state")
    if version == SCHEMA_VERSION:
        return
    if version > 0:
        log.info("migrating state %s from schema version %d to %d", name, version,
                 SCHEMA_VERSION)
    for target in sorted(v for v in MIGRATIONS if v > version):
        MIGRATIONS[target](db, guess_language)
    db.execute(text("INSERT INTO meta VALUES ('schema_version', :v) ON CONFLICT(key) "
                    "DO UPDATE SET value = excluded.value"), {"v": str(SCHEMA_VERSION)})


def schema_version(db: Connection) -> int:
    """The state's schema version; 0 for a new one."""
    if not inspect(db).has_table("meta"):
        return 0
    row = db.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).fetchone()
    return int(row[0]) if row else 0


# SQLite's types and row ids as PostgreSQL spells them: 64-bit integers (Telegram's ids do
# not fit in 32), double precision scores, identity keys, bytea
_POSTGRES_TYPES = [
    (re.compile(r"\bid INTEGER PRIMARY KEY\b"), "id BIGINT GENERATED BY DEFAULT AS IDENTITY "
                                                  "PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID"), ")"),
]


def dialect_sql(statement: str, dialect: str) -> str:
    """A migration's DDL (written for SQLite) as `dialect` reads it."""
    if dialect == "postgresql":
        for pattern, replacement in _POSTGRES_TYPES:
            statement = pattern.sub(replacement, statement)
    return statement


def _execute_script(db: Connection, script: str) -> None:
    """Statement by statement, in the caller's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.exec_driver_sql(dialect_sql(statement, db.dialect.name))
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement: {statement.strip()[:60]}")


def _add_column(db: Connection, table: str, column: str) -> None:
    """ALTER TABLE … ADD COLUMN, unless a file written before its release already has it
    (no SQL comment in `column`: SQLite pastes it into the table's stored definition)."""
    name = column.split()[0]
    if name not in {c["name"] for c in inspect(db).get_columns(table)}:
        db.exec_driver_sql(dialect_sql(f"ALTER TABLE {table} ADD COLUMN {column}",
                                       db.dialect.name))
