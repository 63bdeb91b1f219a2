"""The PostgreSQL specifics: the engine (psycopg 3) for `[state] url = "postgresql://…"`, the
URL as shown in logs and errors (never with its password), the one-line errors for a database
that cannot be reached or entered, and the lock that lets one process at a time migrate.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError

SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")
# one number for "the schema of this state is being changed" (pg_advisory_xact_lock)
MIGRATION_LOCK = 0x6E62_6D69  # "nbmi"


class StateUnavailable(Exception):
    """The PostgreSQL state cannot be used: the one line says which URL and why."""


def is_postgres_url(location: str) -> bool:
    return location.startswith(SCHEMES)


def _url(location: str) -> URL:
    try:
        url = make_url(location)
    except ArgumentError:
        raise StateUnavailable(f"[state] url is not a database URL: "
                               f"{shown(location)}") from None
    return url.set(drivername="postgresql+psycopg")


def shown(location: str) -> str:
    """The URL with its password masked (for logs, errors and status)."""
    try:
        return make_url(location).render_as_string(hide_password=True)
    except ArgumentError:
        return location.split("@")[-1]


def engine(location: str) -> Engine:
    """A pooled engine, checked now: an unreachable database or a refused login is a
    StateUnavailable naming the URL (without its password) and the reason."""
    made = create_engine(_url(location), pool_pre_ping=True, pool_size=5, max_overflow=5,
                         connect_args={"connect_timeout": 10})
    try:
        with made.connect() as db:
            db.execute(text("SELECT 1"))
    except OperationalError as exc:
        made.dispose()
        raise StateUnavailable(f"state {shown(location)}: {reason(exc)}") from None
    return made


def reason(exc: OperationalError) -> str:
    """psycopg's message in one line, without the connection details it repeats."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    text_ = lines[0] if lines else str(exc.orig)
    for prefix in ("connection failed: ",):
        text_ = text_.removeprefix(prefix)
    return text_.split("): ", 1)[-1]


def lock_for_migration(db: Connection) -> None:
    """Held until the caller's transaction ends: `run` and the workers start together, and
    exactly one of them migrates while the others wait and then find nothing to do."""
    db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
