"""One bot per state file: an OS lock on `<state>.lock` beside the SQLite state.

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
