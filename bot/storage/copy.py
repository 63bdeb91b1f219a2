"""Moving a state from one database to another, row for row: `narrative-bot state copy --to
postgresql://…` (SQLite → PostgreSQL), and the private in-memory copy of a PostgreSQL state
that dry runs, exports and evals read (PostgreSQL → SQLite).

Both sides are at the same schema version (the source is migrated as it is opened, the target
is a new, migrated state), so every table is copied whole, parents before children, in the
target's one transaction: a copy that fails leaves the target as empty as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, Table, func, select, text

# Parents before the tables that refer to them (articles ← matches, outbox; charts ← posts).
TABLES = ("meta", "feeds", "notices", "articles", "matches", "outbox", "volumes", "spikes",
          "charts", "posts", "chats", "subscriptions", "mutes", "feedback", "learned_counters",
          "stories", "paused_chats", "pages", "stored_feeds")
# tables whose ids the target must go on counting from (identity columns on PostgreSQL)
WITH_IDS = ("notices", "matches", "outbox", "charts", "posts")
BATCH_ROWS = 1000
# the target's own: it was migrated to the same version already
SKIPPED_META = ("schema_version",)


class TargetNotEmpty(Exception):
    """The target already holds a state: a copy would mix two of them."""


@dataclass(frozen=True)
class CopiedTable:
    name: str
    rows: int


def row_counts(db: Connection) -> dict[str, int]:
    """Rows per table, for the copy's check and its report."""
    return {name: int(db.execute(select(func.count()).select_from(_table(db, name)))
                      .scalar_one()) for name in TABLES}


def require_empty(db: Connection, where: str) -> None:
    counts = row_counts(db)
    counts["meta"] -= sum(1 for _ in db.execute(
        text("SELECT key FROM meta WHERE key = 'schema_version'")))
    filled = [f"{name} ({n})" for name, n in counts.items() if n]
    if filled:
        raise TargetNotEmpty(f"{where} already holds a state ({', '.join(filled[:5])}): copy "
                             f"into an empty database")


def copy_tables(source: Connection, target: Connection,
                progress: Callable[[CopiedTable], None] | None = None) -> list[CopiedTable]:
    """Every table of `source` into the empty tables of `target`, in the caller's
    transaction on `target`."""
    copied: list[CopiedTable] = []
    for name in TABLES:
        rows = _copy_table(source, target, name)
        copied.append(CopiedTable(name, rows))
        if progress is not None:
            progress(copied[-1])
    if target.dialect.name == "postgresql":
        for name in WITH_IDS:
            # explicit ids were inserted: the identity goes on after the largest
            target.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"))
    return copied


def _copy_table(source: Connection, target: Connection, name: str) -> int:
    read, write = _table(source, name), _table(target, name)
    columns = [c.name for c in read.columns if c.name in write.columns]
    query = select(*(read.c[c] for c in columns))
    if name == "meta":
        query = query.where(read.c.key.not_in(SKIPPED_META))
    if "id" in read.columns:
        query = query.order_by(read.c.id)
    result = source.execution_options(yield_per=BATCH_ROWS).execute(query)
    total = 0
    for batch in result.partitions(BATCH_ROWS):
        rows = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in batch]
        target.execute(write.insert(), rows)
        total += len(rows)
    return total


def _plain(value: object) -> object:
    """psycopg gives bytea as memoryview at times; both drivers take bytes."""
    return bytes(value) if isinstance(value, memoryview) else value


def _table(db: Connection, name: str) -> Table:
    return Table(name, MetaData(), autoload_with=db)
