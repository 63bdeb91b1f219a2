"""Spike detection and rankings: robust z, synthetic series, calm-down, restarts, delivery."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import telegram
import time_machine

from bot.config import TrendsConfig
from bot.models import Article, Match, Passage
from bot.storage.audience import Audience
from bot.storage.database import Location, run
from bot.storage.store import Store, Volume
from bot.telegram.deliver import TelegramSink
from bot.telegram.format import format_change
from bot.telegram.render import render_spike
from bot.trends.charts import PNG_MAGIC, render_trend
from bot.trends.spikes import (
    SpikeCheck,
    SpikeMonitor,
    daily_series,
    decide,
    detect_spikes,
    measure,
    robust_z,
    top_narratives,
)
from tests.fake_telegram import FakeTelegram

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
CFG = TrendsConfig(min_z=3.5, calm_z=1.5, min_matches=5, min_sources=3)
CHANNEL, SUBSCRIBER, OTHER = "@narrative_alerts", "7", "8"


def vol(narrative: str, at: datetime, source: str = "Sohu", n: int = 1,
        language: str = "zh") -> Volume:
    return Volume(narrative, at.replace(minute=0, second=0, microsecond=0), source, language, n)


def baseline(narrative: str = "kz", per_day: int = 1, days: int = 14) -> list[Volume]:
    """`per_day` matches a day for `days` days before the current window."""
    return [vol(narrative, NOW - timedelta(days=d), f"Src{d % 2}", per_day)
            for d in range(1, days + 1)]


def surge(narrative: str = "kz", n: int = 9, sources: int = 4) -> list[Volume]:
    return [vol(narrative, NOW - timedelta(hours=i), f"Outlet{i % sources}",
                language="ru" if i % 3 else "zh") for i in range(n)]


# ---- robust z ------------------------------------------------------------------------------

def test_robust_z_uses_median_and_mad_with_a_poisson_floor() -> None:
    spread = [0, 10, 20, 0, 10, 20, 10]  # median 10, MAD 10
    assert robust_z(40, spread) == pytest.approx(30 / (1.4826 * 10))
    assert robust_z(5, [0] * 14) == 5.0  # flat zero: floor 1, never a division by zero
    assert robust_z(12, [4] * 14) == 4.0  # flat 4: floor sqrt(4) = 2
    assert robust_z(0, []) == 0.0
    assert robust_z(3, [3, 3, 3]) == 0.0
    assert robust_z(1, [100] * 14) < 0
    assert not math.isinf(robust_z(1000, [0] * 14))


# ---- detection on synthetic series -----------------------------------------------------------

def test_a_surge_from_many_sources_is_a_spike_with_its_numbers() -> None:
    [check] = measure([*baseline(), *surge()], {"kz": "KZ title"}, NOW, CFG)
    assert check.count == 9 and check.baseline == (1,) * 14 and check.baseline_median == 1
    assert check.z == 8.0 and check.is_spike(CFG)
    assert check.window_end == datetime(2026, 11, 23, 13, tzinfo=UTC)
    assert check.window_start == datetime(2026, 11, 22, 13, tzinfo=UTC)
    assert [s for s, _ in check.sources] == ["Outlet0", "Outlet1", "Outlet2", "Outlet3"]
    assert dict(check.languages) == {"ru": 6, "zh": 3}
    assert [c.narrative_id for c in detect_spikes([*baseline(), *surge()], {}, NOW, CFG)] == ["kz"]


@pytest.mark.parametrize(("volumes", "why"), [
    (surge(n=9, sources=1), "one source"),
    (surge(n=4, sources=4), "too few matches"),
    ([*baseline(per_day=9), *surge(n=9)], "usual volume"),
])
def test_not_a_spike(volumes: list[Volume], why: str) -> None:
    assert detect_spikes(volumes, {"kz": "KZ"}, NOW, CFG) == [], why


def test_every_narrative_is_measured_even_when_silent() -> None:
    checks = measure(surge("kg"), {"kz": "KZ", "pamirs": "P"}, NOW, CFG)
    assert [(c.narrative_id, c.count) for c in checks] == [("kg", 9), ("kz", 0), ("pamirs", 0)]
    assert checks[1].title == "KZ" and checks[0].title == "kg"


def test_hysteresis_alerts_once_until_calm() -> None:
    def check(z: float) -> SpikeCheck:
        return SpikeCheck("kz", "KZ", NOW, NOW, 9, (1,) * 14, 1.0, z, (("a", 3), ("b", 3),
                                                                        ("c", 3)), ())

    assert [c.z for c in decide([check(8)], [], CFG).new] == [8]
    assert decide([check(8)], ["kz"], CFG).new == []  # already flagged
    assert [c.z for c in decide([check(2)], ["kz"], CFG).ongoing] == [2]  # not calm yet
    assert [c.z for c in decide([check(1)], ["kz"], CFG).calmed] == [1]
    assert decide([check(2)], [], CFG) == decide([], [], CFG)  # calm, not flagged: nothing


def test_top_narratives_ranks_by_volume_with_change() -> None:
    volumes = [*surge("kz", n=9), vol("kg", NOW - timedelta(days=1), n=4),
               vol("kg", NOW - timedelta(days=9), n=2), vol("kz", NOW - timedelta(days=10), n=3),
               vol("old", NOW - timedelta(days=8), n=5)]
    top = top_narratives(volumes, {"kz": "KZ", "kg": "KG", "silent": "S"}, NOW, timedelta(days=7))
    assert [(e.narrative_id, e.count, e.previous) for e in top] == [
        ("kz", 9, 3), ("kg", 4, 2), ("old", 0, 5)]
    assert top[0].change == 2.0 and top[0].sources[0] == ("Outlet0", 3)
    assert [format_change(e.count, e.previous) for e in top] == ["+200%", "+100%", "−100%"]
    assert format_change(3, 0) == "new" and format_change(0, 0) == "—"
    assert format_change(5, 5) == "±0%"


def test_daily_series_in_a_time_zone_marks_the_spike_day() -> None:
    volumes = [*baseline(), *surge()]
    series = daily_series(volumes, end=NOW, days=20, by="language", timezone="Asia/Almaty",
                          narrative_id="kz", title="KZ", spikes=CFG)
    assert series.days[-1] == date(2026, 11, 23) and len(series.days) == 20
    assert series.spike_days == {date(2026, 11, 23)}  # 12:30 UTC is 17:30 in Almaty
    assert series.total == 9 + 14  # the whole baseline lies within the 20 days
    assert sum(series.stacks["ru"]) == 6


# ---- the monitor: state, restarts, time --------------------------------------------------------

def record(store: Store, key: str, source: str, published: datetime,
           narrative: str = "kz") -> None:
    store.record_article(
        Article(key=key, source=source, url=f"https://e.org/{key}", title=f"T {key}",
                text="x", published=published, language="ru"), 1,
        [Match(narrative, "Kazakhstan wants to return to China", 0.8, 0.6, Passage(0, "ev"),
               "st")], [])


@pytest.fixture
def location(state_location: Location) -> Location:
    """The state, on each backend in turn."""
    return state_location


@pytest.fixture
def store(location: Location) -> Iterator[Store]:
    s = Store(location)
    yield s
    s.close()


def monitor(store: Store, channel: str | None = CHANNEL) -> SpikeMonitor:
    audience = Audience(store, channel)
    return SpikeMonitor(store, CFG, lambda: {"kz": "Kazakhstan wants to return to China"},
                        audience.narrative_chats,
                        lambda s, _language: (render_spike(s).html, render_spike(s).plain),
                        chart=render_trend)


def fill(store: Store) -> None:
    for d in range(1, 15):
        record(store, f"base{d}", f"Src{d % 2}", NOW - timedelta(days=d))
    for i in range(9):
        record(store, f"surge{i}", f"Outlet{i % 4}", NOW - timedelta(hours=i))


async def test_a_spike_is_alerted_once_across_restarts_until_it_calms_down(
        store: Store, location: Location) -> None:
    audience = Audience(store, CHANNEL)
    audience.register_chat(SUBSCRIBER, "private")
    audience.subscribe(SUBSCRIBER, ["kz"])
    audience.register_chat(OTHER, "private")
    audience.subscribe(OTHER, ["pamirs"])
    audience.mute(SUBSCRIBER, "Outlet0", None, None)  # source mutes do not hide a spike
    with time_machine.travel(NOW, tick=False):
        fill(store)
        decision = await monitor(store).check()
    assert [s.narrative_id for s in decision.new] == ["kz"]
    posts = store.posts("spike:kz:")
    assert [(p.post.chat_id, p.status) for p in posts] == [(CHANNEL, "pending"),
                                                            (SUBSCRIBER, "pending")]
    assert posts[0].post.chart_id is not None
    assert posts[0].post.chart_id == posts[1].post.chart_id
    assert "9 matches in the last 24 h" in posts[0].post.plain
    assert store.spike_states()["kz"].active

    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        assert (await monitor(store).check()).new == []  # still spiking: quiet
    store.close()
    reopened = Store(location)  # a restart
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        decision = await monitor(reopened).check()
    assert decision.new == [] and [c.narrative_id for c in decision.ongoing] == ["kz"]
    assert len(reopened.posts("spike:")) == 2

    with time_machine.travel(NOW + timedelta(days=2), tick=False):  # the surge is over
        decision = await monitor(reopened).check()
    assert [c.narrative_id for c in decision.calmed] == ["kz"]
    assert not reopened.spike_states()["kz"].active

    later = NOW + timedelta(days=3)
    with time_machine.travel(later, tick=False):  # a new surge is a new spike
        for i in range(12):
            record(reopened, f"again{i}", f"Outlet{i % 5}", later - timedelta(hours=i))
        decision = await monitor(reopened).check()
    assert [s.narrative_id for s in decision.new] == ["kz"]
    assert len(reopened.posts("spike:")) == 4
    reopened.close()


async def test_spike_flag_without_anyone_to_tell_still_prevents_repeats(store: Store) -> None:
    with time_machine.travel(NOW, tick=False):
        fill(store)
        assert len((await monitor(store, channel=None).check()).new) == 1
        assert (await monitor(store, channel=None).check()).new == []
    assert store.posts("spike:") == []


# ---- delivery through the fake Bot API -------------------------------------------------------

async def test_spike_alert_reaches_channel_and_subscriber_once_as_a_photo(
        store: Store, tg: FakeTelegram, bot: telegram.Bot) -> None:
    audience = Audience(store, CHANNEL)
    audience.register_chat(SUBSCRIBER, "private")
    audience.subscribe(SUBSCRIBER, ["*"])
    with time_machine.travel(NOW, tick=False):
        fill(store)
        await monitor(store).check()
    sink = TelegramSink(bot, store, audience=audience)
    report = await sink.deliver_pending()
    assert report.sent == 2
    for chat in (CHANNEL, int(SUBSCRIBER)):
        [message] = tg.messages_to(chat)
        assert message.method == "sendPhoto"
        assert message.plain_text.startswith("📈 Spike: Kazakhstan wants to return to China")
        assert "9 matches in the last 24 h, usually 1" in message.plain_text
        assert "4 sources: Outlet0 3 · Outlet1 2 · Outlet2 2 · Outlet3 2" in message.plain_text
    assert (await sink.deliver_pending()).sent == 0  # nothing twice
    with time_machine.travel(NOW + timedelta(minutes=20), tick=False):
        await monitor(store).check()
    assert (await sink.deliver_pending()).sent == 0
    assert len(tg.sent) == 2
    # the second upload was avoided: the chart's file_id was kept after the first send
    photos = [p for m, p in tg.requests if m == "sendPhoto"]
    assert photos[0]["photo"].startswith(PNG_MAGIC) and tg.sent[0].photo == photos[0]["photo"]
    assert photos[1]["photo"].startswith("fake-photo")


async def test_spike_post_survives_a_crash_mid_send_and_a_hostile_title(
        store: Store, tg: FakeTelegram, bot: telegram.Bot) -> None:
    from bot.storage.store import PostDraft

    rendered = render_spike(SpikeCheck("x", 'Narr <script> & "q"', NOW, NOW, 9, (0,) * 14, 0.0,
                                       9.0, (("S<b>", 9),), (("ru", 9),)))
    assert "&lt;script&gt;" in rendered.html and len(rendered.html) <= 1024
    [post_id] = store.queue_posts([PostDraft("spike", "spike:x:1", (SUBSCRIBER,), rendered.html,
                                             rendered.plain)])
    assert store.queue_posts([PostDraft("spike", "spike:x:1", (SUBSCRIBER,), "again",
                                        "again")]) == []  # never queued twice
    store.mark_post_sending(post_id)  # killed here
    assert store.recover_interrupted() == 1
    assert (await TelegramSink(bot, store).deliver_pending()).sent == 1
    [message] = tg.messages_to(int(SUBSCRIBER))
    assert message.method == "sendMessage" and 'Narr <script> & "q"' in message.plain_text
    with store._read() as db:
        assert tuple(run(db, "SELECT interrupted, status FROM posts").one()) == (1, "sent")


def test_render_spike_png_is_made_from_the_narrative_series(store: Store) -> None:
    with time_machine.travel(NOW, tick=False):
        fill(store)
    png = render_trend(daily_series(store.volumes(NOW - timedelta(days=40)), end=NOW, days=30,
                                    by="source", narrative_id="kz", title="KZ", spikes=CFG))
    assert png.startswith(PNG_MAGIC)
