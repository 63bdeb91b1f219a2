"""A watchdog for PTB's long polling: when it has stopped by itself, start it again.

PTB's polling loop retries network errors for ever, but a 401 or 404 from getUpdates (PTB:
InvalidToken) ends it for good while the Updater still says it is running: the process stays
up and no command is answered again. The loop runs as an asyncio task PTB names
POLLING_TASK; when that task is gone while polling is wanted, a fresh Updater takes over
from the last update handed over, with a back-off while Telegram keeps refusing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram.ext import Application, Updater

log = logging.getLogger(__name__)

POLLING_TASK = "Updater:start_polling:polling_task"  # PTB 20–22's name for its loop
CHECK_EVERY_S = 2.0
MAX_BACKOFF_S = 60.0


def polling_alive() -> bool:
    """Is PTB's polling loop still running in this event loop?"""
    return any(t.get_name() == POLLING_TASK and not t.done() for t in asyncio.all_tasks())


class PollingWatchdog:
    """Checks every `check_every_s` seconds; restarts polling (long polls of `poll_timeout`).
    Started once polling is wanted, stopped before polling is stopped on purpose."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any],
                 poll_timeout: int, check_every_s: float = CHECK_EVERY_S) -> None:
        self.application = application
        self.poll_timeout = poll_timeout
        self.check_every_s = check_every_s
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="polling watchdog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        failures = 0
        while True:
            delay = min(self.check_every_s * 2 ** failures, MAX_BACKOFF_S)
            await asyncio.sleep(delay)
            updater = self.application.updater
            if updater is None or (updater.running and polling_alive()):
                failures = 0
                continue
            failures += 1
            log.error("polling for updates stopped by itself: restarting it (try %d)", failures)
            if await self._restart():
                self.restarts += 1

    async def _restart(self) -> bool:
        """A fresh Updater in place of the dead one: PTB's own is left half-stopped by the
        error (its stop event stays set, so starting it again would never poll)."""
        application = self.application
        dead = application.updater
        assert dead is not None
        with contextlib.suppress(Exception):  # the dead loop's error comes out of stop()
            await dead.stop()
        fresh = Updater(bot=application.bot, update_queue=application.update_queue)
        # continue from the last update handed over: none is fetched (and handled) twice
        fresh._last_update_id = dead._last_update_id
        application.updater = fresh
        try:
            await fresh.initialize()
            await fresh.start_polling(timeout=self.poll_timeout, drop_pending_updates=False)
        except Exception as exc:  # Telegram still refuses: try again later
            log.warning("polling could not restart yet: %s", exc)
            return False
        return True
