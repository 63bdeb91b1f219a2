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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping

from bot.models import Alert, Evidence
from bot.storage.database import Database, in_filter, iso, parse_time, run, utcnow
from bot.storage.pauses import NOT_PAUSED


class Queue:
    """The life cycle of the rows of one outbox table; every call runs in the caller's
    transaction. `about` is the column that, with the chat, makes a row unique."""

    def __init__(self, table: str, about: str) -> None:
        self.table = table
        self.about = about

    def sending(self, db: Connection, row_id: int) -> None:
        run(db, f"UPDATE {self.table} SET status = 'sending' WHERE id = :id", {"id": row_id})

    def sent(self, db: Connection, row_id: int, message_id: int | None) -> None:
        run(db, f"UPDATE {self.table} SET status = 'sent', message_id = :message_id, "
                f"sent_at = :at, attempts = attempts + 1, last_error = NULL WHERE id = :id",
            {"message_id": message_id, "at": iso(utcnow()), "id": row_id})

    def retry(self, db: Connection, row_id: int, error: str, delay: timedelta,
              outcome_unknown: bool) -> None:
        run(db, f"UPDATE {self.table} SET status = 'pending', attempts = attempts + 1, "
                f"last_error = :error, not_before = :not_before, "
                f"interrupted = interrupted + :unknown WHERE id = :id",
            {"error": error, "not_before": iso(utcnow() + delay),
             "unknown": int(outcome_unknown), "id": row_id})

    def defer(self, db: Connection, row_id: int, delay: timedelta) -> None:
        """Not now and not a failed attempt: due again after `delay`."""
        run(db, f"UPDATE {self.table} SET not_before = :not_before "
                f"WHERE id = :id AND status = 'pending'",
            {"not_before": iso(utcnow() + delay), "id": row_id})

    def failed(self, db: Connection, row_id: int, error: str) -> None:
        run(db, f"UPDATE {self.table} SET status = 'failed', attempts = attempts + 1, "
                f"last_error = :error WHERE id = :id", {"error": error, "id": row_id})

    def queued_at(self, db: Connection, row_id: int) -> datetime | None:
        row = run(db, f"SELECT created_at FROM {self.table} WHERE id = :id",
                  {"id": row_id}).fetchone()
        return None if row is None else parse_time(row[0])

    def requeue(self, db: Connection, ids: Sequence[int] | None) -> int:
        """Failed rows back to pending, as if new (attempts and the deadline start again)."""
        params: dict[str, Any] = {"at": iso(utcnow())}
        return run(db, f"UPDATE {self.table} SET status = 'pending', attempts = 0, "
                       f"not_before = NULL, created_at = :at WHERE status = 'failed'"
                       f"{in_filter('id', ids, params)}", params).rowcount

    def drop(self, db: Connection, ids: Sequence[int] | None) -> int:
        """Forget failed rows (with `ids`, pending ones too): they will never be sent."""
        params: dict[str, Any] = {}
        statuses = "('failed')" if ids is None else "('failed', 'pending')"
        return run(db, f"DELETE FROM {self.table} WHERE status IN {statuses}"
                       f"{in_filter('id', ids, params)}", params).rowcount

    def recover(self, db: Connection) -> int:
        """Sends cut off by a crash: back to pending, counted as interrupted."""
        return run(db, f"UPDATE {self.table} SET status = 'pending', "
                       f"interrupted = interrupted + 1 WHERE status = 'sending'").rowcount

    def move_chat(self, db: Connection, old_chat_id: str, new_chat_id: str) -> None:
        params = {"old": old_chat_id, "new": new_chat_id}
        # only what the new chat has not got yet moves (the unique key is (about, chat))
        run(db, f"UPDATE {self.table} SET chat_id = :new WHERE chat_id = :old "
                f"AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM {self.table} d "
                f"WHERE d.chat_id = :new AND d.{self.about} = {self.table}.{self.about})",
            params)
        # What could not move is already queued for the new chat.
        run(db, f"UPDATE {self.table} SET status = 'failed', last_error = :error "
                f"WHERE chat_id = :old AND status = 'pending'",
            {**params, "error": f"duplicate after migration to {new_chat_id}"})


ALERTS = Queue("outbox", "article_key")
POSTS = Queue("posts", "key")
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


