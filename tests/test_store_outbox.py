"""The outbox, posts and pauses in state, each test on SQLite and on PostgreSQL
(`state_location`): one life cycle, the same SQL on both backends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.models import Article, Match, Passage
from bot.storage.database import run, utcnow
from bot.storage.store import PostDraft, Store

CHAT = "4242"
NEW_CHAT = "-1004242"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # every byte value survives BYTEA and BLOB


@pytest.fixture
def store(state_location: Path | str) -> Iterator[Store]:
    s = Store(state_location)
    yield s
    s.close()


def queue(store: Store, chats: Sequence[str], key: str = "art-1") -> list[int]:
    """An article with two matches, alerted to `chats`; the new alert ids."""
    matches = [Match(narrative_id=f"n{i}", narrative_title=f"Narrative {i}", score=score,
                     threshold=0.5, passage=Passage(index=i, text=f"evidence {i}"),
                     statement=f"statement {i}")
               for i, score in enumerate((0.7, 0.9))]
    article = Article(key=key, source="Feed", url=f"https://example.com/{key}",
                      title=f"Title {key}", text="text",
                      published=datetime(2026, 11, 23, 9, tzinfo=UTC))
    return store.record_article(article, passages=2, matches=matches, routes=list(chats))


def row(store: Store, table: str, row_id: int) -> dict[str, Any]:
    with store._read() as db:
        return dict(run(db, f"SELECT * FROM {table} WHERE id = :id",
                        {"id": row_id}).mappings().one())


def pending(store: Store, now: datetime | None = None) -> list[int]:
    return [a.id for a in store.pending_alerts(now=now)]


def draft(key: str, chats: Sequence[str], chart: bytes | None = None) -> PostDraft:
    return PostDraft(kind="spike", key=key, chat_ids=tuple(chats), html=f"<b>{key}</b>",
                     plain=key, chart=chart)


# ---- alerts -----------------------------------------------------------------------------

def test_an_alert_goes_pending_sending_sent(store: Store) -> None:
    [alert_id] = queue(store, [CHAT])
    [alert] = store.pending_alerts()
    assert (alert.id, alert.chat_id, alert.article_title) == (alert_id, CHAT, "Title art-1")
    assert [e.narrative_id for e in alert.evidence] == ["n1", "n0"]  # best score first
    assert alert.published == datetime(2026, 11, 23, 9, tzinfo=UTC)
    store.mark_sending(alert_id)
    assert pending(store) == [] and row(store, "outbox", alert_id)["status"] == "sending"
    store.mark_sent(alert_id, 2**40)  # message ids and chat ids outgrow 32 bits
    sent = row(store, "outbox", alert_id)
    assert (sent["status"], sent["attempts"], sent["message_id"]) == ("sent", 1, 2**40)
    assert sent["sent_at"] is not None and sent["last_error"] is None
    delivery = store.origin_delivery("art-1", CHAT)
    assert delivery is not None and (delivery.status, delivery.message_id) == ("sent", 2**40)
    assert store.origin_delivery("art-1", "other") is None
    stored = store.alert(alert_id)
    assert stored is not None and stored.article_key == "art-1" and store.alert(999) is None


def test_a_retry_waits_for_not_before_and_counts_unknown_outcomes(store: Store) -> None:
    [alert_id] = queue(store, [CHAT])
    store.mark_retry(alert_id, "timed out", timedelta(minutes=10), outcome_unknown=True)
    waiting = row(store, "outbox", alert_id)
    assert (waiting["status"], waiting["attempts"], waiting["interrupted"]) == ("pending", 1, 1)
    assert waiting["last_error"] == "timed out"
    assert pending(store) == []
    assert pending(store, utcnow() + timedelta(minutes=11)) == [alert_id]
    store.mark_retry(alert_id, "server error", timedelta(0))
    assert row(store, "outbox", alert_id)["interrupted"] == 1  # a known failure
    store.defer(alert_id, timedelta(hours=1))  # not an attempt
    assert row(store, "outbox", alert_id)["attempts"] == 2 and pending(store) == []
    assert pending(store, utcnow() + timedelta(hours=2)) == [alert_id]


def test_failed_alerts_are_listed_requeued_and_dropped(store: Store) -> None:
    first, second, third = (queue(store, [CHAT], key=f"art-{i}")[0] for i in range(3))
    waiting = queue(store, [CHAT], key="art-pending")[0]
    for alert_id in (first, second, third):
        store.mark_failed(alert_id, "undelivered for 7 days")
    entries = store.outbox_entries()
    assert [(e.kind, e.id, e.status, e.attempts) for e in entries] == [
        ("alert", first, "failed", 1), ("alert", second, "failed", 1),
        ("alert", third, "failed", 1)]
    assert entries[0].title == "Title art-0" and entries[0].created_at is not None
    assert [e.id for e in store.outbox_entries(("pending", "failed"))] == [
        first, second, third, waiting]
    assert store.requeue("alert", []) == 0
    assert store.requeue("alert", [first]) == 1
    assert row(store, "outbox", first)["attempts"] == 0
    assert pending(store) == [first, waiting]
    assert store.drop("alert", [waiting]) == 1  # named: pending ones go too
    assert store.drop("alert") == 2  # all failed, never the pending ones
    assert pending(store) == [first] and store.outbox_entries() == []


def test_sends_cut_off_by_a_crash_are_recovered_and_counted(store: Store) -> None:
    [alert_id] = queue(store, [CHAT])
    [post_id] = store.queue_posts([draft("spike:n0:1", [CHAT])])
    store.mark_sending(alert_id)
    store.mark_post_sending(post_id)
    assert store.recover_interrupted() == 2 and store.recover_interrupted() == 0
    assert row(store, "outbox", alert_id)["interrupted"] == 1
    assert (row(store, "posts", post_id)["status"], row(store, "posts", post_id)["interrupted"]) \
        == ("pending", 1)
    assert pending(store) == [alert_id]


def test_a_migrated_chat_takes_its_queue_and_fails_what_it_already_has(store: Store) -> None:
    both_old, both_new = queue(store, [CHAT, NEW_CHAT], key="art-both")
    [only_old] = queue(store, [CHAT], key="art-old")
    [sent_old] = queue(store, [CHAT], key="art-sent")
    store.mark_sent(sent_old, 7)
    post_old, post_new = store.queue_posts([draft("spike:n0:1", [CHAT, NEW_CHAT])])
    [post_only_old] = store.queue_posts([draft("spike:n1:1", [CHAT])])

    store.move_chat(CHAT, NEW_CHAT)

    assert row(store, "outbox", only_old)["chat_id"] == NEW_CHAT
    assert row(store, "outbox", sent_old)["chat_id"] == CHAT  # history stays where it was
    duplicate = row(store, "outbox", both_old)
    assert (duplicate["chat_id"], duplicate["status"]) == (CHAT, "failed")
    assert duplicate["last_error"] == f"duplicate after migration to {NEW_CHAT}"
    assert row(store, "outbox", both_new)["status"] == "pending"
    assert sorted(pending(store)) == sorted([both_new, only_old])
    assert row(store, "posts", post_only_old)["chat_id"] == NEW_CHAT
    assert row(store, "posts", post_old)["status"] == "failed"
    assert [p.id for p in store.pending_posts()] == [post_new, post_only_old]


def test_a_paused_chat_is_not_due_until_resumed(store: Store) -> None:
    paused_alert, other_alert = queue(store, [CHAT, NEW_CHAT])
    paused_post, other_post = store.queue_posts([draft("digest:2026-11-23", [CHAT, NEW_CHAT])])
    assert store.pause_chat(CHAT, "forbidden")
    assert pending(store) == [other_alert]
    assert [p.id for p in store.pending_posts()] == [other_post]
    assert store.resume_chat(CHAT)
    assert pending(store) == [paused_alert, other_alert]
    assert [p.id for p in store.pending_posts()] == [paused_post, other_post]


# ---- posts ------------------------------------------------------------------------------

def test_a_post_reaches_each_chat_once_and_its_chart_is_stored_once(store: Store) -> None:
    first = store.queue_posts([draft("spike:n0:1", [CHAT, NEW_CHAT, CHAT], chart=PNG)])
    assert len(first) == 2
    assert store.queue_posts([draft("spike:n0:1", [CHAT, NEW_CHAT], chart=PNG)]) == []
    [late] = store.queue_posts([draft("spike:n0:1", [CHAT, "777"], chart=PNG)])
    assert store.has_posts("spike:n0:1") and not store.has_posts("spike:n0")
    posts = store.posts("spike:")
    assert [p.post.chat_id for p in posts] == [CHAT, NEW_CHAT, "777"]
    assert [p.post.id for p in posts] == [*first, late]
    assert {p.status for p in posts} == {"pending"} and store.posts("digest:") == []
    assert len(store.posts()) == 3
    chart_id = posts[0].post.chart_id
    assert chart_id is not None and posts[1].post.chart_id == chart_id
    assert posts[2].post.chart_id != chart_id  # a later draft brings its own
    chart = store.chart(chart_id)
    assert (chart.png, chart.file_id) == (PNG, None)
    store.mark_post_sent(first[0], 11, file_id="AgAD-file")
    store.mark_post_sent(first[1], 12, file_id="another")  # the first upload's id is kept
    assert store.chart(chart_id).file_id == "AgAD-file"
    assert [p.id for p in store.pending_posts()] == [late]
    assert store.queued_at("post", late) is not None and store.queued_at("post", 999) is None


def test_a_post_is_retried_failed_and_requeued(store: Store) -> None:
    [post_id] = store.queue_posts([draft("digest:2026-11-23", [CHAT])])
    store.mark_post_retry(post_id, "429", timedelta(minutes=5))
    assert store.pending_posts() == []
    assert [p.attempts for p in store.pending_posts(now=utcnow() + timedelta(minutes=6))] == [1]
    store.mark_post_failed(post_id, "400: chat not found")
    [entry] = store.outbox_entries()
    assert (entry.kind, entry.id, entry.title) == ("post", post_id, "spike digest:2026-11-23")
    assert store.requeue("post", [post_id]) == 1
    [again] = store.pending_posts()
    assert again.attempts == 0
    store.mark_post_failed(post_id, "400")
    assert store.drop("post") == 1 and store.posts() == []


def test_notices_are_sent_once(store: Store) -> None:
    store.add_notice([CHAT, NEW_CHAT], "feed Example paused")
    store.add_notice([], "nobody")
    notices = store.pending_notices()
    assert [(n.chat_id, n.text, n.attempts) for n in notices] == [
        (CHAT, "feed Example paused", 0), (NEW_CHAT, "feed Example paused", 0)]
    store.mark_notice(notices[0].id, "sent")
    store.mark_notice(notices[1].id, "failed")
    assert store.pending_notices() == []


# ---- pauses -----------------------------------------------------------------------------

def test_a_pause_is_probed_less_and_less_often(store: Store) -> None:
    before = utcnow()
    assert store.pause_chat(CHAT, "forbidden: bot was kicked")
    assert not store.pause_chat(CHAT, "again")  # nothing changes
    [paused] = store.paused_chats()
    assert (paused.chat_id, paused.reason, paused.probes) == (CHAT, "forbidden: bot was kicked", 0)
    assert paused.probe_at - paused.paused_at == timedelta(minutes=1)
    assert store.paused_chats(due=before) == []
    assert [p.chat_id for p in store.paused_chats(due=paused.probe_at)] == [CHAT]
    store.probe_failed(CHAT)
    store.probe_failed(CHAT)
    store.probe_failed("not paused")
    [probed] = store.paused_chats()
    assert probed.probes == 2 and probed.probe_at >= utcnow() + timedelta(minutes=3)
    assert store.resume_chat(CHAT) and not store.resume_chat(CHAT)
    assert store.paused_chats() == []
