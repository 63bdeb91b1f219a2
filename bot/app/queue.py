"""The work queue of a PostgreSQL deployment: procrastinate's jobs in the state's own database.

`run` schedules and defers; `narrative-bot worker` processes (on any number of machines), or
`run` itself with `[queue] inline = true`, do the heavy work as tasks:

- `poll_feed(name)`: fetch, parse, find the unseen articles, read their full text, defer one
  `judge_article` per article, then record the feed's HTTP state (deferred first: a worker
  dying in between leaves the articles unseen, polled again, never lost). One pending poll
  per feed (`queueing_lock`) and one running (`lock`).
- `judge_article(feed, article)`: embed, match, record the article with its matches and
  alerts in one transaction. Recording is idempotent (an article already stored records
  nothing), so a retried job never duplicates a match or an alert. A feed's articles are
  judged one after the other (`lock`), oldest first, so that its alerts keep their order.
- `build_digest(digest)`: gather and queue one digest (the digester skips one queued already).
- `retry_stalled_jobs` (every minute, and when a worker starts): the jobs of a worker that
  stopped sending heartbeats (killed, machine lost) are run again.

A failing task is retried a few times with growing waits. Delivery stays in `run`: workers
only write outbox rows, which the delivery job picks up (see bot.app.schedule).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import procrastinate
from procrastinate import exceptions as procrastinate_errors
from procrastinate.job_context import JobContext
from procrastinate.schema import SchemaManager
from sqlalchemy import Engine, make_url, text

from bot.config import Config, DigestConfig, FeedConfig
from bot.models import Article
from bot.storage.database import Database
from bot.storage.postgres import lock_for_migration, shown

log = logging.getLogger(__name__)

POLL_RETRY = procrastinate.RetryStrategy(max_attempts=3, wait=10)
JUDGE_RETRY = procrastinate.RetryStrategy(max_attempts=5, exponential_wait=3)  # 3 … 81 s
DIGEST_RETRY = procrastinate.RetryStrategy(max_attempts=5, exponential_wait=5)
HEARTBEAT_S = 10.0  # a worker's heartbeat; one silent for STALLED_S is taken for dead
STALLED_S = 30.0
SHUTDOWN_GRACE_S = 60.0  # a stopping worker lets its jobs finish this long, then aborts them
FETCH_POLL_S = 5.0  # LISTEN/NOTIFY wakes workers at once; this is the fallback
STALLED_TASK = "retry_stalled_jobs"
DELIVERY_LOCK = 0x6E62_646C  # "nbdl": one delivery round at a time over one state


def conninfo(url: str) -> str:
    """The state's URL as libpq takes it (procrastinate's psycopg pool)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def apply_queue_schema(config: Config) -> bool:
    """procrastinate's tables, created once in the state's database (also when `run` and the
    workers start together: under the state's migration lock); True if created now."""
    if config.state.url is None:
        return False
    database = Database(config.state.url)
    try:
        return apply_schema_on(database.engine)
    finally:
        database.close()


def apply_schema_on(engine: Engine) -> bool:
    with engine.connect() as db, db.begin():
        lock_for_migration(db)
        if db.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
            return False
        # straight to psycopg, without parameters: it runs the file's many statements (and
        # leaves their `%` alone); SQLAlchemy would pass an empty parameter list
        raw = db.connection.dbapi_connection
        assert raw is not None
        raw.cursor().execute(SchemaManager.get_schema())
    log.info("work queue created in the state's database")
    return True


@contextmanager
def delivery_round(engine: Engine) -> Iterator[bool]:
    """True while this process holds the state's delivery lock (two `run`s on one database:
    one delivers at a time, so each outbox row has one writer); False: another one does."""
    with engine.connect() as db:
        held = bool(db.execute(text("SELECT pg_try_advisory_lock(:k)"),
                               {"k": DELIVERY_LOCK}).scalar())
        db.commit()
        try:
            yield held
        finally:
            if held:
                db.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": DELIVERY_LOCK})
                db.commit()


@dataclass(frozen=True)
class Work:
    """What the tasks do, given by the App that runs them (a worker, or `run` inline)."""

    feeds: Callable[[], list[FeedConfig]]  # config.toml's and the stored ones
    poll: Callable[[FeedConfig, Callable[[FeedConfig, list[Article]], Awaitable[None]]],
                   Awaitable[object]]
    judge: Callable[[FeedConfig, Article], Awaitable[int]]
    digest: Callable[[DigestConfig], Awaitable[list[int]]]
    digests: Sequence[DigestConfig]
    digest_id: Callable[[DigestConfig], str]


def article_args(article: Article) -> dict[str, Any]:
    """An article as a job's JSON arguments."""
    args = asdict(article)
    args["published"] = article.published.isoformat() if article.published else None
    return args


def article_from(args: dict[str, Any]) -> Article:
    published = args.get("published")
    return Article(**{**args, "published": datetime.fromisoformat(published)
                      if published else None})


