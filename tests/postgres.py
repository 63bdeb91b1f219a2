"""PostgreSQL for the tests: one database of its own per test run, created on the server the
machine runs (127.0.0.1:5432, or NARRATIVE_BOT_TEST_PG) and dropped at the end, and an empty
schema for each test that asks for one."""

from __future__ import annotations

import os
import uuid

import psycopg

ADMIN_URL = os.environ.get("NARRATIVE_BOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


class ScratchDatabase:
    """A database made for this run; `reset()` empties it for the next test."""

    def __init__(self, prefix: str = "narrative_bot_test") -> None:
        self.name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.url = _with_database(ADMIN_URL, self.name)

    def create(self) -> ScratchDatabase:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def reset(self) -> str:
        """An empty public schema (no tables, no procrastinate jobs); the URL."""
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute("DROP SCHEMA public CASCADE")
            db.execute("CREATE SCHEMA public")
        return self.url

    def drop(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
