"""The work-queue benchmark: `python bench/run.py --state postgresql://… --workers N`.

The news load of bench/run.py (fresh text: the model is the limit), served by bench/server.py,
polled on a PostgreSQL state by `narrative-bot worker` processes through the work queue
(bot.app.queue): one pass with one worker, then one with N (N > 1), each on a state made empty
for it. A pass starts the workers, waits until each said it is working, defers one poll per
feed (as `run`'s schedule does) and ends when the queue holds no poll or judge job to do:
articles recorded per second of that span. Then, the queue idle, it defers the polls one at a
time (the feeds answer 304 or the same body, so each job is short) and reads each job's wait
from defer to start: the per-task overhead of the queue (LISTEN/NOTIFY, fetching the job).

Timestamps are procrastinate's own (`procrastinate_events.at`); the workers delete succeeded
jobs with their events, so a trigger copies every event as it is written into a table of the
benchmark's (`nb_bench_job_events`). The state must be an empty database, or one whose name
starts with nb_bench (its schema is dropped and made anew: it is the benchmark's).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import psycopg
from sqlalchemy import make_url

from bot.app.queue import WorkQueue, apply_queue_schema
from bot.config import Config
from bot.storage.postgres import is_postgres_url, shown
from bot.storage.store import Store

BENCH_DATABASES = "nb_bench"  # names of databases the benchmark may empty
READY = "working on the queue"  # a worker's log line once it takes jobs
START_S = 300.0  # a worker loads the model and the narratives first
LOAD_TIMEOUT_S = 1800.0
STOP_S = 60.0
IDLE_SAMPLES = 40
TASKS = ("poll_feed", "judge_article")
EVENTS = """
CREATE TABLE nb_bench_job_events (job_id bigint, task_name text, type text,
                                  at timestamptz);
CREATE FUNCTION nb_bench_keep_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO nb_bench_job_events
    SELECT NEW.job_id, j.task_name, NEW.type::text, NEW.at
      FROM procrastinate_jobs j WHERE j.id = NEW.job_id;
    RETURN NEW;
END $$;
CREATE TRIGGER nb_bench_keep_event AFTER INSERT ON procrastinate_events
    FOR EACH ROW EXECUTE FUNCTION nb_bench_keep_event();
"""


class StateRefused(Exception):
    """The database given to --state holds something: it is not the benchmark's to empty."""


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def check_url(url: str) -> str | None:
    """Why `url` cannot be the benchmark's state (None: it can)."""
    if not is_postgres_url(url):
        return "--state wants a PostgreSQL URL: postgresql://user@host:5432/nb_bench"
    if not make_url(url).database:
        return "--state names no database"
    return None


def empty_state(url: str, *, ours: bool = False) -> None:
    """Make the database at `url` empty for a pass: a database named nb_bench… (or one this
    run filled, `ours`) is reset; any other must hold no table, else StateRefused."""
    name = make_url(url).database or ""
    with psycopg.connect(libpq(url), autocommit=True, connect_timeout=10) as db:
        row = db.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        tables = int(row[0]) if row else 0
        if not tables:
            return
        if not (ours or name.startswith(BENCH_DATABASES)):
            raise StateRefused(f"{shown(url)} holds {tables} tables: give an empty database, "
                               f"or one named {BENCH_DATABASES}… (the benchmark empties it)")
        db.execute("DROP SCHEMA public CASCADE")
        db.execute("CREATE SCHEMA public")


def prepare(config: Config, background: dict[str, str]) -> None:
    """The state's tables, the queue's, the event copy; the background mean kept from an
    earlier run, so that no worker spends its start computing it."""
    assert config.state.url is not None
    store = Store(config.state.url)
    try:
        for key, value in background.items():
            store.set_meta(key, value)
    finally:
        store.close()
    apply_queue_schema(config)
    with psycopg.connect(libpq(config.state.url), autocommit=True) as db:
        db.execute(EVENTS)  # a fixed script, no parameters: run as one