class WorkQueue:
    """The procrastinate App over the state's database and the bot's tasks on it."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.shown = shown(url)  # never the password
        if logging.getLogger("procrastinate").level == logging.NOTSET:
            # its start and end lines repeat ours (_log_job: one line per job)
            logging.getLogger("procrastinate").setLevel(logging.WARNING)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(url), min_size=1, max_size=pool_size,
            kwargs={"connect_timeout": 10}))
        self._work: Work | None = None
        self._poll = self.app.task(name="poll_feed", retry=POLL_RETRY)(self._poll_feed)
        self._judge = self.app.task(name="judge_article", retry=JUDGE_RETRY)(self._judge_article)
        self._digest = self.app.task(name="build_digest", retry=DIGEST_RETRY)(self._build_digest)
        stalled = self.app.task(name=STALLED_TASK, queueing_lock=STALLED_TASK)(
            self._retry_stalled_periodically)
        self.app.periodic(cron="* * * * *", periodic_id=STALLED_TASK)(stalled)

    # -- the deferring side (`run`'s schedule) ----------------------------------------------

    async def defer_poll(self, feed: FeedConfig) -> bool:
        """Queue a poll of `feed`; False when one is already waiting (not an error)."""
        key = f"feed:{feed.name}"
        try:
            await self._poll.configure(lock=key, queueing_lock=key).defer_async(name=feed.name)
        except procrastinate_errors.AlreadyEnqueued:
            return False
        return True

    async def defer_digest(self, digest_id: str) -> bool:
        key = f"digest:{digest_id}"
        try:
            await self._digest.configure(lock=key, queueing_lock=key).defer_async(
                digest=digest_id)
        except procrastinate_errors.AlreadyEnqueued:
            return False
        return True

    async def _defer_articles(self, feed: FeedConfig, articles: list[Article]) -> None:
        for article in articles:  # oldest first: the feed's lock keeps this order
            # AlreadyEnqueued: a poll before this one queued it, and it waits still
            with suppress(procrastinate_errors.AlreadyEnqueued):
                await self._judge.configure(
                    lock=f"judge:{feed.name}", queueing_lock=f"article:{article.key}",
                ).defer_async(feed=feed.name, article=article_args(article))

    # -- the working side --------------------------------------------------------------------

    def serve(self, work: Work) -> None:
        """Tasks run by this process do `work`."""
        self._work = work

    async def run_worker(self, concurrency: int, *, name: str = "worker",
                         grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Process jobs until cancelled; cancelling lets the running jobs finish (up to
        `grace_s`), and a job cut off then is retried."""
        await self.retry_stalled()
        await self.app.run_worker_async(
            concurrency=concurrency, name=name, install_signal_handlers=False,
            update_heartbeat_interval=HEARTBEAT_S, stalled_worker_timeout=STALLED_S,
            fetch_job_polling_interval=FETCH_POLL_S, delete_jobs="successful",
            shutdown_graceful_timeout=grace_s, worker_middleware=[_log_job])

    async def retry_stalled(self) -> int:
        """Jobs left `doing` by workers that stopped sending heartbeats: to do again."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S))
        retried = 0
        for job in stalled:
            try:
                await manager.retry_job(job)
            except procrastinate_errors.UniqueViolation:
                # The same work was queued again meanwhile (a later poll of the feed, the
                # same article): end the stranded job, which releases its lock, and the
                # waiting one does the work (recording is idempotent).
                await self._end_stranded(job)
                continue
            except procrastinate_errors.ConnectorException:
                continue  # another worker starting now retried it first
            log.warning("job %s[%s] was cut off (its worker died): running it again",
                        job.task_name, job.id)
            retried += 1
        return retried

    async def _end_stranded(self, job: procrastinate.jobs.Job) -> None:
        if job.id is None:
            return
        try:
            await self.app.job_manager.finish_job_by_id_async(
                job.id, status=procrastinate.jobs.Status.ABORTED, delete_job=False)
        except procrastinate_errors.ConnectorException:
            return  # another worker ended it first
        log.warning("job %s[%s] was cut off (its worker died); the same work waits queued "
                    "again, so this one is ended", job.task_name, job.id)

    def _doing(self) -> Work:
        if self._work is None:
            raise RuntimeError("this process defers jobs but runs none")
        return self._work

    def _feed(self, name: str) -> FeedConfig | None:
        return next((f for f in self._doing().feeds() if f.name == name), None)

    async def _poll_feed(self, name: str) -> str:
        feed = self._feed(name)
        if feed is None or not feed.enabled:
            return f"feed {name}: no longer polled"
        report = await self._doing().poll(feed, self._defer_articles)
        return f"feed {name}: {getattr(report, 'status', '?')}"

    async def _judge_article(self, feed: str, article: dict[str, Any]) -> str:
        found = self._feed(feed) or FeedConfig(name=feed, url=article["url"] or "about:blank")
        judged = article_from(article)
        matches = await self._doing().judge(found, judged)
        return f"{judged.key}: {matches} matches"

    async def _build_digest(self, digest: str) -> str:
        work = self._doing()
        chosen = next((d for d in work.digests if work.digest_id(d) == digest), None)
        if chosen is None:
            return f"digest {digest}: no longer configured"
        return f"digest {digest}: {len(await work.digest(chosen))} queued"

    async def _retry_stalled_periodically(self, timestamp: int) -> str:
        return f"{await self.retry_stalled()} stalled jobs retried"


async def _log_job(call_next: Callable[[], Awaitable[Any]], context: JobContext,
                   worker: object) -> Any:
    """One line per job: what it was, how it ended, how long it took."""
    job = context.job
    started = time.monotonic()
    try:
        result = await call_next()
    except asyncio.CancelledError:
        log.warning("job %s[%s] cut off by the stop: it will run again", job.task_name, job.id)
        raise
    except Exception as exc:
        log.warning("job %s[%s] failed (attempt %d): %s", job.task_name, job.id,
                    job.attempts + 1, exc)
        raise
    # the minutely check for stalled jobs tells only what it retried (a warning each)
    level = logging.DEBUG if job.task_name == STALLED_TASK else logging.INFO
    log.log(level, "job %s[%s] done in %.2f s: %s", job.task_name, job.id,
            time.monotonic() - started, result)
    return result
