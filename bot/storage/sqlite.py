"""The SQLite specifics, in one place: the connection (WAL, autocommit, checked as it is
opened: bot/storage/integrity.py), the engine that shares it, the private in-memory copy used
by dry runs, exports and evals, and online backups. Damaged state is refused, never started
anew; what is not SQLite's (the queries) lives in the per-entity modules.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from bot.storage.integrity import CheckedConnection, quick_check, refuse_empty
from bot.storage.integrity import backup as backup_file

MEMORY = Path(":memory:")


def connect(path: Path) -> CheckedConnection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on; a
    file that exists is checked first (StateDamaged: empty, not a database, damaged)."""
    if path != MEMORY:
        refuse_empty(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False,
                         factory=CheckedConnection)
    db.name = str(path)
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


def engine(path: Path, *, private_copy: bool = False) -> Engine:
    """One engine over one connection, opened now (so that a damaged file is refused here):
    the store is used from one process, and SQLite has one writer anyway."""
    db = copy_in_memory(path) if private_copy else connect(path)
    return create_engine("sqlite://", creator=lambda: db, poolclass=StaticPool)


def raw_connection(engine: Engine) -> CheckedConnection:
    """The sqlite3 connection under `engine`."""
    with engine.connect() as db:
        raw = db.connection.dbapi_connection
    assert isinstance(raw, CheckedConnection)
    return raw


def take_problem(engine: Engine) -> str | None:
    return raw_connection(engine).take_problem()


def backup(engine: Engine, target: Path) -> Path:
    return backup_file(raw_connection(engine), target)
