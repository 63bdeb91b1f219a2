"""/trend, /top, /digest: narrative volumes over time, as a chart, a ranking, a schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

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
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series, top_narratives

TREND_USAGE = ("Usage: /trend &lt;id&gt; [30d] [by source|by language] — a chart of daily "
               "matches (ids: /narratives)")
TREND_DAYS, MAX_TREND_DAYS = 30, 365
TOP_PERIOD, MAX_TOP_PERIOD = timedelta(days=7), timedelta(days=365)
STACKS = {"source": "source", "sources": "source", "language": "language",
          "languages": "language"}
WEEKDAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
                 "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}


def _chat_timezone(req: Request) -> str:
    """The time zone of this chat's digest (its days), else UTC."""
    return next((d.timezone for d in req.services.config.digests
                 if d.chat_id == req.chat_id), "UTC")


def _known_titles(s: Services) -> dict[str, str]:
    """Loaded narratives, and those that only live on in stored matches."""
    return {**s.store.narrative_titles(), **{n.id: n.title for n in s.narratives}}


def _counted(pairs: Sequence[tuple[str, int]], limit: int = 3) -> str:
    shown = ", ".join(f"{esc(trim(k, 40))} {n}" for k, n in pairs[:limit])
    return shown + (f", +{len(pairs) - limit} more" if len(pairs) > limit else "")


def _trend_options(narrative_id: str, rest: list[str]) -> tuple[int, str] | str:
    """(days, stacked by) from what follows the id, or the reply that refuses them."""
    days, by = TREND_DAYS, "language"
    if rest and rest[0] not in ("by", *STACKS):
        period = duration(rest.pop(0))
        if period is None or not timedelta(days=2) <= period <= timedelta(days=MAX_TREND_DAYS):
            return f"The period must be 2d to {MAX_TREND_DAYS}d, e.g. /trend {narrative_id} 30d."
        days = max(2, round(period / timedelta(days=1)))
    if rest and rest[0] == "by":
        rest.pop(0)
    if rest:
        by = STACKS.get(rest.pop(0), "")
    return TREND_USAGE if not by or rest else (days, by)


async def cmd_trend(req: Request) -> str | Photo:
    s = req.services
    args = [a.casefold() for a in req.args]
    if not args:
        return TREND_USAGE
    titles = _known_titles(s)
    narrative_id = find_narrative(args[0], titles)
    if narrative_id is None:
        return f"unknown narrative '{esc(trim(req.args[0], 60))}'; see /narratives"
    options = _trend_options(narrative_id, args[1:])
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
             f"{series.total} matches in {days} days ({esc(zone)} days)"]
    if series.total:
        lines.append(f"by {by}: {_counted(layers, 5)}")
        lines.append(f"{'sources' if by == 'language' else 'languages'}: {_counted(other, 5)}")
    if series.spike_days:
        lines.append("spike days: " + ", ".join(f"{d:%d %b}" for d in sorted(series.spike_days)))
    caption = "\n".join(lines)
    if utf16_len(caption) > MAX_CAPTION_UTF16:
        caption = "\n".join(lines[:2])
    return Photo(png, caption)


async def cmd_top(req: Request) -> str:
    s = req.services
    period = TOP_PERIOD
    if req.args:
        period = duration(req.args[0]) if len(req.args) == 1 else None
        if period is None or not timedelta(hours=1) <= period <= MAX_TOP_PERIOD:
            return "Usage: /top [24h|7d|30d] — narratives ranked by matches in that period."
    at = datetime.now(UTC)
    volumes = s.store.volumes(at - 2 * period - timedelta(hours=1))
    entries = top_narratives(volumes, _known_titles(s), at, period)
    label = span(period)
    if not entries:
        return f"No matches in the last {label} or the {label} before."
    lines = [f"{n}. <b>{esc(trim(e.title, 120))}</b> (<code>{esc(e.narrative_id)}</code>)\n"
             f"   {e.count} matches · {esc(format_change(e.count, e.previous))} "
             f"(was {e.previous})"
             + (f"\n   sources: {_counted(e.sources)}" if e.sources else "")
             + (f"\n   languages: {_counted(e.languages)}" if e.languages else "")
             for n, e in enumerate(entries, start=1)]
    return listing(f"📊 <b>Top narratives, last {label}</b> (change vs the {label} before)",
                   lines)


async def cmd_digest(req: Request) -> str:
    digests = [d for d in req.services.config.digests if d.chat_id == req.chat_id]
    if not digests:
        return ("No digest is set up for this chat. Admins add one in config.toml:\n"
                f"<code>[[digests]]\nchat = \"{esc(req.chat_id)}\"\nevery = \"daily\"  "
                "# or \"weekly\"\ntime = \"09:00\"\ntimezone = \"Asia/Almaty\"</code>")
    lines = []
    for d in digests:
        every = f"every {WEEKDAY_NAMES[d.weekday]}" if d.every == "weekly" else "every day"
        period = "the last 7 days" if d.every == "weekly" else "the last 24 hours"
        lines.append(f"• <b>{d.every.capitalize()}</b> digest {every} at {esc(d.time)} "
                     f"({esc(d.timezone)}): {period}, each narrative's matches, change and top "
                     "articles, and a chart")
    return "\n".join(["🗞 <b>Digests for this chat</b>", *lines])
