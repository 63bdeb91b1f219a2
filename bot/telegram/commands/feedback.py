"""Presses on the buttons under an alert: 👍 relevant, 👎 not this narrative, 🔇 mute source.

A press arrives as signed callback_data (bot.telegram.buttons), bound to the chat the alert was
sent to; anything that does not verify there is refused and changes nothing. In the channel and
in groups only their admins, the bot's admins and `[telegram] trusted` users vote (and mute);
in a private chat its user does. One 👎 from a bot admin, or `feedback_votes` from trusted
users, make the alert's passage a counter-example of its narrative, at once and after every
reload; other votes are kept as feedback.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from telegram import Bot, CallbackQuery, Chat, Update

from bot.models import Alert, Evidence
from bot.telegram.buttons import MUTE, RELEVANT, WRONG
from bot.telegram.context import SORRY, Context, Services, chat_key, is_admin
from bot.telegram.format import MAX_ANSWER, trim
from bot.telegram.i18n import N_, Translate, gettext_for, language_of
from bot.telegram.permissions import MemberCache, is_trusted, may_change_chat, may_vote

log = logging.getLogger(__name__)

INVALID = N_("This button is not valid.")
UNKNOWN_ALERT = N_("This alert is no longer known.")
BUTTON_MUTE = timedelta(days=7)
NOT_ALLOWED = N_("Sorry, only this chat's admins and trusted users vote here.")
GROUP_ADMINS_ONLY = N_("Sorry, only this chat's admins may change its settings.")


async def press_button(s: Services, query: CallbackQuery, bot: Bot | None = None,
                       members: MemberCache | None = None) -> str:
    """Verify and apply one press; return the answer to show (at most 200 characters), in
    the presser's language. `bot` and `members` find a chat's admins (without them, only the
    config's people)."""
    _ = gettext_for(_language(s, query))
    message = query.message
    if message is None:  # an inline message: not one of our alerts
        return _(INVALID)
    chat = message.chat
    press = s.signer.decode(query.data, chat_key(s, chat))
    if press is None:
        return _(INVALID)
    found = s.store.alert(press.alert_id)
    if found is None:
        return _(UNKNOWN_ALERT)
    alert, article_key = found.alert, found.article_key
    if alert.chat_id != chat_key(s, chat):
        return _(INVALID)  # signed for another chat than the one it was pressed in
    user_id = query.from_user.id
    if not await _may_vote(s, bot, members, chat, user_id):
        return _(NOT_ALLOWED)
    if press.action == MUTE:
        in_group = chat.type != "private" and alert.chat_id != s.audience.channel
        if in_group and not await _may_change(s, bot, members, chat, user_id):
            return _(GROUP_ADMINS_ONLY)  # muting a source is a setting for the whole chat
        return _mute(s, alert, user_id, _)
    if not 0 <= press.narrative_index < len(alert.evidence):
        return _(INVALID)
    evidence = alert.evidence[press.narrative_index]
    if press.action == RELEVANT:
        s.audience.vote(article_key, evidence.narrative_id, user_id, "relevant", alert.id)
        return _("Thanks — marked relevant.")
    if press.action == WRONG:
        return await _wrong(s, alert, article_key, evidence, user_id, _)
    return _(INVALID)


def _language(s: Services, query: CallbackQuery) -> str:
    """The chat's chosen language, else the presser's Telegram one, else the default."""
    message = query.message
    chosen = s.audience.chosen_language(chat_key(s, message.chat)) if message else None
    return chosen or language_of(query.from_user.language_code, s.config.telegram.language)


async def _may_change(s: Services, bot: Bot | None, members: MemberCache | None, chat: Chat,
                      user_id: int) -> bool:
    if bot is None or members is None:
        return is_admin(s, user_id)
    return await may_change_chat(s.config.telegram, members, bot, chat, user_id)


async def _may_vote(s: Services, bot: Bot | None, members: MemberCache | None, chat: Chat,
                    user_id: int) -> bool:
    config = s.config.telegram
    if bot is None or members is None:
        return chat.type == "private" or is_trusted(config, user_id)
    return await may_vote(config, members, bot, chat, user_id)


async def _wrong(s: Services, alert: Alert, article_key: str, evidence: Evidence,
                 user_id: int, _: Translate) -> str:
    s.audience.vote(article_key, evidence.narrative_id, user_id, "wrong", alert.id)
    config = s.config.telegram
    voters = s.audience.wrong_voters(article_key, evidence.narrative_id)
    votes = sum(is_trusted(config, voter) for voter in voters)
    needed = config.feedback_votes
    if not (is_admin(s, user_id) or votes >= needed):
        return _("Thanks — noted ({votes}/{needed} trusted votes).").format(votes=votes,
                                                                             needed=needed)
    if s.audience.learn_counter_example(evidence.narrative_id, evidence.passage, article_key):
        await asyncio.to_thread(s.learn_counter_example, evidence.narrative_id, evidence.passage)
        log.info("learned a counter-example for %s from alert %d", evidence.narrative_id,
                 alert.id)
    return trim(_("Thanks — this passage will no longer match {narrative}.").format(
        narrative=evidence.narrative_title), MAX_ANSWER)


def _mute(s: Services, alert: Alert, user_id: int, _: Translate) -> str:
    """Mute the alert's source in the chat it was sent to (the channel: bot admins only)."""
    if alert.chat_id == s.audience.channel and not is_admin(s, user_id):
        return _("Sorry, only the bot's admins may mute a source for the channel.")
    s.audience.mute(alert.chat_id, alert.source, datetime.now(UTC) + BUTTON_MUTE, user_id)
    review = " " + _("(/muted to review).")
    return trim(_("Muted {source} for 7 days").format(source=alert.source),
                MAX_ANSWER - len(review)) + review


async def on_button(update: Update, context: Context) -> None:
    """PTB's callback for every press: answer it, whatever happens."""
    query = update.callback_query
    if query is None:
        return
    try:
        answer = await press_button(context.services, query, context.bot,
                                    context.bot_data.members)
    except Exception:
        log.exception("button %r failed", trim(query.data or "", 80))
        answer = gettext_for(context.services.config.telegram.language)(SORRY)
    try:
        await query.answer(trim(answer, MAX_ANSWER))
    except Exception:
        log.exception("could not answer callback query %s", query.id)
