"""What the state says about a running bot, read without touching it: the figures that
`narrative-bot health` judges and the metrics endpoint exports.

Each read opens the state read-only on its own connection (from any thread, beside the bot's
own, never migrating or writing: a SQLite file opened `mode=ro`, or a PostgreSQL database in a
read-only transaction), so that a health check every 30 s or a scrape every 15 s costs one
short read transaction and nothing else. The queries are the same on both backends.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from bot.storage import postgres
from bot.storage.database import Location, is_url, parse_time, run


class NoState(Exception):
    """No state yet (nothing has run), or not one that can be read."""


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


def read_figures(location: Location) -> StateFigures:
    """The figures of the state at `location` (a SQLite file or a PostgreSQL URL); NoState
    when there is none to read."""
    engine, name = _engine(location)
    try:
        with engine.connect() as db:
            return _read(db)
    except (sqlite3.Error, SQLAlchemyError) as exc:
        raise NoState(f"cannot read the state at {name}: {_reason(exc)}") from None
    finally:
        engine.dispose()


def _engine(location: Location) -> tuple[Engine, str]:
    """An engine that reads the state and nothing else, and the state's name for errors."""
    if is_url(location):
        try:
            return postgres.engine(str(location)), postgres.shown(str(location))
        except postgres.StateUnavailable as exc:
            raise NoState(str(exc)) from None
    path = Path(location)
    if not path.is_file():
        raise NoState(f"no state at {path} (nothing has run yet)")

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5,
                               isolation_level=None, check_same_thread=False)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool), str(path)


def _reason(exc: BaseException) -> str:
    return str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)


def _read(db: Connection) -> StateFigures:
    """Every figure from one snapshot (rolled back as the connection closes)."""
    if db.dialect.name == "sqlite":
        db.exec_driver_sql("BEGIN")  # sqlite3 is in autocommit mode: this opens the snapshot
    else:
        db.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def one(statement: str) -> Any:
        return run(db, statement).scalar_one()

    def counts(statement: str) -> dict[str, int]:
        return {r["name"]: int(r["n"]) for r in run(db, statement).mappings()}

    last = one("SELECT MAX(last_poll_at) FROM feeds")
    failing = one("SELECT COUNT(*) FROM feeds WHERE consecutive_errors > 0")
    articles = one("SELECT COUNT(*) FROM articles")
    matches = counts("SELECT narrative_id AS name, COUNT(*) AS n FROM matches "
                     "GROUP BY narrative_id")
    alerts = counts("SELECT status AS name, COUNT(*) AS n FROM outbox GROUP BY status")
    # SUM of a BIGINT is a NUMERIC on PostgreSQL (a Decimal): int() for both
    interrupted = one("SELECT COALESCE(SUM(interrupted), 0) FROM outbox")
    waiting = run(
        db, "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM (SELECT created_at "
        "FROM outbox WHERE status IN ('pending', 'sending') UNION ALL SELECT created_at "
        "FROM posts WHERE status IN ('pending', 'sending')) AS waiting").mappings().one()
    return StateFigures(last_cycle_at=parse_time(last), articles=int(articles), matches=matches,
                        alerts=alerts, alerts_interrupted=int(interrupted),
                        outbox_depth=int(waiting["depth"]),
                        oldest_waiting_at=parse_time(waiting["oldest"]),
                        feeds_failing=int(failing))
