"""Daily and weekly digests: per chat, at a local time, each narrative's volume and top articles.

A digest configured with `[[digests]]` (chat, every = "daily" | "weekly", time = "HH:MM",
timezone, weekday) covers the period that ends at its due time: the last 24 h, or the last
7 days. It is two messages, queued together in the posts outbox: the text (each narrative's
count, change vs the period before, its best-scoring articles with links) and one chart (daily
matches of every narrative over the last 14 or 28 days, spike days marked). This module
computes the `Digest`; its words come from a renderer the caller passes in
(bot.telegram.render.render_digest).

Never twice: each digest's posts are keyed by chat, kind and due time, and the outbox refuses a
key it has seen. Missed while down: when the bot starts, the most recent due time that has no
digest yet is sent once, late, with a note saying so; older missed periods are skipped (logged).
A digest that was configured after its due time waits for the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.config import DigestConfig, TrendsConfig
from bot.storage.store import MatchRecord, PostDraft, Store, Volume, iso, parse_time
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series, hour_floor

log = logging.getLogger(__name__)

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
CHART_DAYS = {"daily": 14, "weekly": 28}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ARTICLES = 3  # per narrative, at most
LATE_AFTER = timedelta(minutes=15)  # a digest queued later than this says it is late


def last_due(cfg: DigestConfig, now: datetime) -> datetime:
    """The latest due time at or before `now` (UTC), in the digest's local clock."""
    zone = ZoneInfo(cfg.timezone)
    hour, minute = (int(part) for part in cfg.time.split(":"))
    day = now.astimezone(zone).date()
    step = timedelta(days=1)
    if cfg.every == "weekly":
        day -= timedelta(days=(day.weekday() - WEEKDAYS.index(cfg.weekday)) % 7)
        step = timedelta(days=7)
    due = datetime.combine(day, time(hour, minute), tzinfo=zone)
    if due > now:
        due = datetime.combine(day - step, time(hour, minute), tzinfo=zone)
    return due.astimezone(UTC)


def digest_key(cfg: DigestConfig, due: datetime) -> str:
    return f"digest:{cfg.chat_id}:{cfg.every}:{iso(due)}"


@dataclass(frozen=True)
class DigestEntry:
    narrative_id: str
    title: str
    count: int
    previous: int
    articles: tuple[MatchRecord, ...]


@dataclass(frozen=True)
class Digest:
    """One chat's digest for one period: each narrative's numbers, and the chart."""

    chat_id: str
    every: str
    start: datetime
    end: datetime
    timezone: str
    entries: tuple[DigestEntry, ...]
    chart: bytes | None
    chart_days: int
    late: bool = False  # queued well after its due time (the bot was down)

    @property
    def total(self) -> int:
        return sum(e.count for e in self.entries)


class Text(Protocol):
    """One message as Telegram HTML and as plain text."""

    @property
    def html(self) -> str: ...

    @property
    def plain(self) -> str: ...


class DigestMessages(Protocol):
    """A rendered digest: its text, and the caption under its chart."""

    @property
    def text(self) -> Text: ...

    @property
    def caption(self) -> Text: ...


DigestRenderer = Callable[[Digest, str], DigestMessages]  # (digest, language) → messages


def collect(store: Store, titles: Mapping[str, str], start: datetime,
            end: datetime) -> tuple[DigestEntry, ...]:
    """Each narrative's count in [start, end), the same-length period before, and its top
    articles (best score first, one per article). Hour boundaries, as volumes are hourly."""
    start, end = hour_floor(start), hour_floor(end)
    before = start - (end - start)
    count: dict[str, int] = {}
    previous: dict[str, int] = {}
    for v in store.volumes(before, end):
        target = count if v.hour >= start else previous
        target[v.narrative_id] = target.get(v.narrative_id, 0) + v.matches
    best: dict[str, dict[str, MatchRecord]] = {}
    for record in store.match_records(start, end, by="counted"):
        per_article = best.setdefault(record.narrative_id, {})
        kept = per_article.get(record.article_key)
        if kept is None or record.score > kept.score:
            per_article[record.article_key] = record
    names = {**store.narrative_titles(), **titles}
    ids = set(titles) | set(count) | set(previous)
    entries = [DigestEntry(n, names.get(n, n), count.get(n, 0), previous.get(n, 0),
                           tuple(sorted(best.get(n, {}).values(),
                                        key=lambda r: (-r.score, r.article_key))[:ARTICLES]))
               for n in ids]
    return tuple(sorted(entries, key=lambda e: (-e.count, -e.previous, e.narrative_id)))


