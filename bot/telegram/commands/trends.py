"""/trend, /top, /digest: narrative volumes over time, as a chart, a ranking, a schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from babel.dates import format_date

from bot.telegram.commands.args import duration, find_narrative
from bot.telegram.context import Photo, Request, Services
from bot.telegram.format import (
    MAX_CAPTION_UTF16,
    esc,
    format_change,
    listing,
    span,
    trim,
    utf16_len,
)
from bot.telegram.i18n import N_, Translate
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series, top_narratives

TREND_USAGE = N_("Usage: /trend &lt;id&gt; [30d] [by source|by language] — a chart of daily "
                 "matches (ids: /narratives)")
TREND_DAYS, MAX_TREND_DAYS = 30, 365
TOP_PERIOD, MAX_TOP_PERIOD = timedelta(days=7), timedelta(days=365)
STACKS = {"source": "source", "sources": "source", "language": "language",
          "languages": "language"}
EVERY_WEEKDAY = {"mon": N_("every Monday"), "tue": N_("every Tuesday"),
                 "wed": N_("every Wednesday"), "thu": N_("every Thursday"),
                 "fri": N_("every Friday"), "sat": N_("every Saturday"),
                 "sun": N_("every Sunday")}
STACK_NAMES = {"source": N_("by source"), "language": N_("by language")}


def _chat_timezone(req: Request) -> str:
    """The time zone of this chat's digest (its days), else UTC."""
    return next((d.timezone for d in req.services.config.digests
                 if d.chat_id == req.chat_id), "UTC")


def _known_titles(s: Services, language: str = "en") -> dict[str, str]:
    """Loaded narratives, and those that only live on in stored matches."""
    return {**s.store.narrative_titles(), **{n.id: n.title_in(language) for n in s.narratives}}


def _counted(pairs: Sequence[tuple[str, int]], _: Translate, limit: int = 3) -> str:
    shown = ", ".join(f"{esc(trim(k, 40))} {n}" for k, n in pairs[:limit])
    more = len(pairs) - limit
    return shown + (_(", +{n} more").format(n=more) if more > 0 else "")


def _trend_options(narrative_id: str, rest: list[str], _: Translate) -> tuple[int, str] | str:
    """(days, stacked by) from what follows the id, or the reply that refuses them."""
    days, by = TREND_DAYS, "language"
    if rest and rest[0] not in ("by", *STACKS):
        period = duration(rest.pop(0))
        if period is None or not timedelta(days=2) <= period <= timedelta(days=MAX_TREND_DAYS):
            return _("The period must be 2d to {max}d, e.g. /trend {id} 30d.").format(
                max=MAX_TREND_DAYS, id=narrative_id)
        days = max(2, round(period / timedelta(days=1)))
    if rest and rest[0] == "by":
        rest.pop(0)
    if rest:
        by = STACKS.get(rest.pop(0), "")
    return _(TREND_USAGE) if not by or rest else (days, by)


