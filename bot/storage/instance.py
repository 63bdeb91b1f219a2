"""One `run` per state: an OS lock on `<state>.lock` beside a SQLite state, a PostgreSQL
session lock (pg_try_advisory_lock) for a PostgreSQL one, whichever machine it runs on.

`fcntl.flock` on an open file: the kernel drops it when the holder exits, however it exits
(SIGKILL and power loss included), so a stale lock cannot outlive its process and nothing needs
cleaning up. The holder writes its pid into the file, so that a refusal can name it. The file
itself stays; its presence means nothing, only the lock does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, text

from bot.storage.postgres import engine as postgres_engine
from bot.storage.postgres import shown

RUN_LOCK = 0x6E62_7275  # "nbru": the session lock one `run` holds on a PostgreSQL state


class StateInUse(Exception):
    """Another process holds the state; the text names the state file and that pid."""


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


class InstanceLock:
    """`with InstanceLock(state):` holds the state for this process, or raises StateInUse."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = lock_path(state)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateInUse(f"state {self.state} is in use by another narrative-bot "
                             f"(pid {holder or 'unknown'}): stop it first, or give this one "
                             "its own [state] path") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


class DatabaseLock:
    """`with DatabaseLock(url):` holds a PostgreSQL state for this `run`, or raises
    StateInUse. The lock belongs to a connection of its own: it ends when the process dies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._db: Connection | None = None

    def __enter__(self) -> DatabaseLock:
        self._engine = postgres_engine(self.url)
        self._db = self._engine.connect()
        got = self._db.execute(text("SELECT pg_try_advisory_lock(:key)"),
                               {"key": RUN_LOCK}).scalar_one()
        self._db.commit()
        if not got:
            self.__exit__(None, None, None)
            raise StateInUse(f"state {shown(self.url)} is in use by another narrative-bot run: "
                             f"stop it first (workers may be many; `run` is one)")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def instance_lock(path: Path, url: str | None) -> InstanceLock | DatabaseLock:
    """The lock of `[state]`: the database's when `url` is set, else the file's."""
    return DatabaseLock(url) if url is not None else InstanceLock(path)


def run_holder(path: Path, url: str | None) -> int | None:
    """Whether a `run` holds `[state]` now: its pid (on PostgreSQL the pid of the server
    process serving its lock), or None."""
    if url is None:
        return holder(path)
    engine = postgres_engine(url)
    try:
        with engine.connect() as db:
            return db.execute(text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :high AND objid = :low AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"high": RUN_LOCK >> 32, "low": RUN_LOCK & 0xFFFF_FFFF}).scalar()
    finally:
        engine.dispose()


def holder(state: Path) -> int | None:
    """The pid of the process holding `state` now, or None when nobody does."""
    path = lock_path(state)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:  # a shared lock for an instant: a `run` starting in that instant would be refused
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
