"""APScheduler wiring: one job per feed at its interval (with jitter), and the delivery job.

Every job runs with max_instances=1 and coalescing, so a slow feed never piles up runs. Every
feed is polled once at start-up. A poll that queued alerts wakes the delivery job at once.
"""

from __future__ import annotations

import asyncio
import logging
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


def build_scheduler(pipeline: Pipeline, sink: AlertSink) -> AsyncIOScheduler:
    """A scheduler, not yet started, with every enabled feed and the delivery job."""
    config = pipeline.config
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
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
            scheduler.add_job(poll, feed_trigger(feed, config.schedule.jitter), args=[feed],
                              id=feed_job_id(feed), name=f"poll {feed.name}", next_run_time=now)
    scheduler.add_job(deliver, IntervalTrigger(
        seconds=config.schedule.delivery_interval.total_seconds()), id=DELIVERY_JOB,
        name="deliver alerts", next_run_time=now)
    return scheduler
