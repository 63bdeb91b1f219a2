"""What the state says about a running bot, read without touching it: the figures that
`narrative-bot health` judges and the metrics endpoint exports.

Each read opens the file read-only on its own connection (from any thread, beside the bot's
own connection, never migrating or writing), so that a health check every 30 s or a scrape
every 15 s costs one short read transaction and nothing else.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.storage.sqlite import parse_time


class NoState(Exception):
    """No state file yet (nothing has run), or not one that can be read."""


@dataclass(frozen=True)
class StateFigures:
    """Totals since the state began, and the outbox as it stands."""

    last_cycle_at: datetime | None  # the latest poll of any feed
    articles: int
    matches: dict[str, int] = field(default_factory=dict)  # per narrative id
    alerts: dict[str, int] = field(default_factory=dict)  # per outbox status
    alerts_interrupted: int = 0  # sends whose outcome was unknown (resent)
    outbox_depth: int = 0  # alerts and posts waiting (pending or being sent)
    oldest_waiting_at: datetime | None = None  # when the oldest of them was queued
    feeds_failing: int = 0  # feeds whose last poll failed


def read_figures(path: Path) -> StateFigures:
    """The figures of the state at `path`; NoState when there is none to read."""
    if not path.is_file():
        raise NoState(f"no state at {path} (nothing has run yet)")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                                timeout=5, check_same_thread=False)) as db:
            return _read(db)
    except sqlite3.Error as exc:
        raise NoState(f"cannot read the state at {path}: {exc}") from None


def _read(db: sqlite3.Connection) -> StateFigures:
    one = db.execute
    db.execute("BEGIN")  # one snapshot for every figure
    last = one("SELECT MAX(last_poll_at) FROM feeds").fetchone()[0]
    failing = one("SELECT COUNT(*) FROM feeds WHERE consecutive_errors > 0").fetchone()[0]
    articles = one("SELECT COUNT(*) FROM articles").fetchone()[0]
    matches = dict(one("SELECT narrative_id, COUNT(*) FROM matches GROUP BY narrative_id"))
    alerts = dict(one("SELECT status, COUNT(*) FROM outbox GROUP BY status"))
    interrupted = one("SELECT COALESCE(SUM(interrupted), 0) FROM outbox").fetchone()[0]
    depth, oldest = one(
        "SELECT COUNT(*), MIN(created_at) FROM (SELECT created_at FROM outbox WHERE status IN "
        "('pending', 'sending') UNION ALL SELECT created_at FROM posts WHERE status IN "
        "('pending', 'sending'))").fetchone()
    db.execute("COMMIT")
    return StateFigures(last_cycle_at=parse_time(last), articles=articles, matches=matches,
                        alerts=alerts, alerts_interrupted=interrupted, outbox_depth=depth,
                        oldest_waiting_at=parse_time(oldest), feeds_failing=failing)
