"""Telegram: formatting and limits, rendering of every message, the chat commands behind one
registry, the alert buttons, and delivery."""

from bot.telegram.application import build_application, make_bot, register_commands
from bot.telegram.buttons import ButtonSigner
from bot.telegram.context import Services
from bot.telegram.deliver import AlertSink, ConsoleSink, DeliveryReport, TelegramSink
from bot.telegram.render import render_digest, render_spike

__all__ = [
    "AlertSink",
    "ButtonSigner",
    "ConsoleSink",
    "DeliveryReport",
    "Services",
    "TelegramSink",
    "build_application",
    "make_bot",
    "register_commands",
    "render_digest",
    "render_spike",
]
