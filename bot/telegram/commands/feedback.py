"""Presses on the buttons under an alert: 👍 relevant, 👎 not this narrative, 🔇 mute source.

A press arrives as signed callback_data (bot.telegram.buttons); anything that does not verify
is refused and changes nothing. Enough 👎 votes (or one from an admin) make the alert's passage
a counter-example of its narrative, at once and after every reload.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from telegram import CallbackQuery, Update

from bot.models import Alert, Evidence
from bot.telegram.buttons import MUTE, RELEVANT, WRONG
from bot.telegram.context import SORRY, Context, Services, chat_key, is_admin
from bot.telegram.format import MAX_ANSWER, trim

log = logging.getLogger(__name__)

INVALID = "This button is not valid."
UNKNOWN_ALERT = "This alert is no longer known."
BUTTON_MUTE = timedelta(days=7)


async def press_button(s: Services, query: CallbackQuery) -> str:
    """Verify and apply one press; return the answer to show (at most 200 characters)."""
    press = s.signer.decode(query.data)
    if press is None:
        return INVALID
    found = s.store.alert(press.alert_id)
    if found is None:
        return UNKNOWN_ALERT
    alert, article_key = found.alert, found.article_key
    if press.action == MUTE:
        return _mute(s, query, alert)
    if not 0 <= press.narrative_index < len(alert.evidence):
        return INVALID
    evidence = alert.evidence[press.narrative_index]
    user_id = query.from_user.id
    if press.action == RELEVANT:
        s.audience.vote(article_key, evidence.narrative_id, user_id, "relevant", alert.id)
        return "Thanks — marked relevant."
    if press.action == WRONG:
        return await _wrong(s, alert, article_key, evidence, user_id)
    return INVALID


async def _wrong(s: Services, alert: Alert, article_key: str, evidence: Evidence,
                 user_id: int) -> str:
    votes = s.audience.vote(article_key, evidence.narrative_id, user_id, "wrong", alert.id)
    needed = s.config.telegram.feedback_votes
    if not (is_admin(s, user_id) or votes >= needed):
        return f"Thanks — noted ({votes}/{needed} votes)."
    if s.audience.learn_counter_example(evidence.narrative_id, evidence.passage, article_key):
        await asyncio.to_thread(s.learn_counter_example, evidence.narrative_id, evidence.passage)
        log.info("learned a counter-example for %s from alert %d", evidence.narrative_id,
                 alert.id)
    return trim(f"Thanks — this passage will no longer match {evidence.narrative_title}.",
                MAX_ANSWER)


def _mute(s: Services, query: CallbackQuery, alert: Alert) -> str:
    """Mute the alert's source where the button was pressed (the channel: admins only)."""
    message = query.message
    chat_id = chat_key(s, message.chat) if message is not None else alert.chat_id
    if chat_id == s.audience.channel and not is_admin(s, query.from_user.id):
        return "Sorry, only the bot's admins may mute a source for the channel."
    s.audience.mute(chat_id, alert.source, datetime.now(UTC) + BUTTON_MUTE, query.from_user.id)
    return trim(f"Muted {alert.source} for 7 days", MAX_ANSWER - 30) + " (/muted to review)."


async def on_button(update: Update, context: Context) -> None:
    """PTB's callback for every press: answer it, whatever happens."""
    query = update.callback_query
    if query is None:
        return
    try:
        answer = await press_button(context.services, query)
    except Exception:
        log.exception("button %r failed", trim(query.data or "", 80))
        answer = SORRY
    try:
        await query.answer(trim(answer, MAX_ANSWER))
    except Exception:
        log.exception("could not answer callback query %s", query.id)
