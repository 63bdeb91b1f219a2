"""Outbox → Telegram messages: rendered, within limits, retried, marked sent exactly once.

Messages come as HTML and plain text from bot.telegram.render. A message Telegram's parser
still refuses is re-sent as plain text rather than dropped; a message Telegram finds too long
is cut shorter. Transient failures wait and retry; a 429 pauses the whole round.

Three queues are delivered in turn: article alerts (`outbox`), narrative-level posts (`posts`:
spike alerts and digests, each one Telegram message — a text, or a chart with its caption)
and admin notices. Posts follow the alerts' rules: marked *sending* before the request leaves,
*sent* once Telegram accepted it, retried with back-off, never dropped for a markup error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Generic, Protocol, TextIO, TypeVar

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.models import Alert
from bot.storage.audience import Audience
from bot.storage.store import Post, Store
from bot.telegram.buttons import ButtonSigner
from bot.telegram.format import MAX_MESSAGE_UTF16, cut_utf16, utf16_len
from bot.telegram.render import Rendered, render_alert, render_copy

log = logging.getLogger(__name__)

ORIGIN_WAIT = timedelta(seconds=5)  # a copy waits for its story's first alert to be sent


class AlertSink(Protocol):
    async def deliver_pending(self) -> DeliveryReport: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    paused_for: float = 0.0


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(5 * 2 ** max(attempts, 0), 3600))


async def _html_or_plain(html_send: Callable[[], Awaitable[Message]],
                         plain_send: Callable[[bool], Awaitable[Message]], what: str) -> Message:
    """Send the HTML version; when Telegram refuses it, the plain one (told if it was too long).

    Any other refusal is raised for the caller to record.
    """
    try:
        return await html_send()
    except BadRequest as exc:
        text = exc.message.lower()
        if "parse entities" not in text and "too long" not in text:
            raise
        # Telegram refused our markup or its length: plain text, cut short, never dropped.
        log.warning("falling back to plain text for %s: %s", what, exc.message)
        return await plain_send("too long" in text)


T = TypeVar("T")  # what a successful send returns: the alert's or the post's ids


class _Retry(Protocol):
    def __call__(self, error: str, delay: timedelta, *,
                 outcome_unknown: bool = False) -> None: ...


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    """Where the fate of one queued message is written: an alert's row or a post's row.

    Alerts and posts follow the same rules (see TelegramSink._attempt); only their tables differ.
    `what` names the message in the logs; `attempts` counts the tries before this one.
    """

    what: str
    chat_id: str
    attempts: int
    retry: _Retry
    fail: Callable[[str], None]
    sent: Callable[[T], None]


class TelegramSink:
    """Sends pending alerts with python-telegram-bot and records the outcome of each.

    Private chats get at most one message a second (Telegram's limit per chat); the overall and
    per-group limits are left to PTB's rate limiter when the bot has one.
    """

    PRIVATE_GAP_S = 1.0

    def __init__(self, bot: Bot, store: Store, *, max_attempts: int = 20,
                 signer: ButtonSigner | None = None, audience: Audience | None = None) -> None:
        self.bot = bot
        self.store = store
        self.max_attempts = max_attempts
        self.signer = signer
        self.audience = audience
        self._last_private_send: dict[str, float] = {}

    async def deliver_pending(self) -> DeliveryReport:
        report = DeliveryReport()
        for alert in self.store.pending_alerts():
            if not await self._deliver_one(alert, report):
                return report
        for post in self.store.pending_posts():
            if not await self._deliver_post(post, report):
                return report
        await self._deliver_notices()
        return report

    async def _deliver_post(self, post: Post, report: DeliveryReport) -> bool:
        """Try one spike alert or digest; False means stop this round (429)."""
        self.store.mark_post_sending(post.id)
        outcome: _Outcome[tuple[int, str | None]] = _Outcome(
            f"post {post.id} ({post.kind})", post.chat_id, post.attempts,
            retry=partial(self.store.mark_post_retry, post.id),
            fail=partial(self.store.mark_post_failed, post.id),
            sent=lambda ids: self.store.mark_post_sent(post.id, *ids))
        return await self._attempt(lambda: self._send_post(post), outcome, report)

    async def _send_post(self, post: Post) -> tuple[int, str | None]:
        """Send it; (message id, the photo's file_id when a chart was uploaded)."""
        no_preview = LinkPreviewOptions(is_disabled=True)
        chat_id = post.chat_id
        await self._pace(chat_id)
        if post.chart_id is None:
            message = await _html_or_plain(
                lambda: self.bot.send_message(chat_id, post.html, parse_mode=ParseMode.HTML,
                                              link_preview_options=no_preview),
                lambda too_long: self.bot.send_message(
                    chat_id, cut_utf16(post.plain, 3500 if too_long else MAX_MESSAGE_UTF16),
                    link_preview_options=no_preview),
                f"post {post.id} in chat {chat_id}")
            return message.message_id, None
        chart = self.store.chart(post.chart_id)
        photo: bytes | str = chart.file_id or chart.png
        message = await _html_or_plain(
            lambda: self.bot.send_photo(chat_id, photo, caption=post.html,
                                        parse_mode=ParseMode.HTML),
            lambda _: self.bot.send_photo(chat_id, photo, caption=cut_utf16(post.plain, 900)),
            f"the caption of post {post.id} in chat {chat_id}")
        sizes = message.photo or ()
        return message.message_id, (sizes[-1].file_id if sizes and not chart.file_id else None)

    async def _deliver_notices(self) -> None:
        for notice in self.store.pending_notices():
            try:
                await self.bot.send_message(notice.chat_id, notice.text)
            except RetryAfter:
                return
            except (Forbidden, BadRequest) as exc:
                log.warning("notice to %s failed: %s", notice.chat_id, exc.message)
                self.store.mark_notice(notice.id, "failed")
                continue
            except TelegramError as exc:
                if notice.attempts + 1 >= self.max_attempts:
                    self.store.mark_notice(notice.id, "failed")
                log.warning("notice to %s not sent yet: %s", notice.chat_id, exc.message)
                return
            self.store.mark_notice(notice.id, "sent")

    async def _deliver_one(self, alert: Alert, report: DeliveryReport) -> bool:
        """Try one alert; False means stop this round (Telegram asked us to slow down)."""
        rendered, reply_to = render_alert(alert), None
        if alert.origin_key is not None:
            origin = self.store.origin_delivery(alert.origin_key, alert.chat_id)
            if origin is not None and origin.status in ("pending", "sending"):
                self.store.defer(alert.id, ORIGIN_WAIT)  # the story's first alert goes first
                return True
            if origin is not None and origin.status == "sent":
                rendered, reply_to = render_copy(alert), origin.message_id
            # else the story never reached this chat (muted there, or failed): a full alert
        self.store.mark_sending(alert.id)
        outcome: _Outcome[int] = _Outcome(
            f"alert {alert.id}", alert.chat_id, alert.attempts,
            retry=partial(self.store.mark_retry, alert.id),
            fail=partial(self.store.mark_failed, alert.id),
            sent=partial(self.store.mark_sent, alert.id))
        return await self._attempt(lambda: self._send(alert, rendered, reply_to), outcome,
                                   report)

    async def _attempt(self, send: Callable[[], Awaitable[T]], outcome: _Outcome[T],
                       report: DeliveryReport) -> bool:
        """Send once and record what came of it; False means stop this round (429)."""
        try:
            result = await send()
        except RetryAfter as exc:
            delay = _seconds(exc.retry_after)
            outcome.retry(f"rate limited: retry after {delay:g}s", timedelta(seconds=delay))
            report.retried += 1
            report.paused_for = delay
            return False
        except Exception as exc:  # never leave an alert or a post marked 'sending'
            self._record_failure(exc, outcome, report)
            return True
        outcome.sent(result)
        report.sent += 1
        return True

    def _record_failure(self, exc: Exception, outcome: _Outcome[T],
                        report: DeliveryReport) -> None:
        """Follow a migrated chat, give up on one that is gone, retry everything else.

        Called while `exc` is being handled. The order matters: PTB's BadRequest and TimedOut
        are NetworkErrors, and every one of them a TelegramError.
        """
        if isinstance(exc, ChatMigrated):
            self._follow_migration(outcome, str(exc.new_chat_id), report)
        elif isinstance(exc, Forbidden):
            self._give_up(outcome, f"forbidden: {exc.message}", report)
            if self.audience is not None:  # blocked by the user, or removed from the chat
                self.audience.deactivate(outcome.chat_id, exc.message)
        elif isinstance(exc, BadRequest) and "chat not found" in exc.message.lower():
            self._give_up(outcome, f"chat not found: {outcome.chat_id}", report)
        elif isinstance(exc, BadRequest):
            self._retry_later(outcome, f"bad request: {exc.message}", report)
        elif isinstance(exc, (TimedOut, NetworkError)):
            # The request may have reached Telegram: resending risks a duplicate, not resending
            # risks a loss. We resend (at least once) and count it as interrupted.
            self._retry_later(outcome, f"{type(exc).__name__}, outcome unknown: {exc.message}",
                              report, outcome_unknown=True)
        elif isinstance(exc, TelegramError):  # 5xx and the like
            self._retry_later(outcome, f"{type(exc).__name__}: {exc.message}", report)
        else:
            log.exception("unexpected error sending %s", outcome.what)
            self._retry_later(outcome, f"{type(exc).__name__}: {exc}", report)

    def _follow_migration(self, outcome: _Outcome[T], new_id: str,
                          report: DeliveryReport) -> None:
        """The group became a supergroup: this message and all queued for the chat go there."""
        log.warning("chat %s migrated to %s; following it", outcome.chat_id, new_id)
        outcome.retry(f"chat migrated to {new_id}", timedelta(0))
        self.store.move_chat(outcome.chat_id, new_id)
        if self.audience is not None:
            self.audience.migrate(outcome.chat_id, new_id)
        report.retried += 1

    async def _pace(self, chat_id: str) -> None:
        if not chat_id.lstrip("-").isdigit() or chat_id.startswith("-"):
            return  # channels (@name) and groups (negative ids): PTB's limiter paces them
        last = self._last_private_send.get(chat_id)
        if last is not None and (wait := last + self.PRIVATE_GAP_S - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._last_private_send[chat_id] = time.monotonic()

    async def _send(self, alert: Alert, rendered: Rendered, reply_to: int | None = None) -> int:
        """Send an alert, or with `reply_to` a copy's line under the story's first alert."""
        chat_id = alert.chat_id
        no_preview = LinkPreviewOptions(is_disabled=True)
        buttons = self.signer.keyboard(alert) if self.signer and reply_to is None else None
        # the first alert may have been deleted since: then the line stands on its own
        thread = (None if reply_to is None else
                  ReplyParameters(message_id=reply_to, allow_sending_without_reply=True))
        await self._pace(chat_id)

        def plain(too_long: bool) -> Awaitable[Message]:
            text = rendered.plain
            if too_long:
                text = cut_utf16(text, min(3500, utf16_len(text) * 2 // 3))
            return self.bot.send_message(chat_id, text, link_preview_options=no_preview,
                                         reply_markup=buttons, reply_parameters=thread)

        message = await _html_or_plain(
            lambda: self.bot.send_message(chat_id, rendered.html, parse_mode=ParseMode.HTML,
                                          link_preview_options=no_preview, reply_markup=buttons,
                                          reply_parameters=thread),
            plain, f"alert {alert.id} in chat {chat_id}")
        return message.message_id

    def _retry_later(self, outcome: _Outcome[T], error: str, report: DeliveryReport,
                     *, outcome_unknown: bool = False) -> None:
        if outcome.attempts + 1 >= self.max_attempts:
            self._give_up(outcome, f"gave up after {outcome.attempts + 1} attempts: {error}",
                          report)
            return
        log.warning("%s to %s will be retried: %s", outcome.what, outcome.chat_id, error)
        outcome.retry(error, _backoff(outcome.attempts), outcome_unknown=outcome_unknown)
        report.retried += 1

    def _give_up(self, outcome: _Outcome[T], error: str, report: DeliveryReport) -> None:
        log.error("%s to %s failed: %s", outcome.what, outcome.chat_id, error)
        outcome.fail(error)
        report.failed += 1


class ConsoleSink:
    """Without a bot token, alerts are printed; printing them counts as their delivery."""

    def __init__(self, store: Store, stream: TextIO | None = None) -> None:
        self.store = store
        self.stream = stream or sys.stdout

    async def deliver_pending(self) -> DeliveryReport:
        report = DeliveryReport()
        for alert in self.store.pending_alerts(limit=10_000):
            rendered = render_copy(alert) if alert.origin_key else render_alert(alert)
            print(f"--- alert for {alert.chat_id}\n{rendered.plain}\n",
                  file=self.stream, flush=True)
            self.store.mark_sent(alert.id, None)
            report.sent += 1
        for post in self.store.pending_posts(limit=10_000):
            chart = " (with a chart)" if post.chart_id is not None else ""
            print(f"--- {post.kind} for {post.chat_id}{chart}\n{post.plain}\n",
                  file=self.stream, flush=True)
            self.store.mark_post_sent(post.id, None)
            report.sent += 1
        for notice in self.store.pending_notices(limit=10_000):
            print(f"--- notice for {notice.chat_id}\n{notice.text}\n", file=self.stream, flush=True)
            self.store.mark_notice(notice.id, "sent")
        return report


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
