"""The one table of chat commands, and how a command update becomes a reply.

Each `Command` names its handler, its help text and whether only admins may run it; the menu
Telegram shows (setMyCommands), /help and PTB's handlers are all made from `COMMANDS`.
Every handler gets a `Request` and returns the reply as Telegram HTML (or a chart); the
wrapper sends it, cut to Telegram's limit. Handlers never raise to python-telegram-bot: a
failure is logged and the user is told so in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode

from bot.telegram.commands import sources, status, subscriptions, trends
from bot.telegram.context import REFUSED, SORRY, Context, Handler, Photo, Reply, Request
from bot.telegram.format import esc, fit, trim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """One chat command: /name, what /help says about it, who may run it, what runs."""

    name: str
    help: str
    handler: Handler
    admin: bool = False


async def cmd_help(req: Request) -> str:
    lines = [f"/{c.name} — {esc(c.help)}" + (" <i>(admin)</i>" if c.admin else "")
             for c in COMMANDS]
    return "\n".join(["<b>Commands</b>", *lines, "", esc(sources.MUTE_ADMIN_HINT)])


COMMANDS: tuple[Command, ...] = (
    Command("start", "register this chat and get started", status.cmd_start),
    Command("help", "list the commands", cmd_help),
    Command("narratives", "the narratives watched, with matches in the last 7 days",
            status.cmd_narratives),
    Command("subscribe", "get alerts here: /subscribe <id> [<id> …] or all",
            subscriptions.cmd_subscribe),
    Command("unsubscribe", "stop alerts: /unsubscribe <id> or all",
            subscriptions.cmd_unsubscribe),
    Command("mysubs", "what this chat is subscribed to", subscriptions.cmd_mysubs),
    Command("mute", "hide a source here: /mute <source> [30m|12h|7d]", sources.cmd_mute),
    Command("unmute", "show a muted source again: /unmute <source>", sources.cmd_unmute),
    Command("muted", "the sources muted here, with expiry", sources.cmd_muted),
    Command("sources", "every feed: last poll, last error, articles, matches",
            sources.cmd_sources),
    Command("status", "uptime, last cycle, queue, model, totals", status.cmd_status),
    Command("score", "score a text against every narrative: /score <text>", status.cmd_score),
    Command("trend", "chart of a narrative's daily matches: /trend <id> [30d] [by source]",
            trends.cmd_trend),
    Command("top", "narratives ranked by matches, with change: /top [7d]", trends.cmd_top),
    Command("digest", "this chat's daily or weekly digest", trends.cmd_digest),
    Command("reload", "reload the narrative files", status.cmd_reload, admin=True),
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


def make_request(update: Update, context: Context, message: Message) -> Request:
    text = message.text or ""
    parts = text.split(None, 1)
    user = update.effective_user
    return Request(context.services, message.chat, user.id if user else None,
                   list(context.args or []), parts[1] if len(parts) > 1 else "")


async def run_command(command: Command, req: Request) -> Reply:
    if command.admin and not req.is_admin:
        return REFUSED
    return await command.handler(req)


def command_handler(command: Command) -> Callable[[Update, Context], Awaitable[None]]:
    """The PTB callback for one command: build the request, run it, send what it returns."""

    async def handle(update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            reply = await run_command(command, make_request(update, context, message))
        except Exception:
            log.exception("command %r failed", trim(message.text or "", 80))
            reply = SORRY
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
    await send_reply(message, f"Unknown command {esc(trim(command, 60))}; "
                              "/help lists the commands.")
