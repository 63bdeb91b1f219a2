"""Text for Telegram: escaping, shortening, length as Telegram counts it, and its limits.

Telegram measures messages and captions in UTF-16 code units (an emoji outside the BMP counts
twice) and refuses anything longer than the limits below. Every message the bot builds goes
through these helpers, so those rules are written once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.telegram.i18n import ENGLISH, Voice

MAX_MESSAGE_UTF16 = 4096  # sendMessage text
MAX_CAPTION_UTF16 = 1024  # sendPhoto caption
MAX_ANSWER = 200  # answerCallbackQuery text
MAX_COMMAND_DESCRIPTION = 256  # setMyCommands, per command
LIST_BUDGET_UTF16 = 3800  # a listing leaves room for a header and the "…and N more" line
MAX_URL_CHARS = 1000  # longer links are left out rather than cut into broken ones
_TAG = re.compile(r"<[^<>]*>")  # a tag of our own markup (feed text is always escaped)


def esc(text: object, *, quote: bool = False) -> str:
    """`text` safe inside Telegram HTML; `quote` also escapes quotes (attribute values)."""
    return html.escape(str(text), quote=quote)


def trim(text: str, limit: int) -> str:
    """One line of at most `limit` characters: whitespace collapsed, an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cut(text: str, limit: int) -> str:
    """Like `trim`, but line breaks are kept (multi-line error reports)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def utf16_len(text: str) -> int:
    """The length Telegram sees."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def cut_utf16(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units, with an ellipsis when cut."""
    if utf16_len(text) <= limit:
        return text
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * (limit - 1)]
    return units.decode("utf-16-le", errors="ignore") + "…"


def listing(header: str, entries: Sequence[str], budget: int = LIST_BUDGET_UTF16,
            voice: Voice = ENGLISH) -> str:
    """`header` and as many entries as fit, then '…and N more'."""
    shown: list[str] = []
    used = utf16_len(header)
    for entry in entries:
        used += utf16_len(entry) + 1
        if used > budget:
            break
        shown.append(entry)
    more = len(entries) - len(shown)
    tail = [voice.gettext("…and {n} more").format(n=more)] if more else []
    return "\n".join([header, *shown, *tail])


def fit(text: str) -> str:
    """A last guard on length: whole lines only, so no HTML tag is cut in half; a first line
    too long on its own (escaping makes one '<' five characters) becomes plain text, cut."""
    if utf16_len(text) <= MAX_MESSAGE_UTF16:
        return text
    lines = text.split("\n")
    fitted = listing(lines[0], lines[1:], MAX_MESSAGE_UTF16 - 40)
    if utf16_len(fitted) <= MAX_MESSAGE_UTF16:
        return fitted
    plain = html.unescape(_TAG.sub("", text))
    limit = MAX_MESSAGE_UTF16 - 40
    while utf16_len(shown := esc(cut_utf16(plain, limit))) > MAX_MESSAGE_UTF16:
        limit = limit * 2 // 3
    return shown


def when(moment: datetime | None, voice: Voice = ENGLISH) -> str:
    if moment is None:
        return voice.gettext("never")
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def span(delta: timedelta, voice: Voice = ENGLISH) -> str:
    """'7 days', '12 hours', '1 day 6 hours', '30 minutes', '45 seconds'."""
    seconds = int(delta.total_seconds())
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    # one ngettext call per unit, spelt out: that is how the catalogue finds each plural
    words = [voice.ngettext("{n} day", "{n} days", days).format(n=days) if days else "",
             voice.ngettext("{n} hour", "{n} hours", hours).format(n=hours) if hours else "",
             voice.ngettext("{n} minute", "{n} minutes", minutes).format(n=minutes)
             if minutes else ""]
    shown = [w for w in words if w][:2]
    return " ".join(shown) or voice.ngettext("{n} second", "{n} seconds",
                                             seconds).format(n=seconds)


def format_change(count: int, previous: int) -> str:
    """'+50%', '−20%', '±0%', 'new' (nothing before), '—' (nothing either time)."""
    if previous == 0:
        return "new" if count else "—"
    pct = round(100 * (count - previous) / previous)
    return "±0%" if pct == 0 else (f"+{pct}%" if pct > 0 else f"−{-pct}%")
