"""Updates handled concurrently, one chat at a time, and a per-user command budget.

PTB handles updates one after the other unless told otherwise: then one chat's backlog (60
/help in a group whose replies wait on the 20-a-minute limit) holds up everyone else. This
update processor runs updates concurrently, keeps each chat's updates in order (a lock per
chat), and drops a user's commands beyond `[telegram] commands_per_minute` (the first one
dropped in a minute gets a one-line "slow down" reply; button presses are never dropped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)

MAX_CONCURRENT = 256  # updates in flight at once, across all chats
SLOW_DOWN = "Slow down: at most {n} commands a minute; the others are ignored."


@dataclass
class _ChatQueue:
    """The lock that keeps one chat's updates in order, and how many wait on it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class Counts:
    """Updates handled and commands dropped over budget (for tests and metrics)."""

    processed: int = 0
    dropped: int = 0


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Concurrent across chats, in order within a chat, with a command budget per user."""

    def __init__(self, commands_per_minute: int, max_concurrent: int = MAX_CONCURRENT) -> None:
        super().__init__(max_concurrent)
        self.commands_per_minute = commands_per_minute
        self.counts = Counts()
        self._chats: dict[int, _ChatQueue] = {}
        self._budgets: dict[int, AsyncLimiter] = {}
        self._warned: set[int] = set()  # users told to slow down, until under budget again

    async def do_process_update(self, update: object,
                                coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update) and not await self._within_budget(update):
            close = getattr(coroutine, "close", None)
            if close is not None:
                close()  # never awaited: the command is ignored
            self.counts.dropped += 1
            return
        chat = update.effective_chat if isinstance(update, Update) else None
        key = chat.id if chat is not None else 0
        queue = self._chats.setdefault(key, _ChatQueue())
        queue.users += 1
        try:
            async with queue.lock:
                await coroutine
        finally:
            queue.users -= 1
            if queue.users == 0:
                self._chats.pop(key, None)
            self.counts.processed += 1

    async def _within_budget(self, update: Update) -> bool:
        """False for a command over its user's budget (told once a minute)."""
        message, user = update.message, update.effective_user
        if message is None or user is None or not (message.text or "").startswith("/"):
            return True
        if len(self._budgets) > 10_000:  # forget idle users rather than grow without end
            self._budgets.clear()
        budget = self._budgets.setdefault(
            user.id, AsyncLimiter(self.commands_per_minute, 60))
        if budget.has_capacity():
            await budget.acquire()
            self._warned.discard(user.id)
            return True
        if user.id not in self._warned:
            self._warned.add(user.id)
            log.warning("user %s is over %d commands a minute: ignoring the rest", user.id,
                        self.commands_per_minute)
            try:
                await message.reply_text(SLOW_DOWN.format(n=self.commands_per_minute),
                                         do_quote=False)
            except Exception:  # the user asked too much; the reply is a courtesy
                log.info("could not tell user %s to slow down", user.id)
        return False

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        self._chats.clear()
