"""The database under every per-entity part of the store, on either backend.

The queries are written once, as SQLAlchemy Core `text()` with named parameters, and run on
SQLite (WAL, the embedded default: bot/storage/sqlite.py) or PostgreSQL (`[state] url`:
bot/storage/postgres.py). Each method of a store is one short transaction (`_tx`) or one read
(`_read`); times are stored as UTC ISO-8601 text on both backends, so that a state copied from
one to the other reads back the same.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, text

from bot.storage import postgres, sqlite

Location = Path | str  # a SQLite file, or a postgresql:// URL


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A datetime as stored: UTC ISO-8601 to the second."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def is_url(location: Location) -> bool:
    return isinstance(location, str) and postgres.is_postgres_url(location)


def run(db: Connection, statement: str, params: Mapping[str, Any] | None = None,
        ) -> CursorResult[Any]:
    """One statement in the caller's transaction."""
    return db.execute(text(statement), dict(params or {}))


def in_filter(column: str, ids: Collection[object] | None, params: dict[str, Any],
              name: str = "id") -> str:
    """` AND column IN (:id_0, …)` for `ids`, their values added to `params`: nothing for
    None, never true for none."""
    if ids is None:
        return ""
    names = [f"{name}_{i}" for i in range(len(ids))]
    params.update(zip(names, ids, strict=True))
    return f" AND {column} IN ({', '.join(':' + n for n in names)})" if names else " AND 1 = 0"


class Database:
    """One state: a SQLite file (or a private in-memory copy of one) or a PostgreSQL
    database. Every method of a store is a short transaction or a single read."""

    def __init__(self, location: Location, *, private_copy: bool = False) -> None:
        self.location: Location = location
        self.dialect = "postgresql" if is_url(location) else "sqlite"
        if self.dialect == "postgresql":
            if private_copy:
                raise ValueError("a private copy is a SQLite feature: export a PostgreSQL "
                                 "state with `narrative-bot state copy` instead")
            self.path = Path()
            self.engine: Engine = postgres.engine(str(location))
            self.name = postgres.shown(str(location))
        else:
            path = Path(location)
            self.path = sqlite.MEMORY if private_copy else path
            self.engine = sqlite.engine(path, private_copy=private_copy)
            self.name = str(path)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def db(self) -> Any:
        """The SQLite connection itself (sqlite3), for tests and operators' checks."""
        return sqlite.raw_connection(self.engine)

    def take_problem(self) -> str | None:
        """A problem of the file or the disk noticed since the last call (told once)."""
        return sqlite.take_problem(self.engine) if self.dialect == "sqlite" else None

    def backup_to(self, target: Path) -> Path:
        """An online, checked copy of a SQLite state at `target` (the bot may keep writing)."""
        if self.dialect != "sqlite":
            raise ValueError("backups of a PostgreSQL state are pg_dump's job")
        return sqlite.backup(self.engine, target)

    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), rolled back on error."""
        return self._tx()

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reads (autocommit on SQLite: no lock is held)."""
        return self._read()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.connect() as db, db.begin():
            if self.dialect == "sqlite":
                # sqlite3 runs in autocommit mode here (reads take no lock); a write takes
                # the lock first, so that two writers never deadlock on an upgrade
                db.exec_driver_sql("BEGIN IMMEDIATE")
            yield db

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reads (autocommit on SQLite: no lock is held)."""
        with self.engine.connect() as db:
            yield db
