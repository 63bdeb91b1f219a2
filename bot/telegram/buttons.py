"""Inline buttons under each alert, and their callback_data: signed, short, checked on return.

callback_data comes back from Telegram as untrusted input. Each button's data carries the action,
the alert (outbox id), the narrative's position in that alert and an HMAC over those, so a
tampered or invented press is refused rather than trusted. It stays well within 64 bytes.
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

    def encode(self, action: str, alert_id: int, narrative_index: int = 0) -> str:
        payload = f"{action}:{alert_id}:{narrative_index}"
        return f"{payload}:{self._sign(payload)}"

    def decode(self, data: str | None) -> Press | None:
        """The press, or None when the data is malformed or its signature does not match."""
        match = _DATA.match(data or "")
        if match is None:
            return None
        action, alert_id, index, signature = match.groups()
        if not hmac.compare_digest(self._sign(f"{action}:{alert_id}:{index}"), signature):
            return None
        return Press(action, int(alert_id), int(index))

    def keyboard(self, alert: Alert) -> InlineKeyboardMarkup:
        """👍 relevant · 👎 not this narrative (one per narrative when several) · 🔇 mute source."""
        wrong = [InlineKeyboardButton("👎 not this narrative", callback_data=self.encode(
            WRONG, alert.id, 0))]
        if len(alert.evidence) > 1:
            wrong = [InlineKeyboardButton(f"👎 not: {e.narrative_id}"[:40],
                                          callback_data=self.encode(WRONG, alert.id, i))
                     for i, e in enumerate(alert.evidence)]
        return InlineKeyboardMarkup([
            [InlineKeyboardButton("👍 relevant", callback_data=self.encode(RELEVANT, alert.id)),
             InlineKeyboardButton("🔇 mute source", callback_data=self.encode(MUTE, alert.id))],
            wrong,
        ])