def fetch(url: str, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    with psycopg.connect(libpq(url), autocommit=True, connect_timeout=10) as db:
        return db.execute(statement, params).fetchall()


def now(url: str) -> Any:
    return fetch(url, "SELECT clock_timestamp()")[0][0]


def to_do(url: str) -> int:
    """Poll and judge jobs not finished yet (waiting, running or waiting for a retry)."""
    return int(fetch(url, "SELECT COUNT(*) FROM procrastinate_jobs WHERE task_name = ANY(%(t)s) "
                          "AND status IN ('todo', 'doing')", {"t": list(TASKS)})[0][0])


def waits_ms(url: str, since: Any, task: str | None = None) -> list[float]:
    """Defer → start of every job deferred since `since` (ms), from the copied events."""
    rows = fetch(url, "SELECT EXTRACT(EPOCH FROM s.at - d.at) * 1000 FROM nb_bench_job_events d "
                      "JOIN nb_bench_job_events s ON s.job_id = d.job_id AND s.type = 'started' "
                      "WHERE d.type = 'deferred' AND d.at >= %(since)s "
                      "AND (%(task)s::text IS NULL OR d.task_name = %(task)s)",
                 {"since": since, "task": task})
    return [float(r[0]) for r in rows]


def percentiles(values: list[float], digits: int = 1) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    return {f"p{q}": round(float(np.percentile(values, q)), digits) for q in (50, 95)}


@dataclass
class Workers:
    """N `narrative-bot worker` processes on one config, their logs in `folder`."""

    config: Path
    folder: Path
    count: int
    procs: list[asyncio.subprocess.Process]
    logs: list[Path]
    _files: list[TextIO]

    @classmethod
    async def start(cls, config: Path, folder: Path, count: int) -> Workers:
        logs = [folder / f"worker-{count}-{k + 1}.log" for k in range(count)]
        files: list[TextIO] = [path.open("w") for path in logs]
        env = {**os.environ}
        env.pop("NARRATIVE_BOT_LOG", None)
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", "--config", str(config),
            stdin=asyncio.subprocess.DEVNULL, stdout=f, stderr=f, cwd=folder, env=env)
            for f in files]
        return cls(config, folder, count, procs, logs, files)

    async def ready(self) -> None:
        deadline = time.monotonic() + START_S
        while not all(READY in path.read_text("utf-8", "replace") for path in self.logs):
            for proc, path in zip(self.procs, self.logs, strict=True):
                if proc.returncode is not None:
                    raise RuntimeError(f"a worker exited ({proc.returncode}):\n"
                                       f"{path.read_text('utf-8', 'replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start within {START_S:g} s")
            await asyncio.sleep(0.2)

    async def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(await asyncio.wait_for(proc.wait(), STOP_S))
            except TimeoutError:
                proc.kill()
                codes.append(await proc.wait())
        for f in self._files:
            f.close()
        return codes


async def until(check: Callable[[], bool], timeout: float, every: float) -> float:
    """Wait until `check()` (run off the event loop); the time.perf_counter() it held at."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue did not drain within {timeout:g} s")
        await asyncio.sleep(every)
    return time.perf_counter()


async def one_pass(config: Config, workers: int, folder: Path) -> dict[str, Any]:
    """`workers` workers through the news load, then the idle queue's overhead."""
    url = config.state.url
    assert url is not None and config.source_file is not None
    fleet = await Workers.start(config.source_file, folder, workers)
    try:
        await fleet.ready()
        queue = WorkQueue(url)
        async with queue.app.open_async():
            started_db = await asyncio.to_thread(now, url)
            started = time.perf_counter()
            for feed in config.feeds:
                await queue.defer_poll(feed)
            ended = await until(lambda: to_do(url) == 0, LOAD_TIMEOUT_S, 0.1)
            articles = int(fetch(url, "SELECT COUNT(*) FROM articles")[0][0])
            loaded = {task: waits_ms(url, started_db, task) for task in TASKS}
            idle_db = await asyncio.to_thread(now, url)
            for k in range(IDLE_SAMPLES):
                await queue.defer_poll(config.feeds[k % len(config.feeds)])
                await until(lambda: to_do(url) == 0, 60, 0.01)
                await asyncio.sleep(0.05)
            idle = waits_ms(url, idle_db, "poll_feed")  # not the periodic stalled-job check
        failed = int(fetch(url, "SELECT COUNT(*) FROM procrastinate_jobs "
                                "WHERE status = 'failed'")[0][0])
    finally:
        codes = await fleet.stop()
    seconds = ended - started
    overhead = percentiles(idle)
    return {
        "workers": workers, "articles": articles, "seconds": round(seconds, 1),
        "articles_per_s": round(articles / seconds, 2), "failed_jobs": failed,
        "queue_overhead_p50_ms": overhead["p50"], "queue_overhead_p95_ms": overhead["p95"],
        "queue_overhead_samples": len(idle),
        # under the load, waiting for a free worker included (seconds)
        "load_wait_s": {task: percentiles([w / 1000 for w in waits], 2) | {"jobs": len(waits)}
                        for task, waits in loaded.items()},
        "exit_codes": codes,
    }


