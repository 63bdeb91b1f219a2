"""Digests: due times in the chat's zone, contents, never twice, missed while down, delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import telegram
import time_machine

from bot.app.schedule import DrainingScheduler, add_trend_jobs, digest_job_id, digest_trigger
from bot.config import DigestConfig, TrendsConfig
from bot.models import Article, Match, Passage
from bot.storage.store import Store
from bot.telegram.deliver import TelegramSink
from bot.telegram.render import render_digest
from bot.trends.charts import PNG_MAGIC
from bot.trends.digest import Digester, build_digest, digest_key, last_due
from tests.fake_telegram import FakeTelegram

ALMATY = ZoneInfo("Asia/Almaty")  # UTC+5
DAILY = DigestConfig(chat=4242, every="daily", time="09:00", timezone="Asia/Almaty")
WEEKLY = DigestConfig(chat="@news", every="weekly", time="18:30", timezone="Europe/Berlin",
                      weekday="fri")
DUE = datetime(2026, 11, 23, 9, 0, tzinfo=ALMATY)  # 04:00 UTC
TITLES = {"kz": "Kazakhstan wants to return to China", "kg": "Kyrgyz <homeland>",
          "pamirs": "Pamirs returned"}


def local(y: int, mo: int, d: int, h: int, mi: int = 0, zone: ZoneInfo = ALMATY) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone)


def test_last_due_in_the_chats_time_zone() -> None:
    assert last_due(DAILY, local(2026, 11, 23, 8, 59)) == local(2026, 11, 22, 9)
    assert last_due(DAILY, local(2026, 11, 23, 9)) == DUE
    assert last_due(DAILY, local(2026, 11, 24, 2)) == DUE
    assert last_due(DAILY, DUE).tzinfo == UTC
    berlin = ZoneInfo("Europe/Berlin")
    friday = local(2026, 11, 27, 18, 30, berlin)
    assert last_due(WEEKLY, friday) == friday
    assert last_due(WEEKLY, friday - timedelta(minutes=1)) == friday - timedelta(days=7)
    assert last_due(WEEKLY, friday + timedelta(days=6)) == friday
    # summer time: 18:30 in Berlin is 16:30 UTC in July, 17:30 UTC in November
    assert last_due(WEEKLY, local(2026, 7, 3, 19, 0, berlin)).hour == 16


def test_cron_trigger_fires_at_the_local_time() -> None:
    now = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert digest_trigger(DAILY).get_next_fire_time(None, now) == DUE
    nxt = digest_trigger(WEEKLY).get_next_fire_time(None, now)
    assert nxt == local(2026, 11, 27, 18, 30, ZoneInfo("Europe/Berlin"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


def record(store: Store, key: str, narrative: str, published: datetime, score: float = 0.7,
           source: str = "Sohu", title: str | None = None) -> None:
    with time_machine.travel(published + timedelta(minutes=5), tick=False):
        store.record_article(
            Article(key, source, f"https://e.org/{key}?a=1&b=2", title or f"Story {key}", "x",
                    published=published, language="zh"), 1,
            [Match(narrative, TITLES.get(narrative, "Long narrative title"), score, 0.6,
                   Passage(0, "ev"), "st")], [])


def fill(store: Store) -> None:
    day = DUE.astimezone(UTC)
    for i in range(5):  # in the digest's day
        record(store, f"kz{i}", "kz", day - timedelta(hours=2 + i), score=0.7 + i / 100,
               title="<b>Bold</b> & co" if i == 4 else None)
    for i in range(2):  # the day before
        record(store, f"kzb{i}", "kz", day - timedelta(hours=30 + i))
    record(store, "kg0", "kg", day - timedelta(hours=40))  # only the day before
    record(store, "late", "kz", day + timedelta(minutes=30))  # after the due time: next one


def test_digest_contents(store: Store) -> None:
    fill(store)
    digest = build_digest(store, DAILY, DUE, TITLES, TrendsConfig())
    text = render_digest(digest).text
    assert [(e.narrative_id, e.count, e.previous) for e in digest.entries] == [
        ("kz", 5, 2), ("kg", 0, 1), ("pamirs", 0, 0)]
    kz = digest.entries[0]
    assert [a.article_key for a in kz.articles] == ["kz4", "kz3", "kz2"]  # best score first
    assert text.plain.startswith("🗞 Daily digest · 22 Nov 09:00 – 23 Nov 2026 09:00 "
                                 "(Asia/Almaty)")
    assert "5 matches across 1 narrative(s) (previous day: 3, +67%)" in text.plain
    assert "Kazakhstan wants to return to China — 5 (+150%)" in text.plain
    assert "Kyrgyz <homeland> — 0 (−100%)" in text.plain
    assert "Quiet: Pamirs returned" in text.plain
    assert ('<a href="https://e.org/kz4?a=1&amp;b=2">&lt;b&gt;Bold&lt;/b&gt; &amp; co</a>'
            in text.html)
    assert "Kyrgyz &lt;homeland&gt;" in text.html
    assert digest.chart is not None and digest.chart.startswith(PNG_MAGIC)


def test_digest_stays_within_telegram_limits(store: Store) -> None:
    titles = {f"n{i:03d}": "Long narrative title " * 8 for i in range(120)}
    for i in range(120):
        record(store, f"x{i}", f"n{i:03d}", DUE.astimezone(UTC) - timedelta(hours=1),
               title="T" * 300)
    text = render_digest(build_digest(store, DAILY, DUE, titles, chart=False)).text
    assert len(text.html.encode("utf-16-le")) // 2 <= 4096
    assert len(text.plain.encode("utf-16-le")) // 2 <= 4096


async def test_never_twice_and_missed_while_down(store: Store) -> None:
    fill(store)
    digester = Digester(store, TrendsConfig(), lambda: TITLES,
                         lambda d, _language: render_digest(d))
    with time_machine.travel(DUE - timedelta(hours=3), tick=False):  # configured at 06:00
        assert await digester.run(DAILY) == []  # yesterday's 09:00 was before it existed
    with time_machine.travel(DUE, tick=False):
        ids = await digester.run(DAILY)
        assert len(ids) == 2  # the text and the chart
        assert await digester.run(DAILY) == []
        again = Digester(store, TrendsConfig(), lambda: TITLES,
                         lambda d, _language: render_digest(d))
        assert await again.run(DAILY) == []
    posts = store.posts(digest_key(DAILY, DUE))
    assert [p.post.chart_id is not None for p in posts] == [False, True]
    assert "Sent late" not in posts[0].post.plain

    # down from just after the 23 Nov digest until 26 Nov 15:00: one late digest (26 Nov)
    with time_machine.travel(DUE + timedelta(days=3, hours=6), tick=False):
        ids = await digester.run(DAILY)
    assert len(ids) >= 1
    keys = sorted({p.post.key.removesuffix(":chart") for p in store.posts("digest:")})
    assert keys == [digest_key(DAILY, DUE), digest_key(DAILY, DUE + timedelta(days=3))]
    [late] = [p.post for p in store.posts(digest_key(DAILY, DUE + timedelta(days=3)))
              if p.post.chart_id is None]
    assert "Sent late" in late.plain


async def test_digest_is_scheduled_at_local_time_and_delivered(
        store: Store, tg: FakeTelegram, bot: telegram.Bot) -> None:
    fill(store)
    digester = Digester(store, TrendsConfig(), lambda: TITLES,
                         lambda d, _language: render_digest(d))
    with time_machine.travel(DUE - timedelta(hours=1), tick=False):
        await digester.run(DAILY)  # the bot starts at 08:00 local: nothing due yet
        scheduler = DrainingScheduler(timezone=UTC)
        add_trend_jobs(scheduler, TrendsConfig(spikes=False), None, digester, [DAILY])
        job = scheduler.get_job(digest_job_id(DAILY))
        assert job is not None and scheduler.get_job("spikes") is None
        assert job.trigger.get_next_fire_time(None, datetime.now(UTC)) == DUE
    with time_machine.travel(DUE + timedelta(seconds=1), tick=False):
        await job.func(*job.args)  # what the scheduler runs at 09:00 Almaty
    sink = TelegramSink(bot, store)
    assert (await sink.deliver_pending()).sent == 2
    text, chart = tg.messages_to(4242)
    assert text.method == "sendMessage" and text.plain_text.startswith("🗞 Daily digest")
    assert "Story kz3" in text.plain_text
    assert chart.method == "sendPhoto" and chart.photo.startswith(PNG_MAGIC)
    assert chart.plain_text == "Matches per day by narrative, last 14 days (Asia/Almaty)"
    assert (await sink.deliver_pending()).sent == 0
