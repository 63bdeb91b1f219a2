"""Chats the bot cannot reach for now (403, chat not found): their deliveries wait, and a
probe now and then finds out when the chat is back.

A pause is per chat and lives in `paused_chats`; the outbox and posts queries skip paused
chats (bot/storage/outbox.py), so nothing queued for them is tried, failed or lost meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.database import Database, iso, parse_time, run, utcnow

# a paused chat is probed after 1 min, then 2, 4 … up to every 15 min
FIRST_PROBE = timedelta(minutes=1)
MAX_PROBE = timedelta(minutes=15)

# the SQL condition that leaves paused chats out (used by the outbox and posts queries)
NOT_PAUSED = "chat_id NOT IN (SELECT chat_id FROM paused_chats)"


@dataclass(frozen=True)
class PausedChat:
    chat_id: str
    reason: str
    paused_at: datetime
    probe_at: datetime
    probes: int


def probe_delay(probes: int) -> timedelta:
    """How long after its `probes`-th failed probe a paused chat is probed again."""
    delay: timedelta = min(FIRST_PROBE * 2 ** min(probes, 10), MAX_PROBE)
    return delay


class PausesStore(Database):
    def pause_chat(self, chat_id: str, reason: str) -> bool:
        """Pause deliveries to `chat_id`; False if it already was paused (nothing changes)."""
        now = utcnow()
        with self._tx() as db:
            return run(db, "INSERT INTO paused_chats (chat_id, reason, paused_at, probe_at) "
                           "VALUES (:chat_id, :reason, :at, :probe_at) "
                           "ON CONFLICT (chat_id) DO NOTHING",
                       {"chat_id": chat_id, "reason": reason, "at": iso(now),
                        "probe_at": iso(now + FIRST_PROBE)}).rowcount == 1

    def resume_chat(self, chat_id: str) -> bool:
        """Deliver to `chat_id` again; False if it was not paused."""
        with self._tx() as db:
            return run(db, "DELETE FROM paused_chats WHERE chat_id = :chat_id",
                       {"chat_id": chat_id}).rowcount == 1

    def probe_failed(self, chat_id: str) -> None:
        with self._tx() as db:
            probes = run(db, "SELECT probes FROM paused_chats WHERE chat_id = :chat_id",
                         {"chat_id": chat_id}).scalar()
            if probes is not None:
                run(db, "UPDATE paused_chats SET probes = probes + 1, probe_at = :probe_at "
                        "WHERE chat_id = :chat_id",
                    {"probe_at": iso(utcnow() + probe_delay(probes + 1)), "chat_id": chat_id})

    def paused_chats(self, due: datetime | None = None) -> list[PausedChat]:
        """Every paused chat; with `due`, only those whose next probe is due by then."""
        due_by = "" if due is None else " WHERE probe_at <= :due"
        with self._read() as db:
            rows = run(db, f"SELECT * FROM paused_chats{due_by} ORDER BY paused_at, chat_id",
                       {"due": iso(due)} if due else {}).mappings().all()
        return [PausedChat(r["chat_id"], r["reason"], _time(r["paused_at"]),
                           _time(r["probe_at"]), r["probes"]) for r in rows]


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None  # NOT NULL columns
    return parsed
