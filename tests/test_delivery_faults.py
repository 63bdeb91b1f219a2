"""The second fault audit's delivery findings, each against the fake Bot API and a real Store:
an unreachable channel pauses and resumes, a garbled answer is an unknown outcome that is
counted, a stored error never holds the token, a stop mid-round leaves nothing `sending`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import telegram
import time_machine

from bot.models import Article, Match, Passage
from bot.storage.database import run
from bot.storage.store import Store
from bot.telegram.deliver import TelegramSink
from tests.fake_telegram import AcceptThenGarble, AcceptThenStall, Error, FakeTelegram

CHANNEL = "@alerts_channel"
ADMIN = "42"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


def queue(store: Store, chats: list[str], key: str) -> list[int]:
    match = Match(narrative_id="n0", narrative_title="Narrative", score=0.9, threshold=0.5,
                  passage=Passage(index=0, text="Evidence."), statement="statement")
    article = Article(key=key, source="Feed", url=f"https://example.com/{key}", title=key,
                      text="Evidence.", published=datetime(2026, 11, 23, tzinfo=UTC))
    return store.record_article(article, passages=1, matches=[match], routes=chats)


def row(store: Store, alert_id: int, table: str = "outbox") -> dict[str, Any]:
    with store._read() as db:
        return dict(run(db, f"SELECT * FROM {table} WHERE id = :id",
                        {"id": alert_id}).mappings().one())


@contextmanager
def later(seconds: float) -> Iterator[None]:
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True):
        yield


async def test_kicked_from_the_channel_pauses_it_tells_admins_once_and_resumes(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """Finding 2: a 403 for 15 s used to fail every alert due in that window for good."""
    sink = TelegramSink(bot, store, admins=[ADMIN])
    [waiting] = queue(store, [CHANNEL], "older")
    tg.inject("sendMessage", Error(502, "Bad Gateway"))
    await sink.deliver_pending()  # the older alert now waits on back-off
    tg.block(CHANNEL)
    first = queue(store, [CHANNEL, "5151"], "a")
    second = queue(store, [CHANNEL], "b")
    with later(60):
        report = await sink.deliver_pending()
    assert report.failed == 0 and report.sent == 1  # the private chat still gets its alert
    tries = len([p for m, p in tg.requests if m == "sendMessage" and p["chat_id"] == CHANNEL])
    with later(70):
        await sink.deliver_pending()  # paused: nothing tried, the probe is not due yet
    assert len([p for m, p in tg.requests
                if m == "sendMessage" and p["chat_id"] == CHANNEL]) == tries
    for alert_id in (waiting, first[0], second[0]):
        assert row(store, alert_id)["status"] == "pending"
    with later(200):
        await sink.deliver_pending()  # probe: still kicked
    assert [p.chat_id for p in store.paused_chats()] == [CHANNEL]
    told = [m.text or "" for m in tg.messages_to(int(ADMIN))]
    assert len(told) == 1 and "paused" in told[0]

    tg.restore(CHANNEL)  # the bot is added back
    with later(3600):
        report = await sink.deliver_pending()
    assert report.sent == 3 and store.paused_chats() == []
    assert len(tg.messages_to(CHANNEL)) == 3
    told = [m.text or "" for m in tg.messages_to(int(ADMIN))]
    assert len(told) == 2 and "paused" in told[0] and "resume" in told[1]  # told once each


async def test_garbled_answer_is_an_unknown_outcome_and_every_duplicate_is_counted(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """Finding 4: 4 garbled answers gave 4 duplicates, 0 counted."""
    [alert_id] = queue(store, ["4242"], "g")
    tg.inject("sendMessage", AcceptThenGarble(), times=4)
    sink = TelegramSink(bot, store)
    for round_ in range(5):
        with later(3700 * round_):
            await sink.deliver_pending()
    stored = row(store, alert_id)
    assert stored["status"] == "sent"
    duplicates = len(tg.messages_to(4242)) - 1
    assert duplicates == 4 == stored["interrupted"] == store.counts()["alerts_interrupted"]
    assert "garbled answer, outcome unknown" not in (stored["last_error"] or "")


async def test_an_error_page_that_echoes_the_token_is_stored_redacted(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """Finding 13: outbox.last_error stored `/bot123456:SECRET…/sendMessage`."""
    [alert_id] = queue(store, ["4242"], "t")
    secret = tg.token.split(":", 1)[1]
    tg.inject("sendMessage", Error(502, f"Bad Gateway: upstream /bot{tg.token}/sendMessage"))
    tg.inject("sendMessage", Error(400, f"Bad Request: {secret} rejected"))
    sink = TelegramSink(bot, store)
    await sink.deliver_pending()
    first = row(store, alert_id)["last_error"]
    with later(300):
        await sink.deliver_pending()
    second = row(store, alert_id)["last_error"]
    dump = "\n".join(store.db.iterdump())
    assert "Bad Gateway" in first and "[REDACTED]" in first and "[REDACTED]" in second
    assert secret not in dump and tg.token not in dump


async def test_a_stop_mid_round_finishes_the_send_in_flight_and_starts_no_other(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    """Finding 5 (the sink's half; the process is tested in test_reliability_processes)."""
    ids = [queue(store, ["-100200"], f"s{i}")[0] for i in range(3)]
    tg.inject("sendMessage", AcceptThenStall(0.5))
    sink = TelegramSink(bot, store)
    round_ = asyncio.create_task(sink.deliver_pending())
    await tg.wait_for(lambda: len(tg.sent) == 1)
    sink.stop()
    report = await round_
    assert report.sent == 1
    assert [row(store, i)["status"] for i in ids] == ["sent", "pending", "pending"]


async def test_a_send_cancelled_mid_flight_is_left_pending_and_counted(
        tg: FakeTelegram, bot: telegram.Bot, store: Store) -> None:
    [alert_id] = queue(store, ["-100200"], "c")
    tg.inject("sendMessage", AcceptThenStall(5.0))
    round_ = asyncio.create_task(TelegramSink(bot, store).deliver_pending())
    await tg.wait_for(lambda: len(tg.sent) == 1)
    round_.cancel()
    with pytest.raises(asyncio.CancelledError):
        await round_
    stored = row(store, alert_id)
    assert stored["status"] == "pending" and stored["interrupted"] == 1
