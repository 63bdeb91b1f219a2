"""Every message the bot posts on its own: alerts, syndicated copies, spike alerts, digests.

Each comes as Telegram HTML and as plain text (`Rendered`): the plain one is sent when Telegram
refuses the markup, so both stay within Telegram's limits. Every string from a feed or a
narrative file is escaped. Alerts and digests escape quotes too, as they always have, so their
markup is unchanged. Replies to commands are written by their commands (bot.telegram.commands).
Each is written in its chat's language (a `Voice`, bot.telegram.i18n: English by default), with
the narratives' titles in that language where a narrative file gives one (`title_ru`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

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
from bot.telegram.i18n import ENGLISH, N_, Translate, Voice
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


def render_alert(alert: Alert, voice: Voice = ENGLISH) -> Rendered:
    """The alert as Telegram HTML and as plain text; both within Telegram's length limit."""
    _ = voice.gettext
    evidence_chars = EVIDENCE_CHARS  # halved until the message fits
    names = {e.narrative_id: voice.title(e.narrative_id, e.narrative_title)
             for e in alert.evidence}
    while True:
        per_passage = max(evidence_chars // max(len(alert.evidence), 1), 40)
        title = trim(alert.article_title, 300) or _("(untitled)")
        when = f" · {alert.published:%Y-%m-%d %H:%M} UTC" if alert.published else ""
        url = alert.article_url if len(alert.article_url) <= MAX_URL_CHARS else ""
        heads = [_("🚨 <b>{narrative}</b> · score {score}").format(
                     narrative=_esc(names[e.narrative_id]), score=f"{e.score:.2f}")
                 for e in alert.evidence]
        quotes = [f"<blockquote>{_esc(trim(e.passage, per_passage))}</blockquote>"
                  for e in alert.evidence]
        rich = "\n".join([*heads, f"{_esc(alert.source)}{_esc(when)}", _link(title, url), "",
                          *quotes])
        plain = "\n".join([
            *(_("🚨 {narrative} · score {score}").format(
                narrative=names[e.narrative_id], score=f"{e.score:.2f}")
              for e in alert.evidence),
            f"{alert.source}{when}", title, url, "",
            *(f"« {trim(e.passage, per_passage)} »" for e in alert.evidence)])
        if max(utf16_len(rich), utf16_len(plain)) <= MAX_MESSAGE_UTF16 or evidence_chars < 80:
            return Rendered(html=rich, plain=plain)
        evidence_chars //= 2


def render_copy(alert: Alert, voice: Voice = ENGLISH) -> Rendered:
    """A syndicated copy: one line, sent as a reply under the story's first alert."""
    _ = voice.gettext
    title = trim(alert.article_title, 300) or _("(untitled)")
    url = alert.article_url if len(alert.article_url) <= MAX_URL_CHARS else ""
    source = trim(alert.source, 200)
    return Rendered(
        html=_("🔁 Also in <b>{source}</b>: {link}").format(source=_esc(source),
                                                           link=_link(title, url)),
        plain=_("🔁 Also in {source}: {link}").format(source=source,
                                                     link=f"{title} {url}".rstrip()))


def _change(count: int, previous: int, _: Translate) -> str:
    text = format_change(count, previous)
    return _(N_("new")) if text == "new" else text


def _hours(delta: timedelta, voice: Voice) -> str:
    hours = round(delta.total_seconds() / 3600)
    if hours % 24 == 0 and hours > 24:
        return voice.ngettext("{n} day", "{n} days", hours // 24).format(n=hours // 24)
    return voice.gettext("{n} h").format(n=hours)


def _counted(pairs: tuple[tuple[str, int], ...], limit: int, _: Translate) -> str:
    shown = " · ".join(f"{trim(name, 60)} {n}" for name, n in pairs[:limit])
    more = len(pairs) - limit
    return shown + (_(" · +{n} more").format(n=more) if more > 0 else "")


def render_spike(spike: SpikeCheck, voice: Voice = ENGLISH) -> Rendered:
    """A spike alert: the numbers, the top sources and languages; fits a photo caption."""
    _ = voice.gettext
    title = voice.title(spike.narrative_id, spike.title)
    window = _hours(spike.window_end - spike.window_start, voice)
    usual = f"{spike.baseline_median:g}"
    change = _change(spike.count, round(spike.baseline_median), _)
    numbers = _("{count} matches in the last {window}, usually {usual} ({change}, robust "
                "z = {z})")
    for limit in (SPIKE_SOURCES, 3, 1):
        sources = _counted(spike.sources, limit, _)
        languages = _counted(spike.languages, limit, _)
        lines = [
            (_("📈 <b>Spike: {title}</b>").format(title=_esc(title)),
             _("📈 Spike: {title}").format(title=title)),
            (numbers.format(count=f"<b>{spike.count}</b>", window=window, usual=usual,
                            change=_esc(change), z=f"{spike.z:.1f}"),
             numbers.format(count=spike.count, window=window, usual=usual, change=change,
                            z=f"{spike.z:.1f}")),
            (_("{n} sources: {names}").format(n=spike.distinct_sources, names=_esc(sources)),
             _("{n} sources: {names}").format(n=spike.distinct_sources, names=sources)),
            (_("languages: {names}").format(names=_esc(languages)),
             _("languages: {names}").format(names=languages)),
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


def render_digest(digest: Digest, voice: Voice = ENGLISH) -> DigestText:
    """The digest's text (within 4096 UTF-16 units) and its chart's caption."""
    caption = voice.gettext("Matches per day by narrative, last {days} days ({zone})").format(
        days=digest.chart_days, zone=digest.timezone)
    return DigestText(_digest_text(digest, voice), Rendered(_esc(caption), caption))


DIGEST_HEADS = {"daily": N_("🗞 <b>Daily digest</b> · {period}"),
                "weekly": N_("🗞 <b>Weekly digest</b> · {period}")}
DIGEST_TOTALS = {"daily": N_("<b>{total}</b> matches across {narratives} narrative(s) "
                             "(previous day: {previous}, {change})"),
                 "weekly": N_("<b>{total}</b> matches across {narratives} narrative(s) "
                              "(previous week: {previous}, {change})")}


def _digest_head(digest: Digest, voice: Voice) -> tuple[list[str], list[str]]:
    """The digest's first lines, as HTML and as plain text."""
    _ = voice.gettext
    zone = ZoneInfo(digest.timezone)
    start, end = digest.start.astimezone(zone), digest.end.astimezone(zone)
    period = (f"{format_datetime(start, 'dd MMM HH:mm', locale=voice.language)} – "
              f"{format_datetime(end, 'dd MMM y HH:mm', locale=voice.language)} "
              f"({digest.timezone})")
    entries = digest.entries
    total, previous = digest.total, sum(e.previous for e in entries)
    narratives = sum(1 for e in entries if e.count)
    change = _change(total, previous, _)
    head, totals = _(DIGEST_HEADS[digest.every]), _(DIGEST_TOTALS[digest.every])
    rich = [head.format(period=_esc(period)),
            totals.format(total=total, narratives=narratives, previous=previous,
                          change=_esc(change))]
    plain = [_strip_tags(head.format(period=period)),
             _strip_tags(totals.format(total=total, narratives=narratives, previous=previous,
                                       change=change))]
    if digest.late:
        late = _("Sent late: the bot was not running at the due time.")
        rich.append(f"<i>{late}</i>")
        plain.append(late)
    return rich, plain


def _strip_tags(text: str) -> str:
    """A translated HTML line as plain text: only our own <b>/<i> are in it."""
    for tag in ("<b>", "</b>", "<i>", "</i>"):
        text = text.replace(tag, "")
    return text


def _digest_entry(entry: DigestEntry, articles: tuple[MatchRecord, ...], voice: Voice,
                  rich: list[str], plain: list[str]) -> None:
    """One narrative's lines, appended to both renderings."""
    change = _change(entry.count, entry.previous, voice.gettext)
    name = trim(voice.title(entry.narrative_id, entry.title), 120)
    rich += ["", f"<b>{_esc(name)}</b> — {entry.count} ({_esc(change)})"]
    plain += ["", f"{name} — {entry.count} ({change})"]
    for r in articles:
        title = trim(r.title, 140) or voice.gettext("(untitled)")
        meta = f"{trim(r.source, 60)} · {r.language or 'und'} · {r.score:.2f}"
        rich.append(f"• {_link(title, r.url)} · {_esc(meta)}")
        plain.append(f"• {title} · {meta}\n  {r.url}")


def _digest_text(digest: Digest, voice: Voice) -> Rendered:
    """Fewer articles per narrative until it fits; then whole lines only, so no tag is cut."""
    _ = voice.gettext
    active = [e for e in digest.entries if e.count or e.previous]
    quiet = [e for e in digest.entries if not (e.count or e.previous)]
    for per in (ARTICLES, 2, 1, 0):
        rich, plain = _digest_head(digest, voice)
        for e in active:
            _digest_entry(e, e.articles[:per], voice, rich, plain)
        if not active:
            nothing = _("No matches in this period or the one before.")
            rich += ["", nothing]
            plain += ["", nothing]
        if quiet:
            names = ", ".join(trim(voice.title(e.narrative_id, e.title), 60) for e in quiet)
            rich += ["", "<i>" + _("Quiet: {names}").format(names=_esc(names)) + "</i>"]
            plain += ["", _("Quiet: {names}").format(names=names)]
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
