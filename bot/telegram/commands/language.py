"""/language ru|en: the language of this chat's replies, alerts, spike alerts and digests,
kept in state (without it: the user's Telegram language, else `[telegram] language`)."""

from __future__ import annotations

from bot.telegram.commands.subscriptions import register_chat
from bot.telegram.context import Request
from bot.telegram.i18n import LANGUAGES, gettext_for

NAMES = {"en": "English", "ru": "русский"}


async def cmd_language(req: Request) -> str:
    wanted = (req.args[0] if req.args else "").strip().lower()
    if wanted not in LANGUAGES:
        _ = gettext_for(req.language)
        return _("This chat's language: {name}. Change it with /language ru or /language en."
                 ).format(name=NAMES.get(req.language, req.language))
    register_chat(req)
    req.services.audience.set_language(req.chat_id, wanted)
    _ = gettext_for(wanted)
    return _("✅ This chat now gets its replies and alerts in English.")
