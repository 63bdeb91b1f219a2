"""`narrative-bot test-alert | health`: what an operator asks of a deployment.

`test-alert` sends one clearly marked message and says exactly why it could not; `health`
judges the running bot from its state and its instance lock, for a container's HEALTHCHECK
or a monitoring probe: exit 0 healthy, 1 not, with one line why.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError

from bot.config import Config
from bot.storage.figures import NoState, StateFigures, read_figures
from bot.storage.instance import run_holder
from bot.storage.postgres import StateUnavailable, shown
from bot.telegram.application import make_bot
from bot.telegram.i18n import gettext_for


async def test_alert(config: Config, token: str, chat: str | None) -> int:
    """One test message to `chat` (default: the channel); 0 sent, 1 refused, 2 not possible."""
    target = chat or config.telegram.channel_id
    if not token:
        print(f"test-alert: no bot token in ${config.telegram.token_env}", file=sys.stderr)
        return 2
    if not target:
        print("test-alert: no chat: set [telegram] channel or give --chat", file=sys.stderr)
        return 2
    _ = gettext_for(config.telegram.language)
    text = _("🧪 Test message from narrative-bot: not an alert. Alerts will arrive here.")
    bot = make_bot(config, token)
    try:
        await bot.initialize()
        message = await bot.send_message(target, text)
    except TelegramError as exc:
        print(f"test-alert: not sent to {target}: {_refusal(exc, target, config)}",
              file=sys.stderr)
        return 1
    finally:
        await bot.shutdown()
    print(f"test-alert: sent to {target} (message {message.message_id})")
    return 0


def _refusal(exc: TelegramError, target: str, config: Config) -> str:
    """Why Telegram refused, in words an operator can act on."""
    text = exc.message.lower()
    if isinstance(exc, InvalidToken):
        return f"Telegram rejected the bot token in ${config.telegram.token_env} (bad token)"
    if "chat not found" in text:
        return (f"chat not found (Telegram: {exc.message}); check the id or @username, and "
                "that the bot was added to it")
    if isinstance(exc, Forbidden) or (isinstance(exc, BadRequest) and "rights" in text):
        return (f"the bot may not post there (Telegram: {exc.message}); make it an "
                "administrator of the channel with the right to post messages")
    return f"{type(exc).__name__}: {exc.message}"


def health(config: Config, now: datetime | None = None) -> int:
    """0 when a bot holds the state, its last cycle is recent and nothing waits too long."""
    verdict = judge(config, now or datetime.now(UTC))
    print(verdict, file=sys.stdout if verdict.startswith("healthy") else sys.stderr)
    return 0 if verdict.startswith("healthy") else 1


def judge(config: Config, now: datetime) -> str:
    """The one line `health` prints: 'healthy: …' or 'unhealthy: …'."""
    state = config.state
    try:
        pid = run_holder(state.path, state.url)
    except StateUnavailable as exc:
        return f"unhealthy: {exc}"
    if pid is None:
        shown_state = shown(state.url) if state.url else state.path
        return f"unhealthy: no narrative-bot is running on {shown_state}"
    try:
        figures = read_figures(state.location)
    except NoState as exc:
        return f"unhealthy: {exc}"
    limits = config.health
    last = figures.last_cycle_at
    polls = any(feed.enabled for feed in config.feeds)
    if polls and (last is None or now - last > limits.max_cycle_age):
        when = "no feed polled yet" if last is None else f"last cycle {_ago(now - last)} ago"
        return (f"unhealthy: {when} (more than [health] max_cycle_age = "
                f"{_ago(limits.max_cycle_age)})")
    if (stuck := _stuck(figures, now, limits.max_outbox_age)) is not None:
        return stuck
    cycle = f"last cycle {_ago(now - last)} ago" if last is not None else "no feeds"
    return f"healthy: pid {pid}, {cycle}, {figures.outbox_depth} waiting in the outbox"


def _stuck(figures: StateFigures, now: datetime, limit: timedelta) -> str | None:
    oldest = figures.oldest_waiting_at
    if oldest is None or now - oldest <= limit:
        return None
    return (f"unhealthy: delivery stuck: {figures.outbox_depth} message(s) waiting, the oldest "
            f"for {_ago(now - oldest)} (more than [health] max_outbox_age = {_ago(limit)})")


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
