"""python-telegram-bot, configured in one place: the Application that answers chats, and a
plain ExtBot for delivery only, both with the same HTTP client, timeouts and rate limiter.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bot.config import Config
from bot.telegram.commands.feedback import on_button
from bot.telegram.concurrency import ChatOrderedProcessor
from bot.telegram.context import BotData, Context, Services
from bot.telegram.format import MAX_COMMAND_DESCRIPTION
from bot.telegram.i18n import DEFAULT, LANGUAGES, gettext_for
from bot.telegram.registry import COMMANDS, command_handler, on_unknown

log = logging.getLogger(__name__)

BotApplication = Application[ExtBot[None], Context, dict[Any, Any], dict[Any, Any], BotData,
                             None]


def telegram_request(config: Config) -> HTTPXRequest:
    """HTTP client for the Bot API with `[telegram] send_timeout` as its read/write timeout,
    through `[telegram] proxy` when one is set."""
    seconds = config.telegram.send_timeout.total_seconds()
    return HTTPXRequest(connect_timeout=10.0, read_timeout=seconds, write_timeout=seconds,
                        proxy=config.telegram.proxy)


def rate_limiter(config: Config) -> AIORateLimiter | None:
    """PTB's limiter for the overall and per-group limits; a 429 is ours to handle (no retry)."""
    return AIORateLimiter(max_retries=0) if config.telegram.rate_limit else None


def make_bot(config: Config, token: str) -> ExtBot[None]:
    """A bot that only sends (delivery without chat commands)."""
    return ExtBot(token, base_url=config.telegram.api_base_url,
                  rate_limiter=rate_limiter(config),  # type: ignore[arg-type]  # PTB generics
                  request=telegram_request(config))


async def on_error(update: object, context: Context) -> None:
    """Backstop for anything outside the handlers' own guards (PTB calls it, never raises)."""
    log.error("update %r failed", getattr(update, "update_id", None), exc_info=context.error)


def build_application(token: str, services: Services) -> BotApplication:
    """The Application with every command and the buttons; the caller starts polling."""
    config = services.config
    builder = (ApplicationBuilder().token(token).base_url(config.telegram.api_base_url)
               .request(telegram_request(config))
               .context_types(ContextTypes(context=Context, bot_data=BotData))
               .job_queue(None)
               # concurrent across chats, in order within one, a command budget per user
               .concurrent_updates(ChatOrderedProcessor(config.telegram.commands_per_minute)))
    if (limiter := rate_limiter(config)) is not None:
        builder = builder.rate_limiter(limiter)  # type: ignore[arg-type]  # PTB generics
    if config.telegram.proxy:  # long polling for updates goes through it too
        builder = builder.get_updates_proxy(config.telegram.proxy)
    app = builder.build()
    app.bot_data.services = services
    new_messages = filters.UpdateType.MESSAGE
    for command in COMMANDS:
        app.add_handler(CommandHandler(command.name, command_handler(command),
                                       filters=new_messages))
    app.add_handler(MessageHandler(filters.COMMAND & new_messages, on_unknown))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_error_handler(on_error)
    return app


async def register_commands(app: BotApplication) -> None:
    """Publish COMMANDS (the menu Telegram shows next to the message box): in each language
    we speak (Telegram picks the user's), English for everyone else."""
    for language in (*(lang for lang in LANGUAGES if lang != DEFAULT), None):
        _ = gettext_for(language)
        await app.bot.set_my_commands([BotCommand(c.name, _(c.help)[:MAX_COMMAND_DESCRIPTION])
                                       for c in COMMANDS], language_code=language)
