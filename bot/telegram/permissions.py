"""Who may do what in a chat: the bot's admins and `[telegram] trusted` users from the config,
a group's or channel's own admins from Telegram (getChatMember, cached).

In a private chat its user decides for it. In a group or the channel, settings that apply to
everyone (/mute, /subscribe, /unsubscribe …) need a chat admin or a bot admin, and feedback
votes count only from chat admins, bot admins and trusted users.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from telegram import Bot, Chat
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

from bot.config import TelegramConfig

log = logging.getLogger(__name__)

MEMBER_TTL_S = 300.0  # how long a getChatMember answer is trusted
_ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


def is_bot_admin(config: TelegramConfig, user_id: int | None) -> bool:
    return user_id is not None and user_id in config.admins


def is_trusted(config: TelegramConfig, user_id: int | None) -> bool:
    """A bot admin or a `[telegram] trusted` user."""
    return user_id is not None and (user_id in config.admins or user_id in config.trusted)


@dataclass
class MemberCache:
    """getChatMember answers (is this user an admin of that chat?) for MEMBER_TTL_S seconds."""

    ttl_s: float = MEMBER_TTL_S
    _answers: dict[tuple[int, int], tuple[float, bool]] = field(default_factory=dict)

    async def is_chat_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        now = time.monotonic()
        cached = self._answers.get((chat_id, user_id))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            member = await bot.get_chat_member(chat_id, user_id)
        except TelegramError as exc:  # not known: no right is granted, nothing is cached
            log.warning("getChatMember %s/%s failed: %s", chat_id, user_id, exc.message)
            return False
        answer = member.status in _ADMIN_STATUSES
        if len(self._answers) > 10_000:
            self._answers.clear()
        self._answers[(chat_id, user_id)] = (now + self.ttl_s, answer)
        return answer


async def may_change_chat(config: TelegramConfig, members: MemberCache, bot: Bot, chat: Chat,
                          user_id: int | None) -> bool:
    """May this user change settings that apply to the whole chat?"""
    if user_id is None:
        return False
    if chat.type == ChatType.PRIVATE or is_bot_admin(config, user_id):
        return True
    return await members.is_chat_admin(bot, chat.id, user_id)


async def may_vote(config: TelegramConfig, members: MemberCache, bot: Bot, chat: Chat,
                   user_id: int | None) -> bool:
    """Does this user's feedback vote count in this chat?"""
    if user_id is None:
        return False
    if chat.type == ChatType.PRIVATE or is_trusted(config, user_id):
        return True
    return await members.is_chat_admin(bot, chat.id, user_id)
