"""Every message the bot posts on its own: alerts, syndicated copies, spike alerts, digests.

Each comes as Telegram HTML and as plain text (`Rendered`): the plain one is sent when Telegram
refuses the markup, so both stay within Telegram's limits. Every string from a feed or a
narrative file is escaped. Alerts and digests escape quotes too, as they always have, so their
markup is unchanged. Replies to commands are written by their commands (bot.telegram.commands).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

from bot.models import Alert
from bot.storage.store import MatchRecord
from bot.telegram.format import (
    MAX_CAPTION_UTF16,
    MAX_MESSAGE_UTF16,
    MAX_URL_CHARS,
    cut_utf16,
    esc,
    format_change,
    trim,
    utf16_len,
)
from bot.trends.digest import ARTICLES, Digest, DigestEntry
from bot.trends.spikes import SpikeCheck

EVIDENCE_CHARS = 1200
SPIKE_SOURCES = 6

_esc = partial(esc, quote=True)


@dataclass(frozen=True)
class Rendered:
    """One message as Telegram HTML and as plain text."""

    html: str
    plain: str


@dataclass(frozen=True)
class DigestText:
    """A digest's two messages: the text, and the caption under its chart."""

    text: Rendered
    caption: Rendered


def _link(title: str, url: str) -> str:
    """The title as a link, or as text when the URL is missing or too long to keep whole."""
    url = url if len(url) <= MAX_URL_CHARS else ""
    return f'<a href="{_esc(url)}">{_esc(title)}</a>' if url else _esc(title)


