"""The Telegram side coming up: getMe and the command menu, retried with capped back-off.

A Bot API that cannot be reached at start-up (an outage, a proxy hiccup) delays the Telegram
side only: the caller keeps polling and matching, alerts wait in the outbox, and this module
says so in one log line a minute at most until Telegram answers. The one fatal answer is a
rejected token (401/404, PTB's InvalidToken): `TokenRejected`, whose text is one line and never
holds the token itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import Bot
from telegram.error import InvalidToken, RetryAfter, TelegramError

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
SAY_EVERY_S = 60.0  # one "still unreachable" log line a minute at most


class TokenRejected(Exception):
    """Telegram refused the bot token: the one case where retrying cannot help."""


class Quiet:
    """A log line at most every `every_s` seconds: an outage may last hours, and one line a
    minute says as much as one per attempt."""

    def __init__(self, every_s: float = SAY_EVERY_S) -> None:
        self.every_s = every_s
        self._said_at: float | None = None

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if self._said_at is not None and now - self._said_at < self.every_s:
            return
        self._said_at = now
        log.warning(message, *args)


def polling_failed(quiet: Quiet) -> Callable[[TelegramError], None]:
    """PTB's `error_callback` for getUpdates: one line a minute instead of a traceback each
    time (PTB retries by itself)."""

    def say(exc: TelegramError) -> None:
        quiet.warning("Telegram not reachable for updates (%s: %s); retrying, alerts wait in "
                      "the outbox", type(exc).__name__, exc.message)

    return say


Startup = Callable[[], Awaitable[None]]


class TelegramLink:
    """Brings the bot up once Telegram answers; `ready` is set from then on.

    `initialize`: what getMe and the rest of PTB's start-up is (the Application's or the bot's
    `initialize`); `after`: further start-up calls that need Telegram (the command menu).
    """

    def __init__(self, bot: Bot, initialize: Startup, *, token_env: str,
                 after: Startup | None = None, max_delay_s: float = MAX_DELAY_S) -> None:
        self.bot = bot
        self._initialize = initialize
        self._after = after
        self.token_env = token_env
        self.max_delay_s = max_delay_s
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()  # set with `error` when the token was rejected
        self.error: TokenRejected | None = None
        self.attempts = 0
        self._quiet = Quiet()

    async def connect(self, *, once: bool = False) -> bool:
        """Until Telegram answers (True), or after one try with `once` (False: not reachable).

        Raises TokenRejected (and sets `failed`) when the token is refused.
        """
        delay = FIRST_DELAY_S
        while True:
            self.attempts += 1
            try:
                await self._initialize()
                if self._after is not None:
                    await self._after()
            except InvalidToken:
                self.error = TokenRejected(
                    f"Telegram rejected the bot token in ${self.token_env} (Unauthorized): "
                    "check it with @BotFather")
                self.failed.set()
                raise self.error from None
            except TelegramError as exc:
                wait = max(delay, _retry_after(exc))
                self._say(exc, None if once else wait)
                if once:
                    return False
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.max_delay_s)
                continue
            self._up()
            return True

    def _up(self) -> None:
        name = getattr(self.bot, "username", None) if self._initialized() else None
        after = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        log.info("Telegram: connected%s%s", f" as @{name}" if name else "", after)
        self.ready.set()

    def _initialized(self) -> bool:
        try:
            self.bot.bot  # noqa: B018  # raises until getMe has answered
        except RuntimeError:
            return False
        return True

    def _say(self, exc: TelegramError, wait: float | None) -> None:
        then = (f"retrying in {wait:g}s (attempt {self.attempts})" if wait is not None
                else "not retried")
        self._quiet.warning("Telegram not reachable (%s: %s); %s, alerts wait in the outbox",
                            type(exc).__name__, exc.message, then)


def _retry_after(exc: TelegramError) -> float:
    if isinstance(exc, RetryAfter):
        value = exc.retry_after
        return value if isinstance(value, int | float) else value.total_seconds()
    return 0.0
