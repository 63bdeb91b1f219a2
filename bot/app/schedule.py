"""APScheduler wiring: one job per feed at its interval (with jitter), the delivery job, the
spike check and one cron job per digest.

Every job runs with max_instances=1 and coalescing, so a slow feed never piles up runs. Every
feed is polled once at start-up. A poll that queued alerts, a spike check that found a spike
and a digest that was queued wake the delivery job at once. Digest jobs fire at their local
time (CronTrigger in the digest's time zone, DST included) and also once at start-up, which
sends a digest missed while the bot was down (see bot.trends.digest). With `[state] backups`,
an online backup of the state every `backup_interval` (the newest N kept).

On PostgreSQL the feed and digest jobs only defer a poll or a digest to the work queue
(bot.app.queue: `worker` processes, or `run` itself inline, do them); the delivery job, every
`delivery_interval`, also sends what workers queued, and holds the state's delivery lock for
each round, so that two `run`s on one database never send the same row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.app.pipeline import Pipeline, PollReport
from bot.app.queue import WorkQueue, delivery_round
from bot.config import DigestConfig, FeedConfig, StateConfig, TrendsConfig
from bot.storage.integrity import rotate_backup
from bot.storage.store import Store
from bot.telegram.deliver import AlertSink
from bot.trends.digest import Digester
from bot.trends.spikes import SpikeMonitor

log = logging.getLogger(__name__)

DELIVERY_JOB = "deliver"
SPIKE_JOB = "spikes"
BACKUP_JOB = "backup"


def feed_job_id(feed: FeedConfig) -> str:
    return f"feed:{feed.name}"


def feed_trigger(feed: FeedConfig, jitter: float) -> IntervalTrigger:
    seconds = feed.interval.total_seconds()
    return IntervalTrigger(seconds=seconds, jitter=int(seconds * jitter) or None)


class DrainingScheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An AsyncIOScheduler that can let its running polls and deliveries finish before a stop:
    APScheduler's own shutdown(wait=True) does not wait for coroutine jobs."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._running: set[asyncio.Task[None]] = set()
        self._wake: Callable[[], None] | None = None
        self._on_stop: list[Callable[[], None]] = []  # told first: finish what is in flight
        self.add_feed: Callable[[FeedConfig], None] = lambda feed: None  # set by build_scheduler

    def remove_feed(self, name: str) -> None:
        """Stop polling the feed named `name` (a feed removed from the chat)."""
        if self.get_job(f"feed:{name}") is not None:
            self.remove_job(f"feed:{name}")

    def deliver_now(self) -> None:
        """Run the delivery job now (again, if it is running): something was queued."""
        if self._wake is not None:
            self._wake()

    def tracked(self, job: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def run(*args: object) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await job(*args)
            finally:
                if task is not None:
                    self._running.discard(task)

        return run

    async def stop(self, timeout: float) -> None:
        """No new runs; wait up to `timeout` s for the running ones, then shut down. A
        delivery round ends after its send in flight (an alert is never left `sending`)."""
        self.pause()
        for tell in self._on_stop:
            tell()
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
        self.shutdown(wait=False)


def build_scheduler(pipeline: Pipeline, sink: AlertSink,
                    on_poll: Callable[[PollReport], None] | None = None,
                    queue: WorkQueue | None = None) -> DrainingScheduler:
    """A scheduler, not yet started, with every enabled feed and the delivery job;
    `on_poll` sees every poll's report (metrics); with `queue`, polls are deferred to it."""
    config = pipeline.config
    scheduler = DrainingScheduler(timezone=UTC, job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": 60})
    now = datetime.now(UTC)
    more = asyncio.Event()  # set when a poll queued alerts: deliver (again) at once

    async def deliver() -> None:
        if queue is None:
            return await deliver_rounds()
        with delivery_round(pipeline.store.engine) as held:
            if held:  # else another `run` on this database delivers now
                await deliver_rounds()
        return None

    async def deliver_rounds() -> None:
        while True:
            more.clear()
            report = await sink.deliver_pending()
            if report.sent or report.failed or report.retried:
                log.info("delivery: %d sent, %d to retry, %d failed", report.sent,
                         report.retried, report.failed)
            if not more.is_set() or report.paused_for:
                return

    def wake() -> None:
        more.set()
        # Runs delivery now; if it is already running, `more` makes it go round again.
        if scheduler.get_job(DELIVERY_JOB) is not None:
            scheduler.modify_job(DELIVERY_JOB, next_run_time=datetime.now(UTC))

    scheduler._wake = wake
    scheduler._on_stop.append(sink.stop)

    async def poll(feed: FeedConfig) -> None:
        if queue is not None:
            if not await queue.defer_poll(feed):
                log.debug("feed %s: a poll is already waiting", feed.name)
            return
        report = await pipeline.poll_feed(feed)
        if on_poll is not None:
            on_poll(report)
        if report.matches:
            wake()

    def add_feed(feed: FeedConfig) -> None:
        if feed.enabled:
            scheduler.add_job(scheduler.tracked(poll), feed_trigger(feed, config.schedule.jitter),
                              args=[feed], id=feed_job_id(feed), name=f"poll {feed.name}",
                              next_run_time=datetime.now(UTC), replace_existing=True)

    scheduler.add_feed = add_feed
    for feed in pipeline.feeds():  # config.toml's, then those added from the chat or OPML
        add_feed(feed)
    scheduler.add_job(scheduler.tracked(deliver), IntervalTrigger(
        seconds=config.schedule.delivery_interval.total_seconds()), id=DELIVERY_JOB,
        name="deliver alerts", next_run_time=now)
    return scheduler


def digest_job_id(digest: DigestConfig) -> str:
    day = f" {digest.weekday}" if digest.every == "weekly" else ""
    return f"digest:{digest.chat_id}:{digest.every}{day} {digest.time} {digest.timezone}"


def digest_trigger(digest: DigestConfig) -> CronTrigger:
    hour, minute = (int(part) for part in digest.time.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(digest.timezone),
                       day_of_week=digest.weekday if digest.every == "weekly" else None)


def add_trend_jobs(scheduler: DrainingScheduler, trends: TrendsConfig,
                   monitor: SpikeMonitor | None, digester: Digester | None,
                   digests: list[DigestConfig], queue: WorkQueue | None = None) -> None:
    """The spike check every `check_interval` (first one a minute after start-up, when the
    feeds had their first poll) and one cron job per digest (also run at start-up); with
    `queue`, a digest is deferred to it."""
    now = datetime.now(UTC)
    if monitor is not None and trends.spikes:
        async def check_spikes() -> None:
            decision = await monitor.check()
            if decision.new:
                scheduler.deliver_now()

        scheduler.add_job(scheduler.tracked(check_spikes), IntervalTrigger(
            seconds=trends.check_interval.total_seconds()), id=SPIKE_JOB,
            name="check volume spikes", next_run_time=now + timedelta(minutes=1))
    if digester is None:
        return
    for digest in digests:
        async def send_digest(cfg: DigestConfig) -> None:
            if queue is not None:
                await queue.defer_digest(digest_job_id(cfg))
            elif await digester.run(cfg):
                scheduler.deliver_now()

        # misfire grace: a digest a little late (busy loop, suspend) still goes out
        scheduler.add_job(scheduler.tracked(send_digest), digest_trigger(digest), args=[digest],
                          id=digest_job_id(digest), name=f"digest for {digest.chat_id}",
                          next_run_time=now, misfire_grace_time=3600, replace_existing=True)


def add_backup_job(scheduler: DrainingScheduler, store: Store, state: StateConfig) -> None:
    """With `[state] backups = N`: a backup every `backup_interval` (the first one at once),
    the N newest kept. A failed backup is logged and told to the admins like any disk error."""
    if state.backups <= 0:
        return

    async def take_backup() -> None:
        try:
            target = await asyncio.to_thread(rotate_backup, store.db, state.path, state.backups)
        except Exception:
            log.exception("state backup failed")
            return
        log.info("state backed up to %s", target)

    scheduler.add_job(scheduler.tracked(take_backup), IntervalTrigger(
        seconds=state.backup_interval.total_seconds()), id=BACKUP_JOB, name="back up state",
        next_run_time=datetime.now(UTC))
