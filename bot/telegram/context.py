"""What a command or button handler sees: the `Services` contract, PTB's typed context, and
one command's `Request`.

The app's wiring object provides `Services`; `build_application` stores it in PTB's bot_data
(`BotData`), and every handler reads it through `Context.services`, typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from telegram import Bot, Chat
from telegram.ext import CallbackContext, ExtBot

from bot.config import Config, FeedConfig, Narrative
from bot.matching.index import PassageScore
from bot.models import Passage
from bot.storage.audience import Audience
from bot.storage.store import Store
from bot.telegram.buttons import ButtonSigner
from bot.telegram.i18n import N_, Voice
from bot.telegram.permissions import MemberCache, may_change_chat

# marked for the catalogue; translated where they are sent (bot.telegram.i18n)
REFUSED = N_("Sorry, only the bot's admins may do that.")
SORRY = N_("Something went wrong; the admins can see the log.")  # a handler failed


class ListedSource(Protocol):
    """A feed the bot polls and where it comes from ("config", "chat" or "opml")."""

    @property
    def feed(self) -> FeedConfig: ...

    @property
    def origin(self) -> str: ...


class AddedSource(Protocol):
    """What adding a feed did: the feed kept, its title and item count, or why not."""

    @property
    def feed(self) -> FeedConfig | None: ...

    @property
    def title(self) -> str: ...

    @property
    def items(self) -> int: ...

    @property
    def error(self) -> str | None: ...


class FeedManager(Protocol):
    """The feeds of config.toml and those added from the chat (bot.app.feedlist)."""

    def listed(self) -> Sequence[ListedSource]: ...

    async def add(self, url: str, *, name: str | None = None,
                  interval: timedelta | None = None,
                  added_by: str | None = None) -> AddedSource: ...

    def remove(self, name: str) -> str | None:
        """None when removed; else why not."""


class Services(Protocol):
    """Everything the handlers use, provided by the app."""

    @property
    def feeds(self) -> FeedManager: ...

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def audience(self) -> Audience: ...

    @property
    def signer(self) -> ButtonSigner: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def narratives(self) -> Sequence[Narrative]:
        """The narratives loaded now (they change on reload)."""

    @property
    def model_name(self) -> str: ...

    def score(self, title: str, text: str) -> tuple[list[Passage], list[PassageScore]]:
        """A document's passages and each narrative's best score (blocking: run in a thread)."""

    def learn_counter_example(self, narrative_id: str, text: str) -> None:
        """From now on `text` counts against the narrative (blocking: run in a thread)."""

    async def reload(self) -> str:
        """Read the narrative files again; a summary. Raises ConfigError, the old set stays."""

    def last_cycle_at(self) -> datetime | None: ...


def is_admin(services: Services, user_id: int | None) -> bool:
    return user_id is not None and user_id in services.config.telegram.admins


def chat_key(services: Services, chat: Chat) -> str:
    """The id under which a chat's settings are stored (the channel: as configured)."""
    channel = services.audience.channel
    if channel is not None:
        username = f"@{chat.username}" if chat.username else ""
        if str(chat.id) == channel or username.casefold() == channel.casefold():
            return channel
    return str(chat.id)


class BotData:
    """PTB's bot_data: made empty by PTB, given its services once by `build_application`;
    the getChatMember answers it caches (bot.telegram.permissions)."""

    services: Services

    def __init__(self) -> None:
        self.members = MemberCache()


class Context(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """The context every handler gets (see ContextTypes in bot.telegram.application)."""

    @property
    def services(self) -> Services:
        return self.bot_data.services


@dataclass(frozen=True)
class Request:
    """One command: who sent it, where, and its arguments."""

    services: Services
    chat: Chat
    user_id: int | None
    args: list[str]
    rest: str  # everything after the command, line breaks kept
    bot: Bot | None = None  # asked who the chat's admins are (None: nobody is)
    members: MemberCache | None = None
    language: str = "en"  # the reply's language (bot.telegram.i18n)

    @property
    def chat_id(self) -> str:
        return chat_key(self.services, self.chat)

    @property
    def voice(self) -> Voice:
        """How the reply is written: the sender's (or the chat's) language."""
        return Voice(self.language)

    @property
    def is_admin(self) -> bool:
        return is_admin(self.services, self.user_id)

    async def may_change_chat(self) -> bool:
        """May the sender change settings for the whole chat (private: yes; a group: its
        admins and the bot's)?"""
        if self.bot is None or self.members is None:
            return self.chat.type == "private" or self.is_admin
        return await may_change_chat(self.services.config.telegram, self.members, self.bot,
                                     self.chat, self.user_id)


@dataclass(frozen=True)
class Photo:
    """A reply that is a picture (a PNG chart) with an HTML caption (≤ 1024 characters)."""

    png: bytes
    caption: str


Reply = str | Photo
Handler = Callable[[Request], Awaitable[Reply]]
