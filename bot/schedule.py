"""APScheduler wiring: one job per feed at its interval (with jitter), and the delivery job.

Every job runs with max_instances=1 and coalescing, so a slow feed never piles up runs. Every
feed is polled once at start-up. A poll that queued alerts wakes the delivery job at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import FeedConfig
from bot.deliver import AlertSink
from bot.pipeline import Pipeline

log = logging.getLogger(__name__)

DELIVERY_JOB = "deliver"


def feed_job_id(feed: FeedConfig) -> str:
    return f"feed:{feed.name}"


def feed_trigger(feed: FeedConfig, jitter: float) -> IntervalTrigger:
    seconds = feed.interval.total_seconds()
    return IntervalTrigger(seconds=seconds, jitter=int(seconds * jitter) or None)


class DrainingScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler that can let its running polls and deliveries finish before a stop:
    APScheduler's own shutdown(wait=True) does not wait for coroutine jobs."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._running: set[asyncio.Task] = set()

    def tracked(self, job: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def run(*args: object) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await job(*args)
            finally:
                self._running.discard(task)  # type: ignore[arg-type]

        return run

    async def stop(self, timeout: float) -> None:
        """No new runs; wait up to `timeout` s for the running ones, then shut down."""
        self.pause()
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
        self.shutdown(wait=False)


def build_scheduler(pipeline: Pipeline, sink: AlertSink) -> DrainingScheduler:
    """A scheduler, not yet started, with every enabled feed and the delivery job."""
    config = pipeline.config
    scheduler = DrainingScheduler(timezone=UTC, job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": 60})
    now = datetime.now(UTC)
    more = asyncio.Event()  # set when a poll queued alerts: deliver (again) at once

    async def deliver() -> None:
        while True:
            more.clear()
            report = await sink.deliver_pending()
            if report.sent or report.failed or report.retried:
                log.info("delivery: %d sent, %d to retry, %d failed", report.sent,
                         report.retried, report.failed)
            if not more.is_set() or report.paused_for:
                return

    async def poll(feed: FeedConfig) -> None:
        report = await pipeline.poll_feed(feed)
        if report.matches:
            more.set()
            # Runs delivery now; if it is already running, `more` makes it go round again.
            scheduler.modify_job(DELIVERY_JOB, next_run_time=datetime.now(UTC))

    for feed in config.feeds:
        if feed.enabled:
            scheduler.add_job(scheduler.tracked(poll), feed_trigger(feed, config.schedule.jitter),
                              args=[feed], id=feed_job_id(feed), name=f"poll {feed.name}",
                              next_run_time=now)
    scheduler.add_job(scheduler.tracked(deliver), IntervalTrigger(
        seconds=config.schedule.delivery_interval.total_seconds()), id=DELIVERY_JOB,
        name="deliver alerts", next_run_time=now)
    return scheduler
