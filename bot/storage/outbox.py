"""The outbox: messages waiting for Telegram, one row per chat, and their one life cycle.

Two tables share it: `outbox` (an article's alert, written in the transaction that records
the match) and `posts` (narrative-level messages: spike alerts, digests). A row goes
pending → sending (recorded before the request leaves) → sent, or back to pending with a
delay, or to failed. A row found `sending` after a crash is sent again and counted as
interrupted: Telegram may show it twice, and every such duplicate is accounted for. Rows for a
paused chat (bot/storage/pauses.py) are not due; `narrative-bot outbox` lists failed rows,
requeues them or drops them (`OutboxEntry`, `requeue`, `drop`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.models import Alert, Evidence
from bot.storage.pauses import NOT_PAUSED
from bot.storage.sqlite import Database, inserted_id, iso, parse_time, utcnow


class Queue:
    """The life cycle of the rows of one outbox table; every call runs in the caller's
    transaction."""

    def __init__(self, table: str) -> None:
        self.table = table

    def sending(self, db: sqlite3.Connection, row_id: int) -> None:
        db.execute(f"UPDATE {self.table} SET status = 'sending' WHERE id = ?", (row_id,))

    def sent(self, db: sqlite3.Connection, row_id: int, message_id: int | None) -> None:
        db.execute(f"UPDATE {self.table} SET status = 'sent', message_id = ?, sent_at = ?, "
                   f"attempts = attempts + 1, last_error = NULL WHERE id = ?",
                   (message_id, iso(utcnow()), row_id))

    def retry(self, db: sqlite3.Connection, row_id: int, error: str, delay: timedelta,
              outcome_unknown: bool) -> None:
        db.execute(f"UPDATE {self.table} SET status = 'pending', attempts = attempts + 1, "
                   f"last_error = ?, not_before = ?, interrupted = interrupted + ? WHERE id = ?",
                   (error, iso(utcnow() + delay), int(outcome_unknown), row_id))

    def defer(self, db: sqlite3.Connection, row_id: int, delay: timedelta) -> None:
        """Not now and not a failed attempt: due again after `delay`."""
        db.execute(f"UPDATE {self.table} SET not_before = ? WHERE id = ? AND status = 'pending'",
                   (iso(utcnow() + delay), row_id))

    def failed(self, db: sqlite3.Connection, row_id: int, error: str) -> None:
        db.execute(f"UPDATE {self.table} SET status = 'failed', attempts = attempts + 1, "
                   f"last_error = ? WHERE id = ?", (error, row_id))

    def queued_at(self, db: sqlite3.Connection, row_id: int) -> datetime | None:
        row = db.execute(f"SELECT created_at FROM {self.table} WHERE id = ?",
                         (row_id,)).fetchone()
        return None if row is None else parse_time(row[0])

    def requeue(self, db: sqlite3.Connection, ids: Sequence[int] | None) -> int:
        """Failed rows back to pending, as if new (attempts and the deadline start again)."""
        args: list[object] = [iso(utcnow())]
        return db.execute(f"UPDATE {self.table} SET status = 'pending', attempts = 0, "
                          f"not_before = NULL, created_at = ? WHERE status = 'failed'"
                          f"{_ids(ids, args)}", args).rowcount

    def drop(self, db: sqlite3.Connection, ids: Sequence[int] | None) -> int:
        """Forget failed rows (with `ids`, pending ones too): they will never be sent."""
        args: list[object] = []
        statuses = "('failed')" if ids is None else "('failed', 'pending')"
        return db.execute(f"DELETE FROM {self.table} WHERE status IN {statuses}"
                          f"{_ids(ids, args)}", args).rowcount

    def recover(self, db: sqlite3.Connection) -> int:
        """Sends cut off by a crash: back to pending, counted as interrupted."""
        return db.execute(f"UPDATE {self.table} SET status = 'pending', "
                          f"interrupted = interrupted + 1 WHERE status = 'sending'").rowcount

    def move_chat(self, db: sqlite3.Connection, old_chat_id: str, new_chat_id: str) -> None:
        db.execute(f"UPDATE OR IGNORE {self.table} SET chat_id = ? WHERE chat_id = ? "
                   f"AND status = 'pending'", (new_chat_id, old_chat_id))
        # What could not move is already queued for the new chat.
        db.execute(f"UPDATE {self.table} SET status = 'failed', last_error = ? "
                   f"WHERE chat_id = ? AND status = 'pending'",
                   (f"duplicate after migration to {new_chat_id}", old_chat_id))


def _ids(ids: Sequence[int] | None, args: list[object]) -> str:
    if ids is None:
        return ""
    args += list(ids)
    return f" AND id IN ({', '.join('?' * len(ids))})" if ids else " AND 0"


ALERTS = Queue("outbox")
POSTS = Queue("posts")
QUEUES = {"alert": ALERTS, "post": POSTS}


@dataclass(frozen=True)
class OutboxEntry:
    """One alert or post as `narrative-bot outbox list` shows it."""

    kind: str  # 'alert' or 'post'
    id: int
    chat_id: str
    status: str
    attempts: int
    interrupted: int
    created_at: datetime | None
    last_error: str | None
    title: str


@dataclass(frozen=True)
class Delivery:
    """Where the alert about one article stands in one chat."""

    status: str  # 'pending', 'sending', 'sent' or 'failed'
    message_id: int | None


@dataclass(frozen=True)
class StoredAlert:
    """One outbox entry (any status) with the key of its article."""

    alert: Alert
    article_key: str


def queue_alerts(db: sqlite3.Connection, article_key: str,
                 pairs: Iterable[tuple[str, Sequence[str]]], matched: Sequence[str],
                 origin_key: str | None, at: str | None) -> list[int]:
    """One pending alert per chat with the matched narratives it is alerted to."""
    ids: list[int] = []
    for chat_id, narrative_ids in pairs:
        chosen = [n for n in narrative_ids if n in matched]
        if chosen:
            ids.append(inserted_id(db.execute(
                "INSERT INTO outbox (article_key, chat_id, narratives, origin_key, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (article_key, chat_id, json.dumps(chosen), origin_key, at))))
    return ids


_ALERT_SELECT = ("SELECT o.id, o.chat_id, o.attempts, o.narratives, o.origin_key, a.key, "
                 "a.source, a.title, a.url, a.published FROM outbox o JOIN articles a "
                 "ON a.key = o.article_key")


class AlertsStore(Database):
    """Pending alerts and their delivery (the alert half of every outbox operation)."""

    def pending_alerts(self, limit: int = 100, now: datetime | None = None) -> list[Alert]:
        rows = self._db.execute(
            f"{_ALERT_SELECT} WHERE o.status = 'pending' AND (o.not_before IS NULL OR "
            f"o.not_before <= ?) AND o.{NOT_PAUSED} ORDER BY o.id LIMIT ?",
            (iso(now or utcnow()), limit)).fetchall()
        return [self._alert_from_row(r) for r in rows]

    def alert(self, alert_id: int) -> StoredAlert | None:
        """One outbox entry (any status) and its article: what a button press refers to."""
        row = self._db.execute(f"{_ALERT_SELECT} WHERE o.id = ?", (alert_id,)).fetchone()
        return None if row is None else StoredAlert(self._alert_from_row(row), row["key"])

    def origin_delivery(self, origin_key: str, chat_id: str) -> Delivery | None:
        """The alert about `origin_key` in that chat, if there is one."""
        row = self._db.execute("SELECT status, message_id FROM outbox WHERE article_key = ? "
                               "AND chat_id = ?", (origin_key, chat_id)).fetchone()
        return None if row is None else Delivery(row["status"], row["message_id"])

    def mark_sending(self, alert_id: int) -> None:
        """Recorded before the request leaves, so a crash mid-send is known after restart."""
        with self._tx() as db:
            ALERTS.sending(db, alert_id)

    def mark_sent(self, alert_id: int, message_id: int | None) -> None:
        with self._tx() as db:
            ALERTS.sent(db, alert_id, message_id)

    def mark_retry(self, alert_id: int, error: str, delay: timedelta,
                   *, outcome_unknown: bool = False) -> None:
        with self._tx() as db:
            ALERTS.retry(db, alert_id, error, delay, outcome_unknown)

    def defer(self, alert_id: int, delay: timedelta) -> None:
        """Not now and not a failed attempt: try again after `delay`."""
        with self._tx() as db:
            ALERTS.defer(db, alert_id, delay)

    def mark_failed(self, alert_id: int, error: str) -> None:
        with self._tx() as db:
            ALERTS.failed(db, alert_id, error)

    def queued_at(self, kind: str, row_id: int) -> datetime | None:
        """When the alert (kind 'alert') or post ('post') was queued (or last requeued)."""
        return QUEUES[kind].queued_at(self._db, row_id)

    def outbox_entries(self, statuses: Sequence[str] = ("failed",)) -> list[OutboxEntry]:
        """Alerts, then posts, with one of `statuses`, oldest first."""
        marks = ", ".join("?" * len(statuses))
        alerts = self._db.execute(
            f"SELECT 'alert' AS what, o.id, o.chat_id, o.status, o.attempts, o.interrupted, "
            f"o.created_at, o.last_error, a.title FROM outbox o JOIN articles a ON "
            f"a.key = o.article_key WHERE o.status IN ({marks}) ORDER BY o.id", statuses)
        posts = self._db.execute(
            f"SELECT 'post' AS what, id, chat_id, status, attempts, interrupted, created_at, "
            f"last_error, kind || ' ' || key AS title FROM posts WHERE status IN ({marks}) "
            f"ORDER BY id", statuses)
        return [OutboxEntry(r["what"], r["id"], r["chat_id"], r["status"], r["attempts"],
                            r["interrupted"], parse_time(r["created_at"]), r["last_error"],
                            r["title"]) for r in [*alerts, *posts]]

    def requeue(self, kind: str, ids: Sequence[int] | None = None) -> int:
        """Failed alerts or posts (all, or those `ids`) pending again; how many."""
        with self._tx() as db:
            return QUEUES[kind].requeue(db, ids)

    def drop(self, kind: str, ids: Sequence[int] | None = None) -> int:
        """Failed alerts or posts (all failed, or those `ids`, pending too) forgotten."""
        with self._tx() as db:
            return QUEUES[kind].drop(db, ids)

    def recover_interrupted(self) -> int:
        """Alerts and posts cut off by a crash: back to pending (resent), counted."""
        with self._tx() as db:
            return POSTS.recover(db) + ALERTS.recover(db)

    def move_chat(self, old_chat_id: str, new_chat_id: str) -> None:
        """Follow a group that Telegram migrated to a supergroup: its alerts and posts."""
        with self._tx() as db:
            ALERTS.move_chat(db, old_chat_id, new_chat_id)
            POSTS.move_chat(db, old_chat_id, new_chat_id)

    def _alert_from_row(self, r: sqlite3.Row) -> Alert:
        return Alert(id=r["id"], chat_id=r["chat_id"], source=r["source"],
                     article_title=r["title"], article_url=r["url"],
                     evidence=self._evidence(r["key"], json.loads(r["narratives"])),
                     published=parse_time(r["published"]), attempts=r["attempts"],
                     origin_key=r["origin_key"])

    def _evidence(self, article_key: str, narrative_ids: list[str]) -> tuple[Evidence, ...]:
        rows = self._db.execute(
            "SELECT narrative_id, narrative_title, score, evidence FROM matches "
            "WHERE article_key = ? ORDER BY score DESC", (article_key,)).fetchall()
        return tuple(Evidence(r["narrative_id"], r["narrative_title"], r["score"], r["evidence"])
                     for r in rows if r["narrative_id"] in narrative_ids)
