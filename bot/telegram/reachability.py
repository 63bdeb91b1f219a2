"""Paused chats (bot/storage/pauses.py) probed: may the bot post there again?

A probe asks getChatMember for the bot itself: "left" or "kicked" (or a 403 / chat not found)
means not yet, and the next probe waits longer; anything else resumes the chat's deliveries
and tells the admins. A probe that meets a Telegram outage decides nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.storage.database import utcnow
from bot.storage.store import Store

log = logging.getLogger(__name__)


async def probe_paused(bot: Bot, store: Store, admins: Sequence[str],
                       now: datetime | None = None) -> list[str]:
    """Ask Telegram whether the bot may post again in each paused chat whose probe is due;
    resume those where it may (the admins are told). The chats resumed."""
    resumed: list[str] = []
    for paused in store.paused_chats(due=now or utcnow()):
        try:
            member = await bot.get_chat_member(paused.chat_id, bot.id)
            reachable = member.status not in ("left", "kicked")
        except (Forbidden, BadRequest):
            reachable = False
        except TelegramError as exc:  # Telegram is unwell: the probe is not an answer
            log.info("probe of paused chat %s failed: %s", paused.chat_id, exc.message)
            return resumed
        if not reachable:
            store.probe_failed(paused.chat_id)
            continue
        if store.resume_chat(paused.chat_id):
            log.warning("chat %s is reachable again: deliveries resume", paused.chat_id)
            store.add_notice(admins, f"▶️ Deliveries to {paused.chat_id} resume.")
            resumed.append(paused.chat_id)
    return resumed