def render_alert(alert: Alert) -> Rendered:
    """The alert as Telegram HTML and as plain text; both within Telegram's length limit."""
    evidence_chars = EVIDENCE_CHARS  # halved until the message fits
    while True:
        per_passage = max(evidence_chars // max(len(alert.evidence), 1), 40)
        title = trim(alert.article_title, 300) or "(untitled)"
        when = f" · {alert.published:%Y-%m-%d %H:%M} UTC" if alert.published else ""
        url = alert.article_url if len(alert.article_url) <= MAX_URL_CHARS else ""
        heads = [f"🚨 <b>{_esc(e.narrative_title)}</b> · score {e.score:.2f}"
                 for e in alert.evidence]
        quotes = [f"<blockquote>{_esc(trim(e.passage, per_passage))}</blockquote>"
                  for e in alert.evidence]
        rich = "\n".join([*heads, f"{_esc(alert.source)}{_esc(when)}", _link(title, url), "",
                          *quotes])
        plain = "\n".join([
            *(f"🚨 {e.narrative_title} · score {e.score:.2f}" for e in alert.evidence),
            f"{alert.source}{when}", title, url, "",
            *(f"« {trim(e.passage, per_passage)} »" for e in alert.evidence)])
        if max(utf16_len(rich), utf16_len(plain)) <= MAX_MESSAGE_UTF16 or evidence_chars < 80:
            return Rendered(html=rich, plain=plain)
        evidence_chars //= 2


def render_copy(alert: Alert) -> Rendered:
    """A syndicated copy: one line, sent as a reply under the story's first alert."""
    title = trim(alert.article_title, 300) or "(untitled)"
    url = alert.article_url if len(alert.article_url) <= MAX_URL_CHARS else ""
    return Rendered(html=f"🔁 Also in <b>{_esc(trim(alert.source, 200))}</b>: {_link(title, url)}",
                    plain=f"🔁 Also in {trim(alert.source, 200)}: {title} {url}".rstrip())


def _hours(delta: timedelta) -> str:
    hours = round(delta.total_seconds() / 3600)
    return f"{hours // 24} days" if hours % 24 == 0 and hours > 24 else f"{hours} h"


def _counted(pairs: tuple[tuple[str, int], ...], limit: int) -> str:
    shown = " · ".join(f"{trim(name, 60)} {n}" for name, n in pairs[:limit])
    return shown + (f" · +{len(pairs) - limit} more" if len(pairs) > limit else "")


def render_spike(spike: SpikeCheck) -> Rendered:
    """A spike alert: the numbers, the top sources and languages; fits a photo caption."""
    window = _hours(spike.window_end - spike.window_start)
    usual = f"{spike.baseline_median:g}"
    change = format_change(spike.count, round(spike.baseline_median))
    for limit in (SPIKE_SOURCES, 3, 1):
        sources = _counted(spike.sources, limit)
        languages = _counted(spike.languages, limit)
        lines = [
            (f"📈 <b>Spike: {_esc(spike.title)}</b>", f"📈 Spike: {spike.title}"),
            (f"<b>{spike.count}</b> matches in the last {window}, usually {usual} "
             f"({_esc(change)}, robust z = {spike.z:.1f})",
             f"{spike.count} matches in the last {window}, usually {usual} "
             f"({change}, robust z = {spike.z:.1f})"),
            (f"{spike.distinct_sources} sources: {_esc(sources)}",
             f"{spike.distinct_sources} sources: {sources}"),
            (f"languages: {_esc(languages)}", f"languages: {languages}"),
            (f"/trend {_esc(spike.narrative_id)}", f"/trend {spike.narrative_id}"),
        ]
        rich = "\n".join(r for r, _ in lines)
        plain = "\n".join(p for _, p in lines)
        if max(utf16_len(rich), utf16_len(plain)) <= MAX_CAPTION_UTF16:
            break
    plain = cut_utf16(plain, MAX_CAPTION_UTF16)
    if utf16_len(rich) > MAX_CAPTION_UTF16:  # cannot happen with titles ≤ 200 characters
        rich = _esc(cut_utf16(plain, MAX_CAPTION_UTF16 - 100))
    return Rendered(html=rich, plain=plain)


def render_digest(digest: Digest) -> DigestText:
    """The digest's text (within 4096 UTF-16 units) and its chart's caption."""
    caption = (f"Matches per day by narrative, last {digest.chart_days} days "
               f"({digest.timezone})")
    return DigestText(_digest_text(digest), Rendered(_esc(caption), caption))


def _digest_head(digest: Digest) -> tuple[list[str], list[str]]:
    """The digest's first lines, as HTML and as plain text."""
    zone = ZoneInfo(digest.timezone)
    word = {"daily": "Daily", "weekly": "Weekly"}[digest.every]
    before = {"daily": "previous day", "weekly": "previous week"}[digest.every]
    period = (f"{digest.start.astimezone(zone):%d %b %H:%M} – "
              f"{digest.end.astimezone(zone):%d %b %Y %H:%M} ({digest.timezone})")
    entries = digest.entries
    total, previous = digest.total, sum(e.previous for e in entries)
    narratives = sum(1 for e in entries if e.count)
    change = format_change(total, previous)
    rich = [f"🗞 <b>{word} digest</b> · {_esc(period)}",
            f"<b>{total}</b> matches across {narratives} narrative(s) "
            f"({before}: {previous}, {_esc(change)})"]
    plain = [f"🗞 {word} digest · {period}",
             f"{total} matches across {narratives} narrative(s) ({before}: {previous}, {change})"]
    if digest.late:
        rich.append("<i>Sent late: the bot was not running at the due time.</i>")
        plain.append("Sent late: the bot was not running at the due time.")
    return rich, plain


def _digest_entry(entry: DigestEntry, articles: tuple[MatchRecord, ...],
                  rich: list[str], plain: list[str]) -> None:
    """One narrative's lines, appended to both renderings."""
    change = format_change(entry.count, entry.previous)
    rich += ["", f"<b>{_esc(trim(entry.title, 120))}</b> — {entry.count} ({_esc(change)})"]
    plain += ["", f"{trim(entry.title, 120)} — {entry.count} ({change})"]
    for r in articles:
        title = trim(r.title, 140) or "(untitled)"
        meta = f"{trim(r.source, 60)} · {r.language or 'und'} · {r.score:.2f}"
        rich.append(f"• {_link(title, r.url)} · {_esc(meta)}")
        plain.append(f"• {title} · {meta}\n  {r.url}")


def _digest_text(digest: Digest) -> Rendered:
    """Fewer articles per narrative until it fits; then whole lines only, so no tag is cut."""
    active = [e for e in digest.entries if e.count or e.previous]
    quiet = [e for e in digest.entries if not (e.count or e.previous)]
    for per in (ARTICLES, 2, 1, 0):
        rich, plain = _digest_head(digest)
        for e in active:
            _digest_entry(e, e.articles[:per], rich, plain)
        if not active:
            rich += ["", "No matches in this period or the one before."]
            plain += ["", "No matches in this period or the one before."]
        if quiet:
            names = ", ".join(trim(e.title, 60) for e in quiet)
            rich += ["", f"<i>Quiet: {_esc(names)}</i>"]
            plain += ["", f"Quiet: {names}"]
        text, plain_text = "\n".join(rich), "\n".join(plain)
        if max(utf16_len(text), utf16_len(plain_text)) <= MAX_MESSAGE_UTF16:
            return Rendered(text, plain_text)
    # still too long (hundreds of narratives)
    kept: list[str] = []
    for line in text.split("\n"):
        if utf16_len("\n".join([*kept, line])) > MAX_MESSAGE_UTF16 - 20:
            break
        kept.append(line)
    return Rendered("\n".join([*kept, "…"]), plain_text[: MAX_MESSAGE_UTF16 - 20] + "…")
