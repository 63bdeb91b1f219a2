"""Key/value settings kept in state: the schema version (bot/storage/migrations.py), cached
figures such as a model's background mean, and the key that signs Telegram buttons."""

from __future__ import annotations

import secrets

from bot.storage.database import Database, run

BUTTON_KEY = "button_secret"


class MetaStore(Database):
    """The `meta` table."""

    def get_meta(self, key: str) -> str | None:
        with self._read() as db:
            row = run(db, "SELECT value FROM meta WHERE key = :key", {"key": key}).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            run(db, "INSERT INTO meta VALUES (:key, :value) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value", {"key": key, "value": value})

    def button_key(self) -> bytes:
        """The key that signs buttons: made once and kept, so that buttons keep working across
        restarts (and two processes starting together agree on it)."""
        with self._tx() as db:
            run(db, "INSERT INTO meta VALUES (:key, :value) ON CONFLICT(key) DO NOTHING",
                {"key": BUTTON_KEY, "value": secrets.token_hex(32)})
            value = run(db, "SELECT value FROM meta WHERE key = :key",
                        {"key": BUTTON_KEY}).one()
        return bytes.fromhex(value[0])
