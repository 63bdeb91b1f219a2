"""Narrative-level posts (spike alerts, digests; text or a chart with its caption) and plain
notices for admins (a feed paused or recovered).

A post is queued once per (key, chat): a spike or a digest period never reaches a chat twice.
A chart is stored once however many chats get it, and Telegram's file id is kept after the
first upload so that later sends reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, RowMapping

from bot.storage.database import Database, iso, run, utcnow
from bot.storage.outbox import POSTS
from bot.storage.pauses import NOT_PAUSED


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


def queue_drafts(db: Connection, drafts: Sequence[PostDraft], at: str | None) -> list[int]:
    """Queue each draft for each of its chats that has not had its key; the new post ids."""
    return [i for draft in drafts for i in _queue_draft(db, draft, at)]


def _queue_draft(db: Connection, draft: PostDraft, at: str | None) -> list[int]:
    new_chats = [c for c in dict.fromkeys(draft.chat_ids) if run(
        db, "SELECT 1 FROM posts WHERE key = :key AND chat_id = :chat_id",
        {"key": draft.key, "chat_id": c}).fetchone() is None]
    if not new_chats:
        return []
    chart_id = None
    if draft.chart is not None:  # stored once, however many chats get it
        chart_id = run(db, "INSERT INTO charts (png, created_at) VALUES (:png, :at) "
                           "RETURNING id", {"png": draft.chart, "at": at}).scalar_one()
    # ON CONFLICT: on PostgreSQL another worker may have queued the same (key, chat) since
    ids = [run(db, "INSERT INTO posts (kind, key, chat_id, html, plain, chart_id, created_at) "
                   "VALUES (:kind, :key, :chat_id, :html, :plain, :chart_id, :at) "
                   "ON CONFLICT (key, chat_id) DO NOTHING RETURNING id",
               {"kind": draft.kind, "key": draft.key, "chat_id": chat, "html": draft.html,
                "plain": draft.plain, "chart_id": chart_id, "at": at}).scalar()
           for chat in new_chats]
    return [i for i in ids if i is not None]


def queue_notice(db: Connection, chat_ids: Sequence[str], text: str, at: str | None) -> None:
    for chat in chat_ids:
        run(db, "INSERT INTO notices (chat_id, text, created_at) VALUES (:chat_id, :text, :at)",
            {"chat_id": chat, "text": text, "at": at})


class PostsStore(Database):
    """Posts, their charts, and notices."""

    def queue_posts(self, drafts: Sequence[PostDraft]) -> list[int]:
        """Queue one message per draft and chat, atomically; a (key, chat) queued before is
        left alone, so a spike or a digest period never reaches a chat twice."""
        with self._tx() as db:
            return queue_drafts(db, drafts, iso(utcnow()))

    def has_posts(self, key: str) -> bool:
        with self._read() as db:
            return run(db, "SELECT 1 FROM posts WHERE key = :key LIMIT 1",
                       {"key": key}).fetchone() is not None

    def posts(self, key_prefix: str = "") -> list[PostStatus]:
        """Every post whose key starts with `key_prefix`, with its status (for tests, status)."""
        with self._read() as db:
            rows = run(db, "SELECT * FROM posts WHERE substr(key, 1, :n) = :prefix ORDER BY id",
                       {"n": len(key_prefix), "prefix": key_prefix}).mappings().fetchall()
        return [PostStatus(_post_from_row(r), r["status"]) for r in rows]

    def pending_posts(self, limit: int = 100, now: datetime | None = None) -> list[Post]:
        with self._read() as db:
            rows = run(db, f"SELECT * FROM posts WHERE status = 'pending' AND (not_before IS "
                           f"NULL OR not_before <= :now) AND {NOT_PAUSED} ORDER BY id "
                           f"LIMIT :limit",
                       {"now": iso(now or utcnow()), "limit": limit}).mappings().fetchall()
        return [_post_from_row(r) for r in rows]

    def chart(self, chart_id: int) -> Chart:
        with self._read() as db:
            row = run(db, "SELECT png, file_id FROM charts WHERE id = :id",
                      {"id": chart_id}).mappings().one()
        return Chart(bytes(row["png"]), row["file_id"])  # BYTEA may come back as memoryview

    def mark_post_sending(self, post_id: int) -> None:
        with self._tx() as db:
            POSTS.sending(db, post_id)

    def mark_post_sent(self, post_id: int, message_id: int | None,
                       file_id: str | None = None) -> None:
        with self._tx() as db:
            POSTS.sent(db, post_id, message_id)
            if file_id:
                run(db, "UPDATE charts SET file_id = :file_id WHERE id = (SELECT chart_id "
                        "FROM posts WHERE id = :id) AND file_id IS NULL",
                    {"file_id": file_id, "id": post_id})

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
        with self._read() as db:
            rows = run(db, "SELECT id, chat_id, text, attempts FROM notices "
                           "WHERE status = 'pending' ORDER BY id LIMIT :limit",
                       {"limit": limit}).mappings().fetchall()
        return [Notice(r["id"], r["chat_id"], r["text"], r["attempts"]) for r in rows]

    def mark_notice(self, notice_id: int, status: str) -> None:
        with self._tx() as db:
            run(db, "UPDATE notices SET status = :status, attempts = attempts + 1, "
                    "sent_at = :at WHERE id = :id",
                {"status": status, "at": iso(utcnow()), "id": notice_id})


def _post_from_row(r: RowMapping) -> Post:
    return Post(id=r["id"], kind=r["kind"], key=r["key"], chat_id=r["chat_id"], html=r["html"],
                plain=r["plain"], chart_id=r["chart_id"], attempts=r["attempts"])
