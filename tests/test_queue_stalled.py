"""Jobs stranded by a dead worker (bot.app.queue.WorkQueue.retry_stalled): run again, or, when
the same work was queued again meanwhile, ended so that their lock no longer blocks it."""

from __future__ import annotations

import psycopg

from bot.app.queue import WorkQueue, apply_schema_on
from bot.config import FeedConfig
from bot.storage.database import Database

FEED = FeedConfig(name="Steppe", url="http://127.0.0.1:9/steppe.xml")


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        return list(db.execute(query).fetchall())


def strand_the_jobs(url: str) -> None:
    """What a SIGKILL leaves: the jobs `doing` under a worker whose heartbeat stopped."""
    [(worker,)] = sql(url, "INSERT INTO procrastinate_workers (last_heartbeat) "
                           "VALUES (now() - interval '1 hour') RETURNING id")
    sql(url, f"UPDATE procrastinate_jobs SET status = 'doing', worker_id = {worker} "
             f"WHERE status = 'todo' RETURNING id")


def prepared(url: str) -> WorkQueue:
    database = Database(url)
    try:
        apply_schema_on(database.engine)
    finally:
        database.close()
    return WorkQueue(url)


async def test_a_stranded_poll_is_run_again(pg_url: str) -> None:
    queue = prepared(pg_url)
    async with queue.app.open_async():
        assert await queue.defer_poll(FEED)
        strand_the_jobs(pg_url)
        assert await queue.retry_stalled() == 1
    assert sql(pg_url, "SELECT status, lock FROM procrastinate_jobs") == [
        ("todo", "feed:Steppe")]


async def test_a_stranded_poll_queued_again_meanwhile_is_ended_and_the_new_one_waits(
        pg_url: str) -> None:
    queue = prepared(pg_url)
    async with queue.app.open_async():
        assert await queue.defer_poll(FEED)
        strand_the_jobs(pg_url)
        assert await queue.defer_poll(FEED)  # `run`'s next tick: the same feed again
        # retrying the stranded one would make two pending polls of one feed
        assert await queue.retry_stalled() == 0
    assert sorted(sql(pg_url, "SELECT status::text, lock FROM procrastinate_jobs")) == [
        ("aborted", "feed:Steppe"), ("todo", "feed:Steppe")]
    # nothing `doing` holds the feed's lock any more: a worker can take the waiting poll
    assert sql(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'") == [
        (0,)]