async def cmd_trend(req: Request) -> str | Photo:
    s, _ = req.services, req.voice.gettext
    args = [a.casefold() for a in req.args]
    if not args:
        return _(TREND_USAGE)
    titles = _known_titles(s, req.language)
    narrative_id = find_narrative(args[0], titles)
    if narrative_id is None:
        return _("unknown narrative '{id}'; see /narratives").format(
            id=esc(trim(req.args[0], 60)))
    options = _trend_options(narrative_id, args[1:], _)
    if isinstance(options, str):
        return options
    days, by = options
    zone = _chat_timezone(req)
    at = datetime.now(UTC)
    volumes = s.store.volumes(at - timedelta(days=days + s.config.trends.baseline_days + 2),
                              narrative_ids=[narrative_id])
    series = daily_series(volumes, end=at, days=days, by=by, timezone=zone,
                          title=titles[narrative_id], narrative_id=narrative_id,
                          spikes=s.config.trends)
    png = await asyncio.to_thread(render_trend, series)
    totals: dict[str, int] = {}
    for v in volumes:
        if v.hour >= at - timedelta(days=days):
            key = v.source if by == "language" else v.language
            totals[key] = totals.get(key, 0) + v.matches
    other = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    layers = sorted(((k, sum(c)) for k, c in series.stacks.items()), key=lambda kv: -kv[1])
    lines = [f"<b>{esc(trim(titles[narrative_id], 200))}</b>",
             _("{total} matches in {days} days ({zone} days)").format(
                 total=series.total, days=days, zone=esc(zone))]
    if series.total:
        lines.append(f"{_(STACK_NAMES[by])}: {_counted(layers, _, 5)}")
        others = _("sources: {names}") if by == "language" else _("languages: {names}")
        lines.append(others.format(names=_counted(other, _, 5)))
    if series.spike_days:
        lines.append(_("spike days: {days}").format(
            days=", ".join(format_date(d, "dd MMM", locale=req.language)
                           for d in sorted(series.spike_days))))
    caption = "\n".join(lines)
    if utf16_len(caption) > MAX_CAPTION_UTF16:
        caption = "\n".join(lines[:2])
    return Photo(png, caption)


async def cmd_top(req: Request) -> str:
    s, voice = req.services, req.voice
    _ = voice.gettext
    period = TOP_PERIOD
    if req.args:
        asked = duration(req.args[0]) if len(req.args) == 1 else None
        if asked is None or not timedelta(hours=1) <= asked <= MAX_TOP_PERIOD:
            return _("Usage: /top [24h|7d|30d] — narratives ranked by matches in that period.")
        period = asked
    at = datetime.now(UTC)
    volumes = s.store.volumes(at - 2 * period - timedelta(hours=1))
    entries = top_narratives(volumes, _known_titles(s, req.language), at, period)
    label = span(period, voice)
    if not entries:
        return _("No matches in the last {span} or the {span} before.").format(span=label)
    counts = _("{count} matches · {change} (was {previous})")
    lines = [f"{n}. <b>{esc(trim(e.title, 120))}</b> (<code>{esc(e.narrative_id)}</code>)\n   "
             + counts.format(count=e.count, previous=e.previous,
                             change=esc(_change(e.count, e.previous, _)))
             + ("\n   " + _("sources: {names}").format(names=_counted(e.sources, _))
                if e.sources else "")
             + ("\n   " + _("languages: {names}").format(names=_counted(e.languages, _))
                if e.languages else "")
             for n, e in enumerate(entries, start=1)]
    return listing(_("📊 <b>Top narratives, last {span}</b> (change vs the {span} before)")
                   .format(span=label), lines, voice=voice)


def _change(count: int, previous: int, _: Translate) -> str:
    text = format_change(count, previous)
    return _("new") if text == "new" else text


DIGEST_LINES = {"daily": N_("• <b>Daily</b> digest every day at {time} ({zone}): the last 24 "
                            "hours, each narrative's matches, change and top articles, and a "
                            "chart"),
                "weekly": N_("• <b>Weekly</b> digest {every} at {time} ({zone}): the "
                             "last 7 days, each narrative's matches, change and top articles, "
                             "and a chart")}


async def cmd_digest(req: Request) -> str:
    _ = req.voice.gettext
    digests = [d for d in req.services.config.digests if d.chat_id == req.chat_id]
    if not digests:
        return (_("No digest is set up for this chat. Admins add one in config.toml:") + "\n"
                f"<code>[[digests]]\nchat = \"{esc(req.chat_id)}\"\nevery = \"daily\"  "
                "# or \"weekly\"\ntime = \"09:00\"\ntimezone = \"Asia/Almaty\"</code>")
    lines = [_(DIGEST_LINES[d.every]).format(every=_(EVERY_WEEKDAY[d.weekday]),
                                             time=esc(d.time), zone=esc(d.timezone))
             for d in digests]
    return "\n".join([_("🗞 <b>Digests for this chat</b>"), *lines])
