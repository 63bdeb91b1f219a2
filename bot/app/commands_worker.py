"""`narrative-bot worker [--concurrency N]`: a process that does the heavy work of a PostgreSQL
deployment (polls, judging, digests: bot.app.queue) until SIGTERM or SIGINT.

It loads the model and the narratives as `run` does (bot.app.wiring.App with `worker=True`),
migrates the state and creates the work queue's tables if they are missing, then runs up to N
tasks at once. A stop lets the running tasks finish; a worker killed outright leaves its jobs
to be run again by another (stalled-job detection). Workers never deliver: `run` does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import suppress

from bot.app.wiring import App
from bot.config import Config, Narrative

log = logging.getLogger("narrative-bot")

NEEDS_POSTGRES = "worker: workers need [state] url = postgresql://…"


async def worker(config: Config, narratives: Sequence[Narrative],
                 concurrency: int | None = None) -> int:
    """Work on the queue until SIGTERM/SIGINT; 2 when the state is not on PostgreSQL."""
    if not config.state.on_postgres:
        print(NEEDS_POSTGRES, file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = concurrency or config.queue.concurrency
    # the pool: a job's own queries, the listener, the heartbeat, the periodic deferrer
    app = App(config, narratives, worker=True, queue_pool=tasks + 3)
    async with app:
        working = asyncio.create_task(app.run_worker(tasks), name="worker")
        watching = asyncio.create_task(_watch_narratives(app), name="narratives")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([working, stopping], return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: the running tasks finish first")
        for task in (watching, stopping, working):
            task.cancel()
        for task in (watching, stopping):
            with suppress(asyncio.CancelledError):
                await task
        with suppress(asyncio.CancelledError):
            await working  # a worker that failed on its own raises here
    return 0 if stop.is_set() else 1  # stopped on its own: let the supervisor restart it


async def _watch_narratives(app: App) -> None:
    """Edited narrative files are picked up here too, as `run` picks them up."""
    every = app.config.schedule.reload_check.total_seconds()
    while True:
        await asyncio.sleep(every)
        try:
            await app.reloader.watch()
        except Exception:
            log.exception("narratives not reloaded")
