"""Narrative-level posts (spike alerts, digests; text or a chart with its caption) and plain
notices for admins (a feed paused or recovered).

A post is queued once per (key, chat): a spike or a digest period never reaches a chat twice.
A chart is stored once however many chats get it, and Telegram's file id is kept after the
first upload so that later sends reuse it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.storage.outbox import POSTS
from bot.storage.pauses import NOT_PAUSED
from bot.storage.sqlite import Database, inserted_id, iso, utcnow


@dataclass(frozen=True)
class Post:
    """A pending narrative-level message (spike alert, digest): text, or a chart with caption."""

    id: int
    kind: str
    key: str
    chat_id: str
    html: str
    plain: str
    chart_id: int | None
    attempts: int


@dataclass(frozen=True)
class PostStatus:
    """A queued post and where its delivery stands ('pending', 'sending', 'sent', 'failed')."""

    post: Post
    status: str


@dataclass(frozen=True)
class PostDraft:
    """A narrative-level message to queue for some chats: text, or a chart and its caption."""

    kind: str
    key: str
    chat_ids: tuple[str, ...]
    html: str
    plain: str
    chart: bytes | None = None


@dataclass(frozen=True)
class Chart:
    """A queued chart: its PNG and, once Telegram has it, its file id."""

    png: bytes
    file_id: str | None


@dataclass(frozen=True)
class Notice:
    """A plain message for an admin (a feed paused or recovered), not an alert."""

    id: int
    chat_id: str
    text: str
    attempts: int


def queue_drafts(db: sqlite3.Connection, drafts: Sequence[PostDraft],
                 at: str | None) -> list[int]:
    """Queue each draft for each of its chats that has not had its key; the new post ids."""
    return [i for draft in drafts for i in _queue_draft(db, draft, at)]


def _queue_draft(db: sqlite3.Connection, draft: PostDraft, at: str | None) -> list[int]:
    new_chats = [c for c in dict.fromkeys(draft.chat_ids) if db.execute(
        "SELECT 1 FROM posts WHERE key = ? AND chat_id = ?", (draft.key, c)).fetchone() is None]
    if not new_chats:
        return []
    chart_id = None
    if draft.chart is not None:  # stored once, however many chats get it
        chart_id = db.execute("INSERT INTO charts (png, created_at) VALUES (?, ?)",
                              (draft.chart, at)).lastrowid
    return [inserted_id(db.execute(
                "INSERT INTO posts (kind, key, chat_id, html, plain, chart_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (draft.kind, draft.key, chat, draft.html, draft.plain, chart_id, at)))
            for chat in new_chats]


def queue_notice(db: sqlite3.Connection, chat_ids: Sequence[str], text: str,
                 at: str | None) -> None:
    db.executemany("INSERT INTO notices (chat_id, text, created_at) VALUES (?, ?, ?)",
                   [(chat, text, at) for chat in chat_ids])


class PostsStore(Database):
    """Posts, their charts, and notices."""

    def queue_posts(self, drafts: Sequence[PostDraft]) -> list[int]:
        """Queue one message per draft and chat, atomically; a (key, chat) queued before is
        left alone, so a spike or a digest period never reaches a chat twice."""
        with self._tx() as db:
            return queue_drafts(db, drafts, iso(utcnow()))

    def has_posts(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM posts WHERE key = ? LIMIT 1",
                                (key,)).fetchone() is not None

    def posts(self, key_prefix: str = "") -> list[PostStatus]:
        """Every post whose key starts with `key_prefix`, with its status (for tests, status)."""
        rows = self._db.execute("SELECT * FROM posts WHERE substr(key, 1, ?) = ? ORDER BY id",
                                (len(key_prefix), key_prefix)).fetchall()
        return [PostStatus(_post_from_row(r), r["status"]) for r in rows]

    def pending_posts(self, limit: int = 100, now: datetime | None = None) -> list[Post]:
        rows = self._db.execute(
            f"SELECT * FROM posts WHERE status = 'pending' AND (not_before IS NULL OR "
            f"not_before <= ?) AND {NOT_PAUSED} ORDER BY id LIMIT ?",
            (iso(now or utcnow()), limit)).fetchall()
        return [_post_from_row(r) for r in rows]

    def chart(self, chart_id: int) -> Chart:
        row = self._db.execute("SELECT png, file_id FROM charts WHERE id = ?",
                               (chart_id,)).fetchone()
        return Chart(bytes(row[0]), row[1])

    def mark_post_sending(self, post_id: int) -> None:
        with self._tx() as db:
            POSTS.sending(db, post_id)

    def mark_post_sent(self, post_id: int, message_id: int | None,
                       file_id: str | None = None) -> None:
        with self._tx() as db:
            POSTS.sent(db, post_id, message_id)
            if file_id:
                db.execute("UPDATE charts SET file_id = ? WHERE id = (SELECT chart_id FROM "
                           "posts WHERE id = ?) AND file_id IS NULL", (file_id, post_id))

    def mark_post_retry(self, post_id: int, error: str, delay: timedelta,
                        *, outcome_unknown: bool = False) -> None:
        with self._tx() as db:
            POSTS.retry(db, post_id, error, delay, outcome_unknown)

    def mark_post_failed(self, post_id: int, error: str) -> None:
        with self._tx() as db:
            POSTS.failed(db, post_id, error)

    # -- notices --------------------------------------------------------------------------

    def add_notice(self, chat_ids: Sequence[str], text: str) -> None:
        with self._tx() as db:
            queue_notice(db, chat_ids, text, iso(utcnow()))

    def pending_notices(self, limit: int = 100) -> list[Notice]:
        rows = self._db.execute("SELECT id, chat_id, text, attempts FROM notices "
                                "WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,))
        return [Notice(r["id"], r["chat_id"], r["text"], r["attempts"]) for r in rows]

    def mark_notice(self, notice_id: int, status: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE notices SET status = ?, attempts = attempts + 1, sent_at = ? "
                       "WHERE id = ?", (status, iso(utcnow()), notice_id))


def _post_from_row(r: sqlite3.Row) -> Post:
    return Post(id=r["id"], kind=r["kind"], key=r["key"], chat_id=r["chat_id"], html=r["html"],
                plain=r["plain"], chart_id=r["chart_id"], attempts=r["attempts"])