def worker_counts(workers: int) -> list[int]:
    """One worker first, then `workers` (when more than one)."""
    return [1] if workers <= 1 else [1, workers]


async def bench_workers(url: str, workers: int, write: Callable[[str], Config], cache: Path,
                        folder: Path) -> dict[str, Any]:
    """Every pass on a state emptied for it; the figures of each and the speed-up. `cache`
    keeps the background mean between runs (a first run's first worker computes it)."""
    passes: dict[str, Any] = {}
    for n, count in enumerate(worker_counts(workers)):
        await asyncio.to_thread(empty_state, url, ours=n > 0)
        config = write(f"config-workers-{count}.toml")
        await asyncio.to_thread(prepare, config, background_of(cache))
        passes[str(count)] = await one_pass(config, count, folder)
        keep_background(url, cache)
    first, last = passes["1"], passes[str(worker_counts(workers)[-1])]
    return {
        "state": shown(url), "passes": passes,
        "workers_articles_per_s": {k: v["articles_per_s"] for k, v in passes.items()},
        "workers_speedup": round(last["articles_per_s"] / first["articles_per_s"], 2),
        "queue_overhead_p50_ms": last["queue_overhead_p50_ms"],
        "queue_overhead_p95_ms": last["queue_overhead_p95_ms"],
    }


def queue_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's lines of the queue benchmark."""
    rows = [("state", f"{f['state']} (the work queue in it)"),
            ("worker model threads / tasks at once", f"{f['model_threads']} / "
                                                     f"{f['tasks_per_worker']} per worker")]
    for count, p in f["passes"].items():
        judge = p["load_wait_s"]["judge_article"]
        rows.append((f"{count} worker{'s' if count != '1' else ''}, news first poll",
                     f"{p['seconds']} s, {p['articles_per_s']} articles/s ({p['articles']} "
                     f"articles, {p['failed_jobs']} jobs failed; judge jobs waited "
                     f"p50 {judge['p50']} s / p95 {judge['p95']} s)"))
    if len(f["passes"]) > 1:
        rows.append(("speed-up over one worker", f"{f['workers_speedup']} × (target ≥ 1.6 on "
                                                 "2 cores)"))
    for count, p in f["passes"].items():
        rows.append((f"queue overhead, {count} worker{'s' if count != '1' else ''}",
                     f"defer → start p50 {p['queue_overhead_p50_ms']} ms / p95 "
                     f"{p['queue_overhead_p95_ms']} ms ({p['queue_overhead_samples']} jobs on "
                     "the idle queue; target p95 ≤ 50 ms)"))
    return rows


def background_of(cache: Path) -> dict[str, str]:
    """The background means an earlier run kept (bench/run.py's META_CACHE)."""
    if not cache.exists():
        return {}
    return dict(json.loads(cache.read_text("utf-8")))


def keep_background(url: str, cache: Path) -> None:
    """The state's background means added to `cache`."""
    rows = fetch(url, "SELECT key, value FROM meta WHERE key LIKE 'background_mean:%'")
    cache.write_text(json.dumps(background_of(cache) | {k: v for k, v in rows}), "utf-8")
