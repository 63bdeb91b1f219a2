"""Daily and weekly digests: per chat, at a local time, each narrative's volume and top articles.

A digest configured with `[[digests]]` (chat, every = "daily" | "weekly", time = "HH:MM",
timezone, weekday) covers the period that ends at its due time: the last 24 h, or the last
7 days. It is two messages, queued together in the posts outbox: the text (each narrative's
count, change vs the period before, its best-scoring articles with links) and one chart (daily
matches of every narrative over the last 14 or 28 days, spike days marked).

Never twice: each digest's posts are keyed by chat, kind and due time, and the outbox refuses a
key it has seen. Missed while down: when the bot starts, the most recent due time that has no
digest yet is sent once, late, with a note saying so; older missed periods are skipped (logged).
A digest that was configured after its due time waits for the next one.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import DigestConfig, TrendsConfig
from bot.storage.store import MatchRecord, PostDraft, Store, Volume, iso, parse_time
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series, format_change, hour_floor

log = logging.getLogger(__name__)

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
CHART_DAYS = {"daily": 14, "weekly": 28}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ARTICLES = 3  # per narrative, at most
MAX_UTF16 = 4096
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
    """One chat's digest for one period: the message, and the chart with its caption."""

    chat_id: str
    every: str
    start: datetime
    end: datetime
    timezone: str
    entries: tuple[DigestEntry, ...]
    html: str
    plain: str
    chart: bytes | None
    caption_html: str
    caption_plain: str

    @property
    def total(self) -> int:
        return sum(e.count for e in self.entries)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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


def render_digest(entries: tuple[DigestEntry, ...], every: str, start: datetime, end: datetime,
                  timezone: str, *, late: bool = False) -> tuple[str, str]:
    """The digest text as Telegram HTML and as plain text, within 4096 UTF-16 units."""
    esc = html.escape
    zone = ZoneInfo(timezone)
    word = {"daily": "Daily", "weekly": "Weekly"}[every]
    before = {"daily": "previous day", "weekly": "previous week"}[every]
    span = (f"{start.astimezone(zone):%d %b %H:%M} – {end.astimezone(zone):%d %b %Y %H:%M} "
            f"({timezone})")
    total = sum(e.count for e in entries)
    previous = sum(e.previous for e in entries)
    active = [e for e in entries if e.count or e.previous]
    quiet = [e for e in entries if not (e.count or e.previous)]
    head = [f"🗞 <b>{word} digest</b> · {esc(span)}",
            f"<b>{total}</b> matches across {sum(1 for e in entries if e.count)} narrative(s) "
            f"({before}: {previous}, {esc(format_change(total, previous))})"]
    plain_head = [f"🗞 {word} digest · {span}",
                  f"{total} matches across {sum(1 for e in entries if e.count)} narrative(s) "
                  f"({before}: {previous}, {format_change(total, previous)})"]
    if late:
        head.append("<i>Sent late: the bot was not running at the due time.</i>")
        plain_head.append("Sent late: the bot was not running at the due time.")
    for per in (ARTICLES, 2, 1, 0):
        rich, plain = list(head), list(plain_head)
        for e in active:
            change = format_change(e.count, e.previous)
            rich += ["", f"<b>{esc(_trim(e.title, 120))}</b> — {e.count} ({esc(change)})"]
            plain += ["", f"{_trim(e.title, 120)} — {e.count} ({change})"]
            for r in e.articles[:per]:
                title = esc(_trim(r.title, 140) or "(untitled)")
                link = (f'<a href="{esc(r.url, quote=True)}">{title}</a>'
                        if r.url and len(r.url) <= 1000 else title)
                meta = f"{_trim(r.source, 60)} · {r.language or 'und'} · {r.score:.2f}"
                rich.append(f"• {link} · {esc(meta)}")
                plain.append(f"• {_trim(r.title, 140) or '(untitled)'} · {meta}\n  {r.url}")
        if not active:
            rich += ["", "No matches in this period or the one before."]
            plain += ["", "No matches in this period or the one before."]
        if quiet:
            names = ", ".join(_trim(e.title, 60) for e in quiet)
            rich += ["", f"<i>Quiet: {esc(names)}</i>"]
            plain += ["", f"Quiet: {names}"]
        text, plain_text = "\n".join(rich), "\n".join(plain)
        if max(_utf16(text), _utf16(plain_text)) <= MAX_UTF16:
            return text, plain_text
    # still too long (hundreds of narratives): whole lines only, so no tag is cut
    kept: list[str] = []
    for line in text.split("\n"):
        if _utf16("\n".join([*kept, line])) > MAX_UTF16 - 20:
            break
        kept.append(line)
    return "\n".join([*kept, "…"]), plain_text[: MAX_UTF16 - 20] + "…"


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
    text, plain = render_digest(data.entries, cfg.every, start, end, cfg.timezone, late=late)
    days = CHART_DAYS[cfg.every]
    caption = f"Matches per day by narrative, last {days} days ({cfg.timezone})"
    png = None
    if chart:
        names = {e.narrative_id: e.title for e in data.entries}
        series = daily_series(data.volumes, end=end - timedelta(seconds=1), days=days,
                              by="narrative", timezone=cfg.timezone, labels=names,
                              title=f"{cfg.every.capitalize()} digest: matches per narrative",
                              spikes=trends)
        if series.total:
            png = render_trend(series)
    return Digest(cfg.chat_id, cfg.every, start, end, cfg.timezone, data.entries, text, plain,
                  png, html.escape(caption), caption)


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
                 titles: Callable[[], Mapping[str, str]]) -> None:
        self.store = store
        self.trends = trends
        self.titles = titles

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
        drafts = [PostDraft("digest", key, (cfg.chat_id,), digest.html, digest.plain)]
        if digest.chart is not None:
            drafts.append(PostDraft("digest", f"{key}:chart", (cfg.chat_id,),
                                    digest.caption_html, digest.caption_plain, digest.chart))
        ids = self.store.queue_posts(drafts)
        log.info("digest for %s (%s, due %s): %d matches, %d message(s) queued", cfg.chat_id,
                 cfg.every, iso(due), digest.total, len(ids))
        return ids
