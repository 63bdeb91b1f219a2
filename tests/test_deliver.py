"""Outbox → Telegram: bot.telegram.deliver against the fake Bot API, a real Store, the real PTB Bot.

Every test asserts on what the fake server recorded (requests, accepted messages and how Telegram
would show them) and on the outbox rows in SQLite.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import telegram
import time_machine

from bot.models import Alert, Article, Match, Passage
from bot.storage.audience import Audience
from bot.storage.database import run
from bot.storage.store import PostDraft, Store
from bot.telegram.buttons import ButtonSigner
from bot.telegram.deliver import ConsoleSink, TelegramSink
from bot.telegram.format import MAX_MESSAGE_UTF16
from bot.telegram.render import render_alert
from tests.fake_telegram import (
    AcceptThenStall,
    ConnectionReset,
    Error,
    FakeTelegram,
    RetryAfter,
    ServerError,
    utf16_len,
)

CHAT = "4242"
OTHER = "5151"

HOSTILE_NARRATIVE = 'Narr <script>alert("n")</script> & <b>bold</b> 1<2'
HOSTILE_SOURCE = "Src <b>&amp; Co</b> <script>"
HOSTILE_TITLE = "Title <script>alert('t')</script> & <b>x</b> \"q\" > y"
HOSTILE_URL = 'https://example.com/a?x=1&y="2"&z=<b>&amp;w'
HOSTILE_EVIDENCE = "Evidence <script>evil()</script> & <b>claim</b> 1 < 2 > 0 &lt;"


# ---- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


def queue(store: Store, chat_ids: Sequence[str], *, key: str = "art-1",
          source: str = "Example Feed", title: str = "A headline",
          url: str = "https://example.com/story", evidence: str = "Some evidence passage.",
          narratives: Sequence[str] = ("Narrative one",),
          published: datetime | None = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)) -> list[int]:
    """Record an article with one match per narrative title; one pending alert per chat."""
    matches = [Match(narrative_id=f"n{i}", narrative_title=name, score=0.9 - i / 100,
                     threshold=0.5, passage=Passage(index=i, text=f"{evidence} #{i}"),
                     statement=f"statement {i}")
               for i, name in enumerate(narratives)]
    article = Article(key=key, source=source, url=url, title=title, text=evidence,
                      published=published)
    ids = store.record_article(article, passages=3, matches=matches, routes=list(chat_ids))
    assert len(ids) == len(chat_ids)
    return ids


def row(store: Store, alert_id: int, table: str = "outbox") -> dict[str, Any]:
    with store._read() as db:
        return dict(run(db, f"SELECT * FROM {table} WHERE id = :id",
                        {"id": alert_id}).mappings().one())


def send_requests(tg: FakeTelegram) -> list[dict]:
    return [params for method, params in tg.requests if method == "sendMessage"]


def pending_ids(store: Store, now: datetime | None = None) -> list[int]:
    return [a.id for a in store.pending_alerts(now=now)]


def only_alert(store: Store) -> Alert:
    [alert] = store.pending_alerts()
    return alert


@contextmanager
def later(seconds: float) -> Iterator[None]:
    """Wall-clock time (what the store's not_before is compared with) jumps ahead."""
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True):
        yield


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.hrefs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href"))