@dataclass(frozen=True)
class DigestData:
    """What a digest is made of, read from state (on the event loop's thread)."""

    entries: tuple[DigestEntry, ...]
    volumes: tuple[Volume, ...]  # for the chart


def gather(store: Store, cfg: DigestConfig, due: datetime, titles: Mapping[str, str],
           trends: TrendsConfig) -> DigestData:
    entries = collect(store, titles, due - PERIODS[cfg.every], due)
    history = due - timedelta(days=CHART_DAYS[cfg.every] + trends.baseline_days + 1)
    return DigestData(entries, tuple(store.volumes(history, hour_floor(due))))


def compose(cfg: DigestConfig, due: datetime, data: DigestData, trends: TrendsConfig, *,
            late: bool = False, chart: bool = True) -> Digest:
    """The digest from its data: pure, and CPU-bound when it draws the chart."""
    start, end = due - PERIODS[cfg.every], due
    days = CHART_DAYS[cfg.every]
    png = None
    if chart:
        names = {e.narrative_id: e.title for e in data.entries}
        series = daily_series(data.volumes, end=end - timedelta(seconds=1), days=days,
                              by="narrative", timezone=cfg.timezone, labels=names,
                              title=f"{cfg.every.capitalize()} digest: matches per narrative",
                              spikes=trends)
        if series.total:
            png = render_trend(series)
    return Digest(cfg.chat_id, cfg.every, start, end, cfg.timezone, data.entries, png, days,
                  late)


def build_digest(store: Store, cfg: DigestConfig, due: datetime, titles: Mapping[str, str],
                 trends: TrendsConfig | None = None, *, late: bool = False,
                 chart: bool = True) -> Digest:
    """The digest of the period that ends at `due` (see `last_due`)."""
    trends = trends or TrendsConfig()
    return compose(cfg, due, gather(store, cfg, due, titles, trends), trends, late=late,
                   chart=chart)


class Digester:
    """Queues due digests (scheduled by bot.app.schedule; also run once at start-up to catch up)."""

    def __init__(self, store: Store, trends: TrendsConfig,
                 titles: Callable[[], Mapping[str, str]], render: DigestRenderer,
                 language_of: Callable[[str], str] | None = None) -> None:
        """`language_of`: the language each chat reads (English when not given)."""
        self.store = store
        self.trends = trends
        self.titles = titles
        self.render = render
        self.language_of = language_of or (lambda chat: "en")

    async def run(self, cfg: DigestConfig, now: datetime | None = None) -> list[int]:
        """Queue the digest of the latest due period unless it was queued already; the ids."""
        now = now or datetime.now(UTC)
        due = last_due(cfg, now)
        since_key = (f"digest_since:{cfg.chat_id}:{cfg.every}:{cfg.time}:{cfg.timezone}:"
                     f"{cfg.weekday if cfg.every == 'weekly' else ''}")
        since = parse_time(self.store.get_meta(since_key))
        if since is None:
            self.store.set_meta(since_key, iso(now) or "")
            since = now.replace(microsecond=0)
        if due < since:
            return []  # configured after this due time: the first digest is the next one
        key = digest_key(cfg, due)
        if self.store.has_posts(key):
            return []
        late = now - due > LATE_AFTER
        if late:
            log.warning("digest for %s due at %s was missed (bot not running): sending it now; "
                        "earlier missed periods, if any, are skipped", cfg.chat_id, iso(due))
        data = gather(self.store, cfg, due, self.titles(), self.trends)
        digest = await asyncio.to_thread(compose, cfg, due, data, self.trends, late=late)
        rendered = self.render(digest, self.language_of(cfg.chat_id))
        text, caption = rendered.text, rendered.caption
        drafts = [PostDraft("digest", key, (cfg.chat_id,), text.html, text.plain)]
        if digest.chart is not None:
            drafts.append(PostDraft("digest", f"{key}:chart", (cfg.chat_id,), caption.html,
                                    caption.plain, digest.chart))
        ids = self.store.queue_posts(drafts)
        log.info("digest for %s (%s, due %s): %d matches, %d message(s) queued", cfg.chat_id,
                 cfg.every, iso(due), digest.total, len(ids))
        return ids
