"""The SQLite specifics, in one place: the connection (WAL), transactions, the private
in-memory copy used by dry runs, exports and evals, and how times are stored. A file is checked
as it is opened (bot/storage/integrity.py): damaged state is refused, never started anew.

Every per-entity part of the store derives from `Database` and shares its one connection;
bot/storage/store.py composes them and migrates the schema on open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bot.storage.integrity import CheckedConnection, backup, quick_check, refuse_empty

MEMORY = Path(":memory:")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A datetime as stored: UTC ISO-8601 to the second."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just gave (sqlite3 types it optional for statements that insert none)."""
    if cursor.lastrowid is None:
        raise sqlite3.DatabaseError("INSERT gave no rowid")
    return cursor.lastrowid


def id_filter(column: str, ids: Collection[str] | None, args: list[object]) -> str:
    """` AND column IN (…)` for `ids`, their values appended to `args`: nothing for None,
    never true for none."""
    if ids is None:
        return ""
    wanted = list(ids)
    args += wanted
    return f" AND {column} IN ({', '.join('?' * len(wanted))})" if wanted else " AND 0"


def connect(path: Path) -> CheckedConnection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on; a
    file that exists is checked first (StateDamaged: empty, not a database, damaged)."""
    if path != MEMORY:
        refuse_empty(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False,
                         factory=CheckedConnection)
    db.name = str(path)
    db.row_factory = sqlite3.Row
    try:
        if path != MEMORY:
            quick_check(db, str(path))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        db.close()
        raise
    return db


def copy_in_memory(path: Path) -> CheckedConnection:
    """An in-memory database holding what the file at `path` holds now (empty if none)."""
    db = connect(MEMORY)
    if path.exists():
        refuse_empty(path)
        source = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            quick_check(source, str(path))
            source.backup(db)
        except BaseException:
            db.close()
            raise
        finally:
            source.close()
    return db


class Database:
    """One SQLite file, or a private in-memory copy of one; all methods are short
    transactions on this one connection."""

    def __init__(self, path: Path, *, private_copy: bool = False) -> None:
        path = Path(path)
        self.path = MEMORY if private_copy else path
        self._db: CheckedConnection = copy_in_memory(path) if private_copy else connect(path)

    def close(self) -> None:
        self._db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection itself, for tests and operators' checks."""
        return self._db

    def take_problem(self) -> str | None:
        """A problem of the file or the disk noticed since the last call (told once)."""
        return self._db.take_problem()

    def backup_to(self, target: Path) -> Path:
        """An online, checked copy of the state at `target` (the bot may keep writing)."""
        return backup(self._db, target)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:  # SQLite ends it itself on a full disk or I/O error
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