def tags_of(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser


# ---- render_alert ---------------------------------------------------------------------------

async def test_render_escapes_feed_strings_and_telegram_shows_them_verbatim(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    queue(store, [CHAT], source=HOSTILE_SOURCE, title=HOSTILE_TITLE, url=HOSTILE_URL,
          evidence=HOSTILE_EVIDENCE, narratives=[HOSTILE_NARRATIVE])
    alert = only_alert(store)
    rendered = render_alert(alert)

    # Only the renderer's own markup survives as tags; everything from the feed is text.
    assert "<script" not in rendered.html
    assert "<b>bold" not in rendered.html and "<b>x" not in rendered.html
    assert "<b>claim" not in rendered.html and "<b>&amp; Co" not in rendered.html
    parsed = tags_of(rendered.html)
    assert parsed.tags == ["b", "a", "blockquote"]
    assert parsed.hrefs == [HOSTILE_URL]  # the quoted attribute decodes back to the exact URL
    # The plain rendering keeps the original characters.
    for original in (HOSTILE_NARRATIVE, HOSTILE_SOURCE, HOSTILE_TITLE, HOSTILE_URL,
                     HOSTILE_EVIDENCE):
        assert original in rendered.plain

    tg.strict_ampersand = True  # a bare "&" would be refused
    report = await TelegramSink(bot, store).deliver_pending()

    assert report.sent == 1 and report.failed == 0 and report.retried == 0
    [sent] = tg.sent
    assert sent.parse_mode == "HTML" and sent.text == rendered.html
    shown = sent.plain_text or ""
    for original in (HOSTILE_NARRATIVE, HOSTILE_SOURCE, HOSTILE_TITLE, HOSTILE_EVIDENCE):
        assert original in shown
    assert "<script>" in shown and "&" in shown and "<b>" in shown
    assert sent.link_preview_options == {"is_disabled": True}


@pytest.mark.parametrize("filler", ["😀", "漢字", "👩‍👩‍👧 ok ", "a&<b>"],
                         ids=["emoji", "cjk", "zwj-emoji", "escapes"])
async def test_huge_evidence_and_five_narratives_fit_in_one_message(
        tg: FakeTelegram, bot: telegram.Bot, store: Store, filler: str) -> None:
    evidence = (filler * 20_000)[:20_000]
    narratives = [f"Narrative {n} 🚩 {filler * 3}" for n in range(5)]
    queue(store, [CHAT], title=filler * 2_000, evidence=evidence, narratives=narratives,
          url="https://example.com/" + "x" * 200)
    alert = only_alert(store)
    assert len(alert.evidence) == 5 and len(alert.evidence[0].passage) > 20_000
    rendered = render_alert(alert)

    assert utf16_len(rendered.html) <= MAX_MESSAGE_UTF16
    assert utf16_len(rendered.plain) <= MAX_MESSAGE_UTF16
    assert all(name in rendered.plain for name in narratives)
    assert rendered.plain.count("« ") == 5  # every narrative keeps a (shortened) quote

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.sent == 1
    [sent] = tg.sent
    assert sent.parse_mode == "HTML"
    assert utf16_len(sent.plain_text or "") <= MAX_MESSAGE_UTF16
    assert all(name in (sent.plain_text or "") for name in narratives)
    assert sent.link_preview_options == {"is_disabled": True}
    assert row(store, alert.id)["status"] == "sent"


async def test_very_long_article_url_still_renders_within_limit(store: Store) -> None:
    queue(store, [CHAT], url="https://example.com/?q=" + "x" * 5_000)
    rendered = render_alert(only_alert(store))
    assert utf16_len(rendered.plain) <= MAX_MESSAGE_UTF16


# ---- TelegramSink: the happy path ---------------------------------------------------------

async def test_one_pending_alert_is_sent_once_and_marked_sent(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    [alert_id] = queue(store, [CHAT])
    alert = only_alert(store)
    sink = TelegramSink(bot, store)

    report = await sink.deliver_pending()

    assert (report.sent, report.retried, report.failed, report.paused_for) == (1, 0, 0, 0.0)
    assert len(send_requests(tg)) == 1
    [sent] = tg.sent
    assert sent.method == "sendMessage" and sent.chat_id == int(CHAT)
    assert sent.parse_mode == "HTML" and sent.text == render_alert(alert).html
    assert sent.link_preview_options == {"is_disabled": True}
    stored = row(store, alert_id)
    assert stored["status"] == "sent" and stored["message_id"] == sent.message_id
    assert stored["attempts"] == 1 and stored["last_error"] is None
    assert stored["sent_at"] is not None
    assert store.pending_alerts() == []

    again = await sink.deliver_pending()

    assert (again.sent, again.retried, again.failed) == (0, 0, 0)
    assert len(send_requests(tg)) == 1 and len(tg.sent) == 1


async def test_one_article_for_two_chats_reaches_each_chat_once(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    ids = queue(store, [CHAT, OTHER])

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.sent == 2
    assert len(tg.messages_to(CHAT)) == 1 and len(tg.messages_to(OTHER)) == 1
    assert [row(store, i)["status"] for i in ids] == ["sent", "sent"]


# ---- rate limits and transient failures -----------------------------------------------------

@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize("timedelta_env", ["", "1"], ids=["retry_after-int", "retry_after-td"])
async def test_retry_after_pauses_the_round_and_postpones_the_alert(
        tg: FakeTelegram, bot: telegram.Bot, store: Store, monkeypatch: pytest.MonkeyPatch,
        timedelta_env: str) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", timedelta_env)
    [first] = queue(store, [CHAT], key="art-1")
    [second] = queue(store, [OTHER], key="art-2")
    tg.inject("sendMessage", RetryAfter(2))
    t0 = datetime.now(UTC)

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.paused_for == 2 and report.sent == 0 and report.retried == 1
    assert tg.sent == []
    assert len(send_requests(tg)) == 1  # the second alert was not attempted in this round
    stored = row(store, first)
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert "retry after 2" in stored["last_error"]
    assert row(store, second)["attempts"] == 0
    # not_before ≈ now + 2 s (the store keeps whole seconds)
    assert pending_ids(store, now=t0) == [second]
    assert pending_ids(store, now=t0 + timedelta(seconds=1)) == [second]
    assert pending_ids(store, now=t0 + timedelta(seconds=3)) == [first, second]

    # The next round, right away: only the alert that was not rate limited goes out.
    report = await TelegramSink(bot, store).deliver_pending()
    assert report.sent == 1 and [m.chat_id for m in tg.sent] == [int(OTHER)]
    # Once the pause is over, the postponed alert goes out too, once.
    with later(3):
        report = await TelegramSink(bot, store).deliver_pending()
    assert report.sent == 1
    assert [m.chat_id for m in tg.sent] == [int(OTHER), int(CHAT)]
    assert row(store, first)["status"] == "sent" and row(store, first)["last_error"] is None
    assert len(send_requests(tg)) == 3


@pytest.mark.parametrize("fault", [ServerError(502), ServerError(500), ConnectionReset()],
                         ids=["502", "500", "connection-reset"])
async def test_transient_failure_is_retried_later_and_delivered_once(
        tg: FakeTelegram, bot: telegram.Bot, store: Store,
        fault: ServerError | ConnectionReset) -> None:
    [alert_id] = queue(store, [CHAT])
    tg.inject("sendMessage", fault)
    sink = TelegramSink(bot, store)
    t0 = datetime.now(UTC)

    report = await sink.deliver_pending()

    assert (report.sent, report.retried, report.failed, report.paused_for) == (0, 1, 0, 0.0)
    assert tg.sent == [] and len(send_requests(tg)) == 1
    stored = row(store, alert_id)
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert stored["last_error"].startswith("NetworkError")
    assert stored["message_id"] is None
    assert pending_ids(store, now=t0) == []  # backing off
    assert pending_ids(store, now=t0 + timedelta(minutes=5)) == [alert_id]

    # Before the back-off is over, nothing is tried.
    report = await sink.deliver_pending()
    assert report.sent == 0 and len(send_requests(tg)) == 1

    with later(300):
        report = await sink.deliver_pending()
        assert report.sent == 1
        report = await sink.deliver_pending()
        assert report.sent == 0

    [sent] = tg.sent
    assert sent.chat_id == int(CHAT) and sent.parse_mode == "HTML"
    assert len(send_requests(tg)) == 2
    stored = row(store, alert_id)
    assert stored["status"] == "sent" and stored["attempts"] == 2
    assert stored["message_id"] == sent.message_id and stored["last_error"] is None


async def test_server_errors_and_429s_never_exhaust_an_alert_only_the_deadline(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """The audit's case: 19 × 429 then a 500 used to give up after 20 attempts. Transient
    errors retry for as long as the deadline allows, however many attempts that takes; past
    it the alert fails and the admins are told; `outbox retry` sends it again."""
    group = "-100500"  # not paced like a private chat
    [alert_id] = queue(store, [group])
    tg.inject("sendMessage", RetryAfter(1), times=19)
    tg.inject("sendMessage", ServerError(500), times=6)
    sink = TelegramSink(bot, store, max_attempts=2, admins=["42"], deadline=timedelta(days=7))

    for round_ in range(25):
        with later(3700 * (round_ + 1)):
            await sink.deliver_pending()
        assert row(store, alert_id)["status"] == "pending", round_
    assert row(store, alert_id)["attempts"] == 25 and tg.sent == []

    tg.inject("sendMessage", ServerError(502), times=1)
    with later(8 * 86400):
        report = await sink.deliver_pending()
    assert report.failed == 1
    stored = row(store, alert_id)
    assert stored["status"] == "failed" and "undelivered for 7 days" in stored["last_error"]
    [notice] = tg.messages_to(42)  # the admins are told, in the same round
    assert "not delivered" in (notice.text or "")

    assert store.requeue("alert") == 1
    with later(8 * 86400):
        report = await sink.deliver_pending()
    assert report.sent == 1 and row(store, alert_id)["status"] == "sent"
    assert len(tg.messages_to(group)) == 1


async def test_a_request_telegram_refuses_gives_up_after_max_attempts(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    [alert_id] = queue(store, [CHAT])
    tg.inject("sendMessage", Error(400, "Bad Request: wrong parameter"), times=2)
    sink = TelegramSink(bot, store, max_attempts=2, admins=["42"])
    await sink.deliver_pending()
    assert row(store, alert_id)["status"] == "pending"
    with later(300):
        report = await sink.deliver_pending()
    assert report.failed == 1
    stored = row(store, alert_id)
    assert stored["status"] == "failed" and "gave up after 2 attempts" in stored["last_error"]
    [notice] = tg.messages_to(42)
    assert "outbox retry" in (notice.text or "")


# ---- Telegram refuses the markup or the length ----------------------------------------------

async def test_unparsable_html_falls_back_to_plain_text(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    [alert_id] = queue(store, [CHAT], title=HOSTILE_TITLE, evidence=HOSTILE_EVIDENCE)
    rendered = render_alert(only_alert(store))
    tg.inject("sendMessage", Error(
        400, 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 7'))

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.sent == 1 and report.failed == 0 and report.retried == 0
    first, second = send_requests(tg)
    assert first.get("parse_mode") == "HTML"
    assert "parse_mode" not in second or second["parse_mode"] in (None, "")
    [sent] = tg.sent
    assert sent.parse_mode in (None, "") and sent.text == rendered.plain
    assert sent.plain_text == rendered.plain
    assert HOSTILE_TITLE in sent.plain_text and HOSTILE_EVIDENCE in sent.plain_text
    assert sent.link_preview_options == {"is_disabled": True}
    stored = row(store, alert_id)
    assert stored["status"] == "sent" and stored["message_id"] == sent.message_id


@pytest.mark.parametrize("url", ["https://example.com/story",
                                 "https://example.com/?q=" + "x" * 3_800],
                         ids=["short", "long-url"])
async def test_message_too_long_is_resent_as_shorter_plain_text(
        tg: FakeTelegram, bot: telegram.Bot, store: Store, url: str) -> None:
    [alert_id] = queue(store, [CHAT], url=url, evidence="Evidence. " * 500,
                       narratives=[f"Narrative {n}" for n in range(5)])
    rendered = render_alert(only_alert(store))
    tg.inject("sendMessage", Error(400, "Bad Request: message is too long"))

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.sent == 1 and report.failed == 0
    assert [p.get("parse_mode") for p in send_requests(tg)] == ["HTML", None]
    [sent] = tg.sent
    assert sent.parse_mode is None
    assert utf16_len(sent.text or "") <= MAX_MESSAGE_UTF16
    assert len(sent.text or "") <= 3500  # code points: see the xfail below for UTF-16 units
    assert utf16_len(sent.text or "") < utf16_len(rendered.plain)
    assert (sent.text or "").startswith("🚨 Narrative 0")
    assert sent.link_preview_options == {"is_disabled": True}
    stored = row(store, alert_id)
    assert stored["status"] == "sent" and stored["message_id"] == sent.message_id


async def test_too_long_fallback_is_cut_in_utf16_units(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    [alert_id] = queue(store, [CHAT], url="https://example.com/" + "😀" * 950)
    rendered = render_alert(only_alert(store))
    assert len(rendered.plain) < utf16_len(rendered.plain)  # emoji are two UTF-16 units
    tg.inject("sendMessage", Error(400, "Bad Request: message is too long"))

    report = await TelegramSink(bot, store).deliver_pending()

    assert len(send_requests(tg)) == 2
    assert report.sent == 1 and row(store, alert_id)["status"] == "sent"
    [sent] = tg.sent
    assert utf16_len(sent.text or "") <= min(3500, utf16_len(rendered.plain) * 2 // 3)


# ---- chats that cannot be reached ----------------------------------------------------------

async def test_blocked_chat_fails_and_other_chats_still_get_theirs(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    blocked, ok = queue(store, [CHAT, OTHER])
    tg.block(CHAT)
    sink = TelegramSink(bot, store)

    report = await sink.deliver_pending()

    assert report.failed == 1 and report.sent == 1 and report.retried == 0
    assert tg.messages_to(CHAT) == [] and len(tg.messages_to(OTHER)) == 1
    stored = row(store, blocked)
    assert stored["status"] == "failed" and stored["message_id"] is None
    assert "blocked" in stored["last_error"].lower()
    assert row(store, ok)["status"] == "sent"
    assert store.pending_alerts(now=datetime.now(UTC) + timedelta(days=1)) == []

    await sink.deliver_pending()
    assert len(send_requests(tg)) == 2  # the failed alert is not tried again


async def test_unknown_chat_is_paused_not_failed(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    gone, ok = queue(store, ["-333", OTHER])
    tg.forget("-333")

    report = await TelegramSink(bot, store).deliver_pending()

    assert report.failed == 0 and report.sent == 1
    stored = row(store, gone)
    assert stored["status"] == "pending"
    assert "chat not found" in stored["last_error"].lower()
    assert [p.chat_id for p in store.paused_chats()] == ["-333"]
    assert row(store, ok)["status"] == "sent"
    assert tg.messages_to("-333") == []
    assert store.pending_alerts(now=datetime.now(UTC) + timedelta(days=1)) == []  # paused


async def test_migrated_group_is_followed_to_the_supergroup(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    old, new = "-555", -1_005_550_000_001
    [a1] = queue(store, [old], key="art-1")
    [a2] = queue(store, [old], key="art-2")
    tg.migrate(old, new)
    sink = TelegramSink(bot, store)

    report = await sink.deliver_pending()

    assert report.sent == 0 and report.failed == 0 and tg.sent == []
    for alert_id in (a1, a2):
        stored = row(store, alert_id)
        assert stored["status"] == "pending" and stored["chat_id"] == str(new)

    report = await sink.deliver_pending()

    assert report.sent == 2
    assert len(tg.messages_to(new)) == 2 and tg.messages_to(old) == []
    assert [m.parse_mode for m in tg.sent] == ["HTML", "HTML"]
    for alert_id in (a1, a2):
        stored = row(store, alert_id)
        assert stored["status"] == "sent" and stored["chat_id"] == str(new)
    assert (await sink.deliver_pending()).sent == 0
    assert len(tg.sent) == 2


async def test_migration_onto_a_chat_that_already_has_the_alert_settles(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    old, new = "-556", "-1005560000001"
    queue(store, [old, new])
    tg.migrate(old, int(new))
    sink = TelegramSink(bot, store)

    for _ in range(3):
        await sink.deliver_pending()

    assert len(tg.messages_to(new)) == 1 and tg.messages_to(old) == []
    assert store.pending_alerts() == []


# ---- posts (spike alerts, digests) meet the same faults -------------------------------------

GROUP, SUPERGROUP = "-777", -1_007_770_000_001


@pytest.mark.parametrize(("fault", "status", "error"), [
    (lambda tg: tg.migrate(GROUP, SUPERGROUP), "pending", "chat migrated to"),
    (lambda tg: tg.block(GROUP), "paused", "forbidden: Forbidden: bot was kicked"),
    (lambda tg: tg.forget(GROUP), "paused", f"chat not found: {GROUP}"),
    (lambda tg: tg.inject("sendMessage", AcceptThenStall(4.0)), "pending",
     "TimedOut, outcome unknown"),
], ids=["migrated", "kicked", "chat-not-found", "timeout-after-accept"])
async def test_post_faults_end_as_they_do_for_alerts(
        tg: FakeTelegram, bot: telegram.Bot, store: Store,
        fault: Callable[[FakeTelegram], None], status: str, error: str) -> None:
    audience = Audience(store, None)
    audience.register_chat(GROUP, "group")
    [post_id] = store.queue_posts([PostDraft("digest", "digest:1", (GROUP,), "<b>Digest</b>",
                                             "Digest")])
    fault(tg)
    sink = TelegramSink(bot, store, audience=audience)

    report = await sink.deliver_pending()

    retried = status == "pending"
    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    stored = row(store, post_id, "posts")
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert error in stored["last_error"]
    migrated = str(SUPERGROUP) if "migrated" in error else GROUP
    assert stored["chat_id"] == migrated
    assert audience.is_active(migrated)  # a kicked bot pauses the group, never forgets it
    assert [p.chat_id for p in store.paused_chats()] == ([GROUP] if status == "paused" else [])
    assert stored["interrupted"] == int("outcome unknown" in error)
    with later(300):
        again = await sink.deliver_pending()
    assert again.sent == int(retried) and again.failed == 0
    stored = row(store, post_id, "posts")
    assert stored["status"] == ("sent" if retried else "pending")  # paused: waits, not lost
    # Accepted before the timeout, so resent: the one duplicate the outcome-unknown rule allows.
    assert len(tg.messages_to(migrated)) == (2 if "outcome unknown" in error else int(retried))


# ---- ConsoleSink ----------------------------------------------------------------------------

async def test_console_sink_prints_plain_alerts_and_marks_them_sent(store: Store) -> None:
    first, second = queue(store, [CHAT, OTHER], title=HOSTILE_TITLE, evidence=HOSTILE_EVIDENCE)
    alerts = {a.id: a for a in store.pending_alerts()}
    stream = io.StringIO()
    sink = ConsoleSink(store, stream=stream)

    report = await sink.deliver_pending()

    assert report.sent == 2 and report.failed == 0
    out = stream.getvalue()
    assert f"--- alert for {CHAT}\n{render_alert(alerts[first]).plain}\n" in out
    assert f"--- alert for {OTHER}\n{render_alert(alerts[second]).plain}\n" in out
    assert HOSTILE_TITLE in out and HOSTILE_EVIDENCE in out
    assert "&lt;" not in out.replace(HOSTILE_EVIDENCE, "")  # plain text, not HTML
    assert not re.search(r"</?(blockquote|a)\b", out)
    for alert_id in (first, second):
        stored = row(store, alert_id)
        assert stored["status"] == "sent" and stored["message_id"] is None
    assert store.pending_alerts() == []

    again = await sink.deliver_pending()
    assert again.sent == 0 and stream.getvalue() == out


# ---- buttons, audience and pacing ------------------------------------------------------------

async def test_alert_carries_signed_buttons(tg: FakeTelegram, bot: telegram.Bot,
                                            store: Store) -> None:
    signer = ButtonSigner.from_store(store)
    [alert_id] = queue(store, [CHAT])
    await TelegramSink(bot, store, signer=signer).deliver_pending()
    [sent] = tg.sent
    buttons = [b for row in sent.reply_markup["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["👍 relevant", "🔇 mute source",
                                            "👎 not this narrative"]
    presses = [signer.decode(b["callback_data"], CHAT) for b in buttons]
    assert {p.alert_id for p in presses} == {alert_id}


async def test_blocked_subscriber_is_deactivated(tg: FakeTelegram, bot: telegram.Bot,
                                                 store: Store) -> None:
    audience = Audience(store, None)
    audience.register_chat(CHAT, "private")
    audience.subscribe(CHAT, ["kz"])
    queue(store, [CHAT])
    tg.block(CHAT)
    await TelegramSink(bot, store, audience=audience).deliver_pending()
    assert not audience.is_active(CHAT)
    assert audience.routes("Feed", ["kz"]) == {}


async def test_private_chat_gets_at_most_one_message_a_second(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    queue(store, [CHAT], key="a")
    queue(store, [CHAT], key="b")
    queue(store, [CHAT], key="c")
    await TelegramSink(bot, store).deliver_pending()
    times = [m.at for m in tg.messages_to(int(CHAT))]
    assert len(times) == 3
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times))


async def test_read_timeout_after_accept_is_resent_and_counted(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """Telegram accepted the message but the answer never came: the bot cannot know, so it sends
    again (never lose an alert) and counts the send as interrupted: the one duplicate it allows."""
    [alert_id] = queue(store, [CHAT])
    tg.inject("sendMessage", AcceptThenStall(4.0))
    sink = TelegramSink(bot, store)
    first = await sink.deliver_pending()
    assert first.retried == 1 and len(tg.sent) == 1
    assert row(store, alert_id)["status"] == "pending" and row(store, alert_id)["interrupted"] == 1
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=5), tick=True):
        second = await sink.deliver_pending()
    assert second.sent == 1 and row(store, alert_id)["status"] == "sent"
    duplicates = len(tg.messages_to(int(CHAT))) - 1
    assert duplicates == 1 == store.counts()["alerts_interrupted"]