def queue_alerts(db: Connection, article_key: str,
                 pairs: Iterable[tuple[str, Sequence[str]]], matched: Sequence[str],
                 origin_key: str | None, at: str | None) -> list[int]:
    """One pending alert per chat with the matched narratives it is alerted to."""
    ids: list[int] = []
    for chat_id, narrative_ids in pairs:
        chosen = [n for n in narrative_ids if n in matched]
        if chosen:
            ids.append(run(
                db, "INSERT INTO outbox (article_key, chat_id, narratives, origin_key, "
                    "created_at) VALUES (:article_key, :chat_id, :narratives, :origin_key, "
                    ":at) RETURNING id",
                {"article_key": article_key, "chat_id": chat_id,
                 "narratives": json.dumps(chosen), "origin_key": origin_key, "at": at},
            ).scalar_one())
    return ids


_ALERT_SELECT = ("SELECT o.id, o.chat_id, o.attempts, o.narratives, o.origin_key, a.key, "
                 "a.source, a.title, a.url, a.published FROM outbox o JOIN articles a "
                 "ON a.key = o.article_key")


class AlertsStore(Database):
    """Pending alerts and their delivery (the alert half of every outbox operation)."""

    def pending_alerts(self, limit: int = 100, now: datetime | None = None) -> list[Alert]:
        with self._read() as db:
            rows = run(db, f"{_ALERT_SELECT} WHERE o.status = 'pending' AND (o.not_before IS "
                           f"NULL OR o.not_before <= :now) AND o.{NOT_PAUSED} ORDER BY o.id "
                           f"LIMIT :limit",
                       {"now": iso(now or utcnow()), "limit": limit}).mappings().fetchall()
            return [_alert_from_row(db, r) for r in rows]

    def alert(self, alert_id: int) -> StoredAlert | None:
        """One outbox entry (any status) and its article: what a button press refers to."""
        with self._read() as db:
            row = run(db, f"{_ALERT_SELECT} WHERE o.id = :id",
                      {"id": alert_id}).mappings().fetchone()
            return None if row is None else StoredAlert(_alert_from_row(db, row), row["key"])

    def origin_delivery(self, origin_key: str, chat_id: str) -> Delivery | None:
        """The alert about `origin_key` in that chat, if there is one."""
        with self._read() as db:
            row = run(db, "SELECT status, message_id FROM outbox WHERE article_key = :key "
                          "AND chat_id = :chat_id",
                      {"key": origin_key, "chat_id": chat_id}).mappings().fetchone()
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
        with self._read() as db:
            return QUEUES[kind].queued_at(db, row_id)

    def outbox_entries(self, statuses: Sequence[str] = ("failed",)) -> list[OutboxEntry]:
        """Alerts, then posts, with one of `statuses`, oldest first."""
        params: dict[str, Any] = {}
        alerts_with = in_filter("o.status", statuses, params, name="status")
        posts_with = in_filter("status", statuses, params, name="status")
        with self._read() as db:
            alerts = run(db, f"SELECT 'alert' AS what, o.id, o.chat_id, o.status, o.attempts, "
                             f"o.interrupted, o.created_at, o.last_error, a.title FROM outbox o "
                             f"JOIN articles a ON a.key = o.article_key WHERE 1 = 1{alerts_with} "
                             f"ORDER BY o.id", params).mappings().fetchall()
            posts = run(db, f"SELECT 'post' AS what, id, chat_id, status, attempts, interrupted, "
                            f"created_at, last_error, kind || ' ' || key AS title FROM posts "
                            f"WHERE 1 = 1{posts_with} ORDER BY id", params).mappings().fetchall()
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


def _alert_from_row(db: Connection, r: RowMapping) -> Alert:
    return Alert(id=r["id"], chat_id=r["chat_id"], source=r["source"],
                 article_title=r["title"], article_url=r["url"],
                 evidence=_evidence(db, r["key"], json.loads(r["narratives"])),
                 published=parse_time(r["published"]), attempts=r["attempts"],
                 origin_key=r["origin_key"])


def _evidence(db: Connection, article_key: str,
              narrative_ids: list[str]) -> tuple[Evidence, ...]:
    rows = run(db, "SELECT narrative_id, narrative_title, score, evidence FROM matches "
                   "WHERE article_key = :key ORDER BY score DESC, narrative_id",
               {"key": article_key}).mappings().fetchall()
    return tuple(Evidence(r["narrative_id"], r["narrative_title"], r["score"], r["evidence"])
                 for r in rows if r["narrative_id"] in narrative_ids)
