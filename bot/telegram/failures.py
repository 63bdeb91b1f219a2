"""What a failed Bot API call means for the message it carried: one of a few kinds, each with
its own rule in bot.telegram.deliver, and an error text safe to store (the token redacted).

PTB maps Telegram's answers to exceptions (shared/TESTING.md); the order of the checks matters
because BadRequest and TimedOut are NetworkErrors, and every one of them a TelegramError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

REDACTED = "[REDACTED]"
# PTB's TelegramError for a 2xx answer whose body is not JSON: the request was handled
GARBLED = "invalid server response"


class Kind(Enum):
    MIGRATED = "migrated"  # the group became a supergroup: follow it
    BLOCKED = "blocked"  # a private chat blocked the bot: the user's choice, give up
    UNREACHABLE = "unreachable"  # kicked from a channel or group, chat not found: pause
    REJECTED = "rejected"  # Telegram refuses this request (400): a few tries, then give up
    TRANSIENT = "transient"  # 429, 5xx, connection refused: never sent, retry
    UNKNOWN = "unknown"  # timed out or garbled after it left: maybe sent, retry and count
    BUG = "bug"  # not a Telegram error at all: retry, and log the traceback


@dataclass(frozen=True)
class Failure:
    kind: Kind
    error: str  # for the outbox's last_error and the logs
    new_chat_id: str | None = None  # MIGRATED only


def classify(exc: BaseException, chat_id: str) -> Failure:
    """The kind of failure `exc` is for a message to `chat_id`."""
    if isinstance(exc, ChatMigrated):
        return Failure(Kind.MIGRATED, f"chat migrated to {exc.new_chat_id}",
                       str(exc.new_chat_id))
    if isinstance(exc, RetryAfter):
        return Failure(Kind.TRANSIENT, f"rate limited: retry after {exc.retry_after}")
    if isinstance(exc, Forbidden):
        private = chat_id.isdigit()
        return Failure(Kind.BLOCKED if private else Kind.UNREACHABLE,
                       f"forbidden: {exc.message}")
    if isinstance(exc, BadRequest):
        if "chat not found" in exc.message.lower():
            return Failure(Kind.UNREACHABLE, f"chat not found: {chat_id}")
        return Failure(Kind.REJECTED, f"bad request: {exc.message}")
    if isinstance(exc, TimedOut | NetworkError):
        # The request may have reached Telegram: resending risks a duplicate, not resending
        # risks a loss. We resend and count it.
        return Failure(Kind.UNKNOWN, f"{type(exc).__name__}, outcome unknown: {exc.message}")
    if isinstance(exc, TelegramError):
        if exc.message.lower().startswith(GARBLED):
            return Failure(Kind.UNKNOWN, f"garbled answer, outcome unknown: {exc.message}")
        return Failure(Kind.TRANSIENT, f"{type(exc).__name__}: {exc.message}")
    return Failure(Kind.BUG, f"{type(exc).__name__}: {exc}")


def redact(text: str, token: str | None) -> str:
    """`text` without the bot token (an error page may echo the request URL), nor its secret
    half on its own."""
    if not token:
        return text
    secret = token.split(":", 1)[-1]
    for part in (token, secret):
        if len(part) >= 8:  # PTB may change the case of an error text: match any case
            text = re.sub(re.escape(part), REDACTED, text, flags=re.IGNORECASE)
    return text
