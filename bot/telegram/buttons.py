"""Inline buttons under each alert, and their callback_data: signed, short, checked on return.

callback_data comes back from Telegram as untrusted input. Each button's data carries the action,
the alert (outbox id), the narrative's position in that alert and an HMAC over those and the
chat the alert was sent to (not carried: the press must come from that chat to verify), so a
tampered or invented press, or one replayed in another chat, is refused rather than trusted.
It stays well within 64 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.models import Alert
from bot.storage.store import Store
from bot.telegram.i18n import ENGLISH, Voice

RELEVANT, WRONG, MUTE = "r", "w", "m"
_DATA = re.compile(r"^([rwm]):(\d{1,12}):(\d{1,2}):([A-Za-z0-9_-]{11})$")


@dataclass(frozen=True)
class Press:
    """A verified button press: what to do, on which alert, for which of its narratives."""

    action: str
    alert_id: int
    narrative_index: int


class ButtonSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def from_store(cls, store: Store) -> ButtonSigner:
        """The signing key lives in state, so buttons keep working across restarts."""
        key = store.get_meta("button_secret")
        if key is None:
            key = secrets.token_hex(32)
            store.set_meta("button_secret", key)
        return cls(bytes.fromhex(key))

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:8]).decode().rstrip("=")

    def encode(self, action: str, alert_id: int, narrative_index: int = 0, *,
               chat_id: str) -> str:
        """The data of a button on the alert sent to `chat_id`."""
        payload = f"{action}:{alert_id}:{narrative_index}"
        return f"{payload}:{self._sign(f'{payload}@{chat_id}')}"

    def decode(self, data: str | None, chat_id: str) -> Press | None:
        """The press made in `chat_id`, or None when the data is malformed or its signature
        does not match (tampered, or pressed in a chat the alert was not sent to)."""
        match = _DATA.match(data or "")
        if match is None:
            return None
        action, alert_id, index, signature = match.groups()
        expected = self._sign(f"{action}:{alert_id}:{index}@{chat_id}")
        if not hmac.compare_digest(expected, signature):
            return None
        return Press(action, int(alert_id), int(index))

    def keyboard(self, alert: Alert, voice: Voice = ENGLISH) -> InlineKeyboardMarkup:
        """👍 relevant · 👎 not this narrative (one per narrative when several) · 🔇 mute source,
        labelled in the chat's language."""
        _ = voice.gettext
        chat = alert.chat_id
        wrong = [InlineKeyboardButton(_("👎 not this narrative"), callback_data=self.encode(
            WRONG, alert.id, 0, chat_id=chat))]
        if len(alert.evidence) > 1:
            wrong = [InlineKeyboardButton(_("👎 not: {id}").format(id=e.narrative_id)[:40],
                                          callback_data=self.encode(WRONG, alert.id, i,
                                                                    chat_id=chat))
                     for i, e in enumerate(alert.evidence)]
        return InlineKeyboardMarkup([
            [InlineKeyboardButton(_("👍 relevant"),
                                  callback_data=self.encode(RELEVANT, alert.id, chat_id=chat)),
             InlineKeyboardButton(_("🔇 mute source"),
                                  callback_data=self.encode(MUTE, alert.id, chat_id=chat))],
            wrong,
        ])
