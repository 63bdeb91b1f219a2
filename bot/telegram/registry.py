"""The one table of chat commands, and how a command update becomes a reply.

Each `Command` names its handler, its help text and whether only admins may run it; the menu
Telegram shows (setMyCommands), /help and PTB's handlers are all made from `COMMANDS`.
Every handler gets a `Request` and returns the reply as Telegram HTML (or a chart); the
wrapper sends it, cut to Telegram's limit. Handlers never raise to python-telegram-bot: a
failure is logged and the user is told so in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import Chat, LinkPreviewOptions, Message, Update, User
from telegram.constants import ChatType, ParseMode

from bot.telegram.commands import language, sources, status, subscriptions, trends, whoami
from bot.telegram.context import (
    REFUSED,
    SORRY,
    Context,
    Handler,
    Photo,
    Reply,
    Request,
    Services,
    chat_key,
)
from bot.telegram.format import esc, fit, trim
from bot.telegram.i18n import N_, gettext_for, language_of

log = logging.getLogger(__name__)

GROUP_ADMINS_ONLY = N_("Sorry, only this chat's admins may change its settings.")


@dataclass(frozen=True)
class Command:
    """One chat command: /name, what /help says about it, who may run it, what runs."""

    name: str
    help: str  # marked N_(): translated where it is shown
    handler: Handler
    admin: bool = False
    chat_wide: bool = False  # changes the chat's settings: in a group, its admins only


async def cmd_help(req: Request) -> str:
    _ = gettext_for(req.language)
    admin = " <i>" + _("(admin)") + "</i>"
    lines = [f"/{c.name} — {esc(_(c.help))}" + (admin if c.admin else "") for c in COMMANDS]
    return "\n".join([_("<b>Commands</b>"), *lines, "", esc(_(sources.MUTE_ADMIN_HINT))])


COMMANDS: tuple[Command, ...] = (
    Command("start", N_("register this chat and get started"), status.cmd_start),
    Command("help", N_("list the commands"), cmd_help),
    Command("narratives", N_("the narratives watched, with matches in the last 7 days"),
            status.cmd_narratives),
    Command("subscribe", N_("get alerts here: /subscribe <id> [<id> …] or all"),
            subscriptions.cmd_subscribe, chat_wide=True),
    Command("unsubscribe", N_("stop alerts: /unsubscribe <id> or all"),
            subscriptions.cmd_unsubscribe, chat_wide=True),
    Command("mysubs", N_("what this chat is subscribed to"), subscriptions.cmd_mysubs),
    Command("mute", N_("hide a source here: /mute <source> [30m|12h|7d]"), sources.cmd_mute,
            chat_wide=True),
    Command("unmute", N_("show a muted source again: /unmute <source>"), sources.cmd_unmute,
            chat_wide=True),
    Command("muted", N_("the sources muted here, with expiry"), sources.cmd_muted),
    Command("sources", N_("every feed: last poll, last error, articles, matches"),
            sources.cmd_sources),
    Command("status", N_("uptime, last cycle, queue, model, totals"), status.cmd_status),
    Command("score", N_("score a text against every narrative: /score <text>"), status.cmd_score),
    Command("trend", N_("chart of a narrative's daily matches: /trend <id> [30d] [by source]"),
            trends.cmd_trend),
    Command("top", N_("narratives ranked by matches, with change: /top [7d]"), trends.cmd_top),
    Command("digest", N_("this chat's daily or weekly digest"), trends.cmd_digest),
    Command("whoami", N_("your user id, this chat's id and type"), whoami.cmd_whoami),
    Command("language", N_("the language of this chat: /language ru or /language en"),
            language.cmd_language, chat_wide=True),
    Command("feeds", N_("every feed polled, and where it comes from"), sources.cmd_feeds),
    Command("addfeed", N_("poll a new source: /addfeed <url> [name] [interval]"),
            sources.cmd_addfeed, admin=True),
    Command("removefeed", N_("stop polling a feed added here: /removefeed <name>"),
            sources.cmd_removefeed, admin=True),
    Command("reload", N_("reload the narrative files"), status.cmd_reload, admin=True),
)


async def send_reply(message: Message, reply: Reply) -> None:
    try:
        if isinstance(reply, Photo):
            await message.reply_photo(reply.png, caption=reply.caption,
                                      parse_mode=ParseMode.HTML, do_quote=False)
            return
        await message.reply_text(fit(reply), parse_mode=ParseMode.HTML, do_quote=False,
                                 link_preview_options=LinkPreviewOptions(is_disabled=True))
    except Exception:
        log.exception("could not reply in chat %s", message.chat_id)


def reply_language(services: Services, chat: Chat, user: User | None) -> str:
    """The chat's chosen language, else the user's Telegram one, else `[telegram] language`."""
    chosen = services.audience.chosen_language(chat_key(services, chat))
    return chosen or language_of(user.language_code if user else None,
                                 services.config.telegram.language)


def make_request(update: Update, context: Context, message: Message) -> Request:
    text = message.text or ""
    parts = text.split(None, 1)
    user = update.effective_user
    services = context.services
    language = reply_language(services, message.chat, user)
    return Request(services, message.chat, user.id if user else None,
                   list(context.args or []), parts[1] if len(parts) > 1 else "",
                   bot=context.bot, members=context.bot_data.members, language=language)


async def run_command(command: Command, req: Request) -> Reply:
    _ = gettext_for(req.language)
    if command.admin and not req.is_admin:
        return _(REFUSED)
    if command.chat_wide and not await req.may_change_chat():
        return _(GROUP_ADMINS_ONLY)
    return await command.handler(req)


def command_handler(command: Command) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """The PTB callback for one command: build the request, run it, send what it returns."""

    async def handle(update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            reply = await run_command(command, make_request(update, context, message))
        except Exception:
            log.exception("command %r failed", trim(message.text or "", 80))
            reply = gettext_for(reply_language(context.services, message.chat,
                                               update.effective_user))(SORRY)
        await send_reply(message, reply)

    return handle


def addressed_to_us(message: Message, username: str | None) -> bool:
    """Private chats: always; groups: only '/cmd@thisbot' (other bots' commands are not ours)."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    head = (message.text or "").split(None, 1)[0] if message.text else ""
    return bool(username) and head.casefold().endswith(f"@{username}".casefold())


async def on_unknown(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or not addressed_to_us(message, context.bot.username):
        return
    command = (message.text or "/").split(None, 1)[0]
    _ = gettext_for(reply_language(context.services, message.chat, update.effective_user))
    await send_reply(message, _("Unknown command {command}; /help lists the commands.").format(
        command=esc(trim(command, 60))))
