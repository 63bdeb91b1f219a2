"""Is the state file what it should be? `PRAGMA quick_check` when it is opened and after any
error that smells of damage, a clear refusal (`StateDamaged`) instead of starting anew or
running on, I/O problems remembered for the admins, and online backups.

SQLite treats a 0-byte file as a new, empty database: the bot would re-alert everything and
forget subscriptions, mutes, learned examples and its button key. A file that exists must
hold a database; only a missing file starts fresh.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# words of SQLite errors that mean the file or the disk is in trouble, not a bad query
_DAMAGE = ("malformed", "not a database", "disk i/o error", "corrupt")
_DISK = ("disk is full", "database or disk is full", "disk i/o error", "readonly database",
         "unable to open")


class StateDamaged(Exception):
    """The state file cannot be trusted as it is: the one line says why and what to do."""


def refuse_empty(path: Path) -> None:
    """A state file that exists but is empty is a loss, not a new start."""
    if path.exists() and path.stat().st_size == 0:
        raise StateDamaged(
            f"state {path} is an empty file (0 bytes): refusing to start anew over it. "
            f"Restore a backup (narrative-bot state backup) or remove the file to start fresh")


def quick_check(db: sqlite3.Connection, name: str) -> None:
    """PRAGMA quick_check, or StateDamaged naming the first problem."""
    try:
        rows = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise StateDamaged(f"state {name} is damaged ({exc}): restore a backup") from None
    if rows != ["ok"]:
        raise StateDamaged(f"state {name} is damaged ({'; '.join(map(str, rows))[:300]}): "
                           f"restore a backup (narrative-bot state backup keeps them)")


class CheckedCursor(sqlite3.Cursor):
    """A cursor whose errors reach its connection's check (SQLAlchemy runs every query
    through a cursor)."""

    def execute(self, sql: str, parameters: Any = (), /) -> CheckedCursor:
        try:
            super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if isinstance(self.connection, CheckedConnection):
                self.connection.noticed(exc)
            raise
        return self

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> CheckedCursor:
        try:
            super().executemany(sql, parameters)
        except sqlite3.DatabaseError as exc:
            if isinstance(self.connection, CheckedConnection):
                self.connection.noticed(exc)
            raise
        return self


class CheckedConnection(sqlite3.Connection):
    """A connection that notices errors of the file or the disk: the first of each is kept in
    `problem` (for the admins), and damage is confirmed with a quick_check."""

    problem: str | None = None
    name: str = ""
    _lock = threading.Lock()

    def cursor(self, factory: Any = CheckedCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            self.noticed(exc)
            raise

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.DatabaseError as exc:
            self.noticed(exc)
            raise

    def take_problem(self) -> str | None:
        """The problem noticed since the last call, if any (each is reported once)."""
        with self._lock:
            problem, self.problem = self.problem, None
            return problem

    def noticed(self, exc: sqlite3.DatabaseError) -> None:
        text = str(exc).lower()
        if isinstance(exc, sqlite3.IntegrityError) or not any(w in text for w in _DAMAGE + _DISK):
            return  # a constraint or a query of ours: not the file's fault
        what = f"state {self.name}: {exc}"
        if any(w in text for w in _DAMAGE):
            try:
                quick_check(self, self.name)
            except StateDamaged as damaged:
                what = str(damaged)
        log.error("%s", what)
        with self._lock:
            self.problem = self.problem or what


def backup(db: sqlite3.Connection, target: Path) -> Path:
    """An online copy of the open database `db` at `target` (SQLite's backup API: consistent
    while the bot keeps writing), checked before it is trusted."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    copy = sqlite3.connect(str(partial))
    try:
        db.backup(copy)
        quick_check(copy, str(partial))
    finally:
        copy.close()
    partial.replace(target)
    return target


def backup_path(state: Path, now: datetime | None = None) -> Path:
    """Where a backup of `state` taken now goes: backups/<state name>-<UTC time>.sqlite3."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return state.parent / "backups" / f"{state.stem}-{moment:%Y%m%d-%H%M%S}.sqlite3"


def rotate_backup(db: sqlite3.Connection, state: Path, keep: int) -> Path:
    """One backup of `state` (open as `db`) beside it, and all but the `keep` newest gone."""
    target = backup(db, backup_path(state))
    prune_backups(target.parent, state.stem, keep)
    return target


def prune_backups(folder: Path, stem: str, keep: int) -> list[Path]:
    """Remove all but the `keep` newest backups named `stem`-*.sqlite3; the ones removed."""
    found = sorted(folder.glob(f"{stem}-*.sqlite3"))
    gone = found[:-keep] if keep > 0 else found
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
