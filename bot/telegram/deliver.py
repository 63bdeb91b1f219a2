"""Outbox → Telegram messages: rendered, within limits, retried, marked sent exactly once.

Messages come as HTML and plain text from bot.telegram.render. A message Telegram's parser
still refuses is re-sent as plain text rather than dropped; a message Telegram finds too long
is cut shorter. Transient failures (429, 5xx, network) wait and retry for as long as the
deadline allows (`[telegram] delivery_deadline`, 7 days), then the admins are told; a 429
pauses the whole round. A chat Telegram says is unreachable (kicked, chat not found) is paused
(bot/storage/pauses.py), the admins are told once, and a probe resumes it (`probe_paused`).
A send whose outcome is unknown (timed out, garbled answer, cut off by a stop) is retried and
counted as interrupted. `stop()` ends a round after the send in flight.

Three queues are delivered in turn: article alerts (`outbox`), narrative-level posts (`posts`:
spike alerts and digests, each one Telegram message — a text, or a chart with its caption)
and admin notices. Posts follow the alerts' rules: marked *sending* before the request leaves,
*sent* once Telegram accepted it, retried with back-off, never dropped for a markup error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Generic, Protocol, TypeVar

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.models import Alert
from bot.storage.audience import Audience
from bot.storage.database import utcnow
from bot.storage.store import Post, Store
from bot.telegram.buttons import ButtonSigner
from bot.telegram.console import ConsoleSink
from bot.telegram.failures import Kind, classify, redact
from bot.telegram.format import MAX_MESSAGE_UTF16, cut_utf16, utf16_len
from bot.telegram.i18n import ENGLISH, Voices
from bot.telegram.reachability import probe_paused
from bot.telegram.render import Rendered, render_alert, render_copy
from bot.telegram.report import DeliveryReport

log = logging.getLogger(__name__)

__all__ = ["AlertSink", "ConsoleSink", "DeliveryReport", "TelegramSink"]

ORIGIN_WAIT = timedelta(seconds=5)  # a copy waits for its story's first alert to be sent


DEADLINE = timedelta(days=7)  # transient failures are retried this long, then admins told


class AlertSink(Protocol):
    async def deliver_pending(self) -> DeliveryReport: ...

    def stop(self) -> None:
        """Finish the send in flight, start no other (the process is stopping)."""


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
    `what` names the message in the logs; `attempts` counts the tries before this one;
    `kind` and `row_id` find its row ('alert' or 'post').
    """

    what: str
    kind: str
    row_id: int
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
                 signer: ButtonSigner | None = None, audience: Audience | None = None,
                 admins: Sequence[str] = (), deadline: timedelta = DEADLINE,
                 voices: Voices | None = None) -> None:
        """`max_attempts`: tries of a request Telegram refuses (400) before giving up;
        `deadline`: how long transient failures are retried; `admins`: who is told;
        `voices`: each chat's language (English without)."""
        self.bot = bot
        self.voices = voices
        self.store = store
        self.max_attempts = max_attempts
        self.signer = signer
        self.audience = audience
        self.admins = list(admins)
        self.deadline = deadline
        self._last_private_send: dict[str, float] = {}
        self._paused: set[str] = set()  # chats paused during this round
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def deliver_pending(self) -> DeliveryReport:
        report = DeliveryReport()
        self._paused = set()
        if (problem := self.store.take_problem()) is not None:
            await self._tell_admins_now(f"⚠️ {problem}")
        await probe_paused(self.bot, self.store, self.admins)
        for alert in self.store.pending_alerts():
            if self._stopping or not await self._deliver_one(alert, report):
                return report
        for post in self.store.pending_posts():
            if self._stopping or not await self._deliver_post(post, report):
                return report
        if not self._stopping:
            await self._deliver_notices()
        return report

    async def _tell_admins_now(self, text: str) -> None:
        """Straight to the admins, not through the state (the disk may be what is wrong)."""
        for admin in self.admins:
            try:
                await self.bot.send_message(admin, text[:MAX_MESSAGE_UTF16 - 100])
            except TelegramError as exc:
                log.warning("could not tell admin %s: %s", admin, exc.message)

    async def _deliver_post(self, post: Post, report: DeliveryReport) -> bool:
        """Try one spike alert or digest; False means stop this round (429)."""
        if post.chat_id in self._paused:
            return True
        self.store.mark_post_sending(post.id)
        outcome: _Outcome[tuple[int, str | None]] = _Outcome(
            f"post {post.id} ({post.kind})", "post", post.id, post.chat_id, post.attempts,
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
        if alert.chat_id in self._paused:
            return True
        voice = ENGLISH if self.voices is None else self.voices.of_chat(alert.chat_id)
        rendered, reply_to = render_alert(alert, voice), None
        if alert.origin_key is not None:
            origin = self.store.origin_delivery(alert.origin_key, alert.chat_id)
            if origin is not None and origin.status in ("pending", "sending"):
                self.store.defer(alert.id, ORIGIN_WAIT)  # the story's first alert goes first
                return True
            if origin is not None and origin.status == "sent":
                rendered, reply_to = render_copy(alert, voice), origin.message_id
            # else the story never reached this chat (muted there, or failed): a full alert
        self.store.mark_sending(alert.id)
        outcome: _Outcome[int] = _Outcome(
            f"alert {alert.id}", "alert", alert.id, alert.chat_id, alert.attempts,
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
            self._retry_transient(outcome, f"rate limited: retry after {delay:g}s", report,
                                  delay=timedelta(seconds=delay))
            report.paused_for = delay
            return False
        except asyncio.CancelledError:
            # Stopped mid-send: the request may have left. Pending and counted, never
            # 'sending'; the cancellation goes on.
            outcome.retry("stopped while sending, outcome unknown", timedelta(0),
                          outcome_unknown=True)
            raise
        except Exception as exc:  # never leave an alert or a post marked 'sending'
            self._record_failure(exc, outcome, report)
            return True
        outcome.sent(result)
        report.sent += 1
        return True

    def _record_failure(self, exc: Exception, outcome: _Outcome[T],
                        report: DeliveryReport) -> None:
        """Each kind of failure (bot.telegram.failures) has its rule."""
        failure = classify(exc, outcome.chat_id)
        error = redact(failure.error, self.bot.token)
        if failure.kind is Kind.MIGRATED and failure.new_chat_id is not None:
            self._follow_migration(outcome, failure.new_chat_id, report)
        elif failure.kind is Kind.BLOCKED:
            self._give_up(outcome, error, report)
            if self.audience is not None:  # the user blocked the bot
                self.audience.deactivate(outcome.chat_id, redact(str(exc), self.bot.token))
        elif failure.kind is Kind.UNREACHABLE:
            self._pause_chat(outcome, error, report)
        elif failure.kind is Kind.REJECTED:
            self._retry_rejected(outcome, error, report)
        else:
            if failure.kind is Kind.BUG:
                log.exception("unexpected error sending %s", outcome.what)
            self._retry_transient(outcome, error, report,
                                  outcome_unknown=failure.kind is Kind.UNKNOWN)

    def _pause_chat(self, outcome: _Outcome[T], error: str, report: DeliveryReport) -> None:
        """The chat is out of reach: this message waits, and so does everything for the chat
        until a probe finds it back; the admins are told once."""
        outcome.retry(error, timedelta(0))
        report.retried += 1
        self._paused.add(outcome.chat_id)
        if self.store.pause_chat(outcome.chat_id, error):
            log.error("chat %s is unreachable (%s): its deliveries are paused", outcome.chat_id,
                      error)
            self.store.add_notice(self.admins, (
                f"⏸ Deliveries to {outcome.chat_id} are paused: {error}. They resume by "
                f"themselves once the bot can post there again; nothing is lost meanwhile."))

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
        voice = ENGLISH if self.voices is None else self.voices.of_chat(chat_id)
        buttons = self.signer.keyboard(alert, voice) if self.signer and reply_to is None else None
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

    def _retry_rejected(self, outcome: _Outcome[T], error: str,
                        report: DeliveryReport) -> None:
        """Telegram refuses the request itself: `max_attempts` tries, then the admins know."""
        if outcome.attempts + 1 >= self.max_attempts:
            self._give_up(outcome, f"gave up after {outcome.attempts + 1} attempts: {error}",
                          report, tell_admins=True)
            return
        log.warning("%s to %s will be retried: %s", outcome.what, outcome.chat_id, error)
        outcome.retry(error, _backoff(outcome.attempts))
        report.retried += 1

    def _retry_transient(self, outcome: _Outcome[T], error: str, report: DeliveryReport, *,
                         outcome_unknown: bool = False, delay: timedelta | None = None) -> None:
        """Telegram or the network is having trouble: retried until the deadline, however
        many attempts that takes; an unknown outcome is counted (a possible duplicate)."""
        queued = self.store.queued_at(outcome.kind, outcome.row_id)
        if queued is not None and utcnow() - queued > self.deadline:
            self._give_up(outcome, f"undelivered for {_days(self.deadline)}: {error}", report,
                          outcome_unknown=outcome_unknown, tell_admins=True)
            return
        log.warning("%s to %s will be retried: %s", outcome.what, outcome.chat_id, error)
        outcome.retry(error, delay if delay is not None else _backoff(outcome.attempts),
                      outcome_unknown=outcome_unknown)
        report.retried += 1

    def _give_up(self, outcome: _Outcome[T], error: str, report: DeliveryReport, *,
                 outcome_unknown: bool = False, tell_admins: bool = False) -> None:
        log.error("%s to %s failed: %s", outcome.what, outcome.chat_id, error)
        if outcome_unknown:  # the last try may have reached the chat: counted all the same
            outcome.retry(error, timedelta(0), outcome_unknown=True)
        outcome.fail(error)
        report.failed += 1
        if tell_admins:
            self.store.add_notice(self.admins, (
                f"❌ {outcome.what} to {outcome.chat_id} was not delivered: {error}. "
                f"`narrative-bot outbox retry` sends it again."))


def _days(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{days:g} days" if days >= 1 else f"{value.total_seconds():g}s"


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
