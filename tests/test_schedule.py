"""bot.app.schedule: which jobs build_scheduler makes, triggers and how the jobs work together.

The pipeline is real (feeds on a local FeedServer, a real Store in tmp_path, the session model);
the sink is a recorder. Matching runs without centering and with a high threshold: an item whose
title is a narrative statement word for word scores 1.0 and alerts, ordinary news does not, and
no background mean has to be computed. The back-off arithmetic of bot.pipeline is here too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.app.pipeline import MAX_BACKOFF, Pipeline, backoff_delay
from bot.app.schedule import DELIVERY_JOB, build_scheduler, feed_job_id, feed_trigger
from bot.config import Config, FeedConfig
from bot.telegram.deliver import DeliveryReport
from tests.conftest import OpenApp, WriteConfig
from tests.feed_server import FeedServer

CHANNEL = "@narrative_alerts"
MATCHING = "[matching]\ncentering = false\nthreshold = 0.95\n"
SLOW_DELIVERY = '[schedule]\ndelivery_interval = "1h"\n'
CLAIM = ("Казахстан хочет вернуться в состав Китая.",  # a kz-return-to-china statement
         "Блогер повторил старый тезис.")
ORDINARY = ("City council approves budget for road repairs",
            "The council voted on Tuesday to spend more on fixing potholes next spring.")


def rss(*items: tuple[str, str]) -> bytes:
    """A minimal RSS 2.0 feed with one <item> per (title, description)."""
    body = "".join(
        f"<item><title>{escape(title)}</title><link>http://news.example/{n}</link>"
        f"<guid>urn:item:{n}</guid><description>{escape(text)}</description>"
        f"<pubDate>Mon, 23 Nov 2026 08:0{n}:00 GMT</pubDate></item>"
        for n, (title, text) in enumerate(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Test</title><link>http://news.example/</link><description>t</description>"
            f"{body}</channel></rss>").encode()


class RecordingSink:
    """An AlertSink that records when it was called; its first call can be held open."""

    def __init__(self, hold_first: asyncio.Event | None = None) -> None:
        self.calls: list[float] = []
        self.hold_first = hold_first

    async def deliver_pending(self) -> DeliveryReport:
        self.calls.append(time.monotonic())
        if self.hold_first is not None and len(self.calls) == 1:
            await self.hold_first.wait()
        return DeliveryReport()

    def stop(self) -> None:
        pass


async def eventually(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait until `predicate()` holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


MakePipeline = Callable[..., Awaitable[Pipeline]]


@pytest.fixture
async def make_pipeline(write_config: WriteConfig,
                        open_app: OpenApp) -> AsyncIterator[MakePipeline]:
    """A real Pipeline over `feeds`, as the App wires it: the session model, a Store in
    tmp_path."""
    async with AsyncExitStack() as stack:

        async def make(feeds: list[tuple[str, str]], extra: str = "") -> Pipeline:
            config = write_config(feeds, extra=MATCHING + extra)
            app = await stack.enter_async_context(open_app(config))
            return app.pipeline

        yield make


@pytest.fixture
async def started() -> AsyncIterator[list[AsyncIOScheduler]]:
    """Schedulers a test starts; each is shut down afterwards."""
    schedulers: list[AsyncIOScheduler] = []
    yield schedulers
    for scheduler in schedulers:
        if scheduler.running:
            scheduler.shutdown(wait=False)
    await asyncio.sleep(0)


def feed(interval: str, name: str = "x") -> FeedConfig:
    return FeedConfig.model_validate(
        {"name": name, "url": "http://127.0.0.1/feed.xml", "interval": interval})


# ---- the jobs ---------------------------------------------------------------------------------

async def test_one_job_per_enabled_feed_and_the_delivery_job(
        make_pipeline: MakePipeline, feeds: FeedServer,
        started: list[AsyncIOScheduler]) -> None:
    disabled = f'[[feeds]]\nname = "Off"\nurl = "{feeds.url("/off.xml")}"\nenabled = false\n'
    before = datetime.now(UTC)
    pipeline = await make_pipeline(
        [("Alpha", feeds.url("/a.xml")), ("Beta", feeds.url("/b.xml"))], extra=disabled)
    config: Config = pipeline.config
    assert [f.name for f in config.feeds] == ["Off", "Alpha", "Beta"]

    scheduler = build_scheduler(pipeline, RecordingSink())
    after = datetime.now(UTC)

    assert not scheduler.running
    assert {job.id for job in scheduler.get_jobs()} == {"feed:Alpha", "feed:Beta", DELIVERY_JOB}
    started.append(scheduler)
    scheduler.start(paused=True)  # job defaults are applied when the jobs are really added
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"feed:Alpha", "feed:Beta", DELIVERY_JOB}
    assert feed_job_id(config.feeds[1]) == "feed:Alpha"
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True
        assert before <= job.next_run_time <= after  # every job runs at start-up
    for name in ("Alpha", "Beta"):
        job = jobs[f"feed:{name}"]
        assert job.args[0].name == name
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == timedelta(minutes=10) and job.trigger.jitter == 60
    delivery = jobs[DELIVERY_JOB].trigger
    assert isinstance(delivery, IntervalTrigger)
    assert delivery.interval == config.schedule.delivery_interval == timedelta(seconds=5)


def test_feed_trigger_ten_minutes_with_ten_percent_jitter() -> None:
    trigger = feed_trigger(feed("10m"), 0.1)
    previous = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    gaps: list[float] = []
    for _ in range(40):
        fire = trigger.get_next_fire_time(previous, previous)
        assert fire is not None
        gaps.append((fire - previous).total_seconds())
        previous = fire

    assert all(600 - 60 <= gap <= 600 + 60 for gap in gaps), gaps
    assert len({round(gap, 3) for gap in gaps}) > 1  # the jitter is really applied


def test_feed_trigger_five_seconds_has_no_jitter_to_speak_of() -> None:
    trigger = feed_trigger(feed("5s"), 0.1)  # 10 % of 5 s rounds to no jitter at all
    previous = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for _ in range(5):
        fire = trigger.get_next_fire_time(previous, previous)
        assert fire is not None and fire - previous == timedelta(seconds=5)
        previous = fire
    assert feed_trigger(feed("10m"), 0.0).jitter is None


# ---- the jobs running together ----------------------------------------------------------------

async def test_feeds_are_polled_at_start_up_and_a_match_wakes_delivery_at_once(
        make_pipeline: MakePipeline, feeds: FeedServer,
        started: list[AsyncIOScheduler]) -> None:
    feeds.route("/claim.xml", rss(CLAIM, ORDINARY))
    pipeline = await make_pipeline([("Claims", feeds.url("/claim.xml"))], extra=SLOW_DELIVERY)
    sink = RecordingSink()
    scheduler = build_scheduler(pipeline, sink)
    started.append(scheduler)

    scheduler.start()

    await eventually(lambda: feeds.hits("/claim.xml") == 1 and len(sink.calls) >= 1, 5)
    await eventually(lambda: pipeline.store.counts()["alerts_pending"] == 1, 30)
    queued = time.monotonic()
    await eventually(lambda: len(sink.calls) == 2, 2)  # not in an hour: now
    assert sink.calls[1] - queued < 2
    assert pipeline.store.counts()["matches"] == 1  # the claim alerted, the ordinary item not
    job = scheduler.get_job(DELIVERY_JOB)
    assert job is not None and job.next_run_time > datetime.now(UTC) + timedelta(minutes=55)
    assert feeds.hits("/claim.xml") == 1  # the next poll is ten minutes away


async def test_a_poll_without_matches_leaves_delivery_to_its_interval(
        make_pipeline: MakePipeline, feeds: FeedServer,
        started: list[AsyncIOScheduler]) -> None:
    feeds.route("/plain.xml", rss(ORDINARY))
    url = feeds.url("/plain.xml")
    pipeline = await make_pipeline([("Plain", url)], extra=SLOW_DELIVERY)
    sink = RecordingSink()
    scheduler = build_scheduler(pipeline, sink)
    started.append(scheduler)

    scheduler.start()

    await eventually(lambda: pipeline.store.feed_health("Plain", url).articles_seen == 1, 30)
    await asyncio.sleep(0.5)
    assert len(sink.calls) == 1  # the start-up delivery only
    assert pipeline.store.counts()["matches"] == 0


async def test_a_match_found_while_delivering_is_delivered_right_after(
        make_pipeline: MakePipeline, feeds: FeedServer,
        started: list[AsyncIOScheduler]) -> None:
    feeds.route("/claim.xml", rss(CLAIM))
    pipeline = await make_pipeline([("Claims", feeds.url("/claim.xml"))], extra=SLOW_DELIVERY)
    release = asyncio.Event()
    sink = RecordingSink(hold_first=release)  # the start-up delivery is slow (a busy channel)
    scheduler = build_scheduler(pipeline, sink)
    started.append(scheduler)

    scheduler.start()
    await eventually(lambda: pipeline.store.counts()["alerts_pending"] == 1, 30)
    await asyncio.sleep(0.1)  # the poll's wake-up arrives while delivery still runs
    release.set()

    # The alert was queued after the running delivery read the outbox: it needs another run.
    await eventually(lambda: len(sink.calls) == 2, 3)


# ---- back-off (bot.pipeline) ------------------------------------------------------------------

def test_backoff_doubles_from_the_interval_and_is_capped_at_six_hours() -> None:
    ten = timedelta(minutes=10)
    delays = [backoff_delay(ten, failures, None) for failures in range(1, 9)]
    assert delays == [timedelta(minutes=m) for m in (10, 20, 40, 80, 160, 320, 360, 360)]
    assert delays[-1] == MAX_BACKOFF == timedelta(hours=6)
    assert backoff_delay(ten, 0, None) == ten
    assert backoff_delay(ten, 30, None) == MAX_BACKOFF


def test_backoff_of_a_feed_slower_than_the_cap_is_its_interval() -> None:
    twelve = timedelta(hours=12)
    assert [backoff_delay(twelve, n, None) for n in (1, 2, 5)] == [twelve] * 3


def test_backoff_a_longer_retry_after_wins() -> None:
    ten = timedelta(minutes=10)
    assert backoff_delay(ten, 1, 7200) == timedelta(hours=2)
    assert backoff_delay(ten, 7, 8 * 3600) == timedelta(hours=8)
    assert backoff_delay(ten, 1, 30) == ten  # a shorter one does not shorten the back-off
    assert backoff_delay(ten, 3, 0) == timedelta(minutes=40)
    assert backoff_delay(ten, 1, 10**9) == timedelta(days=1)  # Retry-After is capped at a day


def test_backoff_stays_capped_after_weeks_of_failures() -> None:
    ten = timedelta(minutes=10)
    assert backoff_delay(ten, 38, None) == MAX_BACKOFF
    assert backoff_delay(ten, 39, None) == MAX_BACKOFF
    assert backoff_delay(ten, 1000, None) == MAX_BACKOFF


async def test_a_long_dead_feed_keeps_failing_quietly(
        make_pipeline: MakePipeline, feeds: FeedServer) -> None:
    url = feeds.url("/gone.xml")  # 404
    pipeline = await make_pipeline([("Gone", url)])
    store = pipeline.store
    store.feed_health("Gone", url)
    for _ in range(38):  # about nine days of a dead feed: 10m, 20m, …, then every 6 h
        store.record_feed_error("Gone", "HTTP 404", datetime.now(UTC) - timedelta(seconds=1))

    report = await pipeline.poll_feed(pipeline.config.feeds[0])

    assert report.status == "error" and "404" in (report.error or "")
    health = store.feed_health("Gone", url)
    assert health.consecutive_errors == 39
    assert health.retry_at is not None
    assert health.retry_at > datetime.now(UTC) + MAX_BACKOFF - timedelta(minutes=1)
