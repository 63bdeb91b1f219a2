"""Narrative volumes over time: daily series, robust spike detection, rankings.

Everything here is pure: it takes the hourly volume rows kept in state (`Store.volumes`) and a
moment, and returns typed records. `SpikeMonitor` (at the bottom) is the one stateful part: it
reads volumes, keeps each narrative's spike flag in SQLite and queues spike alerts.

Spike rule. The last `window` (24 h by default, ending with the current hour) is compared with
the same-length windows of the previous `baseline_days` days:

    z = (count - median(baseline)) / max(1.4826 · MAD(baseline), sqrt(max(median, 1)))

The floor is the Poisson standard deviation of a count with that median (at least 1): a
narrative that was flat at zero for two weeks does not get an infinite z from its first match,
and a busy narrative with an unusually steady baseline is not flagged for ordinary noise. A
spike needs z ≥ `min_z`, at least `min_matches` matches and at least `min_sources` distinct
sources in the window; it is alerted once and stays flagged until z falls below `calm_z`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from bot.config import TrendsConfig
from bot.storage.store import PostDraft, Store, Volume

log = logging.getLogger(__name__)

MAD_SCALE = 1.4826  # MAD × this estimates the standard deviation of normal data
OTHER = "other"
Stack = str  # "language", "source" or "narrative"


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def robust_z(value: float, baseline: Sequence[float]) -> float:
    """How far `value` is above the baseline's median, in robust standard deviations.

    Scale: 1.4826 × the median absolute deviation, floored at the Poisson deviation of the
    median count, sqrt(max(median, 1)) — counts are never less noisy than that. An empty
    baseline is treated as zeros.
    """
    values = list(baseline) or [0.0]
    mid = median(values)
    mad = median(abs(v - mid) for v in values)
    scale = max(MAD_SCALE * mad, math.sqrt(max(mid, 1.0)))
    return (value - mid) / scale


# -- daily series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DailySeries:
    """Daily counts (local days of `timezone`) of one narrative (or of all), stacked by key."""

    title: str
    days: tuple[date, ...]
    stacks: dict[str, tuple[int, ...]]  # key → count per day; biggest first, "other" last
    by: Stack = "language"
    narrative_id: str | None = None
    spike_days: frozenset[date] = frozenset()
    timezone: str = "UTC"

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(sum(day) for day in zip(*self.stacks.values(), strict=True)) \
            if self.stacks else tuple(0 for _ in self.days)

    @property
    def total(self) -> int:
        return sum(self.totals)


def _key_of(volume: Volume, by: Stack) -> str:
    return {"language": volume.language, "source": volume.source,
            "narrative": volume.narrative_id}[by]


def local_day(hour: datetime, zone: ZoneInfo) -> date:
    return hour.astimezone(zone).date()


def daily_series(volumes: Iterable[Volume], *, end: datetime, days: int, by: Stack = "language",
                 timezone: str = "UTC", title: str = "", narrative_id: str | None = None,
                 labels: Mapping[str, str] | None = None, max_keys: int = 8,
                 spikes: TrendsConfig | None = None) -> DailySeries:
    """The last `days` local days up to and including the day of `end`, stacked by `by`.

    Only rows of `narrative_id` count when it is given. Keys beyond the `max_keys - 1` biggest
    are summed as "other". `labels` renames keys (narrative ids → titles). With `spikes`, days
    whose total is a spike against the previous `baseline_days` days (same rule as the alerts,
    on daily counts; the volumes must reach back that far) are marked.
    """
    zone = ZoneInfo(timezone)
    last = local_day(end, zone)
    first = last - timedelta(days=days - 1)
    history = first - timedelta(days=spikes.baseline_days if spikes else 0)
    per_key: dict[str, Counter[date]] = defaultdict(Counter)
    totals: Counter[date] = Counter()
    sources: dict[date, set[str]] = defaultdict(set)
    for v in volumes:
        if narrative_id is not None and v.narrative_id != narrative_id:
            continue
        day = local_day(v.hour, zone)
        if not history <= day <= last:
            continue
        totals[day] += v.matches
        sources[day].add(v.source)
        if day >= first:
            per_key[_key_of(v, by)][day] += v.matches
    day_list = tuple(first + timedelta(days=i) for i in range(days))
    ranked = sorted(per_key, key=lambda k: (-sum(per_key[k].values()), k))
    keep, rest = ranked[: max_keys - 1], ranked[max_keys - 1:]
    if len(ranked) <= max_keys:
        keep, rest = ranked, []
    stacks = {(labels or {}).get(k, k): tuple(per_key[k][d] for d in day_list) for k in keep}
    if rest:
        stacks[OTHER] = tuple(sum(per_key[k][d] for k in rest) for d in day_list)
    marked: set[date] = set()
    if spikes is not None:
        for day in day_list:
            base = [totals[day - timedelta(days=i)] for i in range(1, spikes.baseline_days + 1)]
            if (totals[day] >= spikes.min_matches and len(sources[day]) >= spikes.min_sources
                    and robust_z(totals[day], base) >= spikes.min_z):
                marked.add(day)
    return DailySeries(title=title, days=day_list, stacks=stacks, by=by,
                       narrative_id=narrative_id, spike_days=frozenset(marked),
                       timezone=timezone)


# -- spikes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikeCheck:
    """One narrative's last window against its baseline: the numbers a spike alert shows."""

    narrative_id: str
    title: str
    window_start: datetime
    window_end: datetime
    count: int
    baseline: tuple[int, ...]  # counts of the previous windows, most recent first
    baseline_median: float
    z: float
    sources: tuple[tuple[str, int], ...]  # every source in the window, biggest first
    languages: tuple[tuple[str, int], ...]

    @property
    def distinct_sources(self) -> int:
        return len(self.sources)

    def is_spike(self, cfg: TrendsConfig) -> bool:
        return (self.z >= cfg.min_z and self.count >= cfg.min_matches
                and self.distinct_sources >= cfg.min_sources)

    def is_calm(self, cfg: TrendsConfig) -> bool:
        return self.z < cfg.calm_z


def window_hours(cfg: TrendsConfig) -> int:
    """The window in whole hours (volumes are hourly), at least one."""
    return max(1, round(cfg.window.total_seconds() / 3600))


def baseline_span(cfg: TrendsConfig) -> timedelta:
    """How far back volumes must reach for a check: the window and its whole baseline."""
    return timedelta(days=cfg.baseline_days) + timedelta(hours=window_hours(cfg))


def measure(volumes: Iterable[Volume], titles: Mapping[str, str], now: datetime,
            cfg: TrendsConfig) -> list[SpikeCheck]:
    """Each narrative's window count, baseline and z at `now` (narratives of `titles`, and any
    other found in `volumes`)."""
    hours = window_hours(cfg)
    end = hour_floor(now) + timedelta(hours=1)  # the current hour counts
    n_base = max(1, (cfg.baseline_days * 24) // hours)
    start = end - timedelta(hours=hours * (n_base + 1))
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * (n_base + 1))
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    languages: dict[str, Counter[str]] = defaultdict(Counter)
    for v in volumes:
        if not start <= v.hour < end:
            continue
        # hours back from `end` to the row's hour end; window 0 is the current one
        index = (int((end - v.hour).total_seconds() // 3600) - 1) // hours
        counts[v.narrative_id][index] += v.matches
        if index == 0:
            sources[v.narrative_id][v.source] += v.matches
            languages[v.narrative_id][v.language] += v.matches
    checks = []
    for narrative_id in sorted(set(titles) | set(counts)):
        series = counts[narrative_id]
        baseline = tuple(series[1:])
        checks.append(SpikeCheck(
            narrative_id=narrative_id, title=titles.get(narrative_id, narrative_id),
            window_start=end - timedelta(hours=hours), window_end=end, count=series[0],
            baseline=baseline, baseline_median=float(median(baseline)),
            z=round(robust_z(series[0], baseline), 3),
            sources=tuple(_ranked(sources[narrative_id])),
            languages=tuple(_ranked(languages[narrative_id]))))
    return checks


def detect_spikes(volumes: Iterable[Volume], titles: Mapping[str, str], now: datetime,
                  cfg: TrendsConfig) -> list[SpikeCheck]:
    """The narratives whose last window is a spike (whether or not already alerted)."""
    return [c for c in measure(volumes, titles, now, cfg) if c.is_spike(cfg)]


@dataclass(frozen=True)
class SpikeDecision:
    """What a check means given which narratives are flagged already."""

    new: list[SpikeCheck] = field(default_factory=list)  # alert these
    calmed: list[SpikeCheck] = field(default_factory=list)  # unflag these
    ongoing: list[SpikeCheck] = field(default_factory=list)  # flagged, not calm: stay quiet


def decide(checks: Iterable[SpikeCheck], flagged: Iterable[str],
           cfg: TrendsConfig) -> SpikeDecision:
    """Hysteresis: a spike is alerted when it starts and not again until z < calm_z."""
    active = set(flagged)
    decision = SpikeDecision()
    for check in checks:
        if check.narrative_id in active:
            (decision.calmed if check.is_calm(cfg) else decision.ongoing).append(check)
        elif check.is_spike(cfg):
            decision.new.append(check)
    return decision


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


# -- rankings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopEntry:
    """A narrative's volume over a period and the period before it."""

    narrative_id: str
    title: str
    count: int
    previous: int
    sources: tuple[tuple[str, int], ...]
    languages: tuple[tuple[str, int], ...]

    @property
    def change(self) -> float | None:
        """Relative change vs the previous period (0.5 = +50 %); None when it was zero."""
        return None if self.previous == 0 else (self.count - self.previous) / self.previous


def top_narratives(volumes: Iterable[Volume], titles: Mapping[str, str], now: datetime,
                   period: timedelta) -> list[TopEntry]:
    """Narratives by volume over the last `period` (ending with the current hour), with the
    period before for comparison; narratives quiet in both are left out."""
    end = hour_floor(now) + timedelta(hours=1)
    start, before = end - period, end - 2 * period
    count: Counter[str] = Counter()
    previous: Counter[str] = Counter()
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    languages: dict[str, Counter[str]] = defaultdict(Counter)
    for v in volumes:
        if start <= v.hour < end:
            count[v.narrative_id] += v.matches
            sources[v.narrative_id][v.source] += v.matches
            languages[v.narrative_id][v.language] += v.matches
        elif before <= v.hour < start:
            previous[v.narrative_id] += v.matches
    entries = [TopEntry(n, titles.get(n, n), count[n], previous[n], tuple(_ranked(sources[n])),
                        tuple(_ranked(languages[n])))
               for n in set(count) | set(previous) if count[n] or previous[n]]
    return sorted(entries, key=lambda e: (-e.count, -(e.count - e.previous), e.narrative_id))


# -- the stateful part: spike checks on a schedule ------------------------------------------


SpikeRenderer = Callable[[SpikeCheck, str], tuple[str, str]]  # (spike, language) → html, plain
LanguageOf = Callable[[str], str]  # chat id → the language it reads
ChartRenderer = Callable[[DailySeries], bytes]
ChatsFor = Callable[[str], Sequence[str]]
SPIKE_CHART_DAYS = 30


def spike_series(spike: SpikeCheck, volumes: Iterable[Volume], cfg: TrendsConfig,
                 days: int = SPIKE_CHART_DAYS) -> DailySeries:
    """The chart sent with a spike alert: the narrative's last `days` days by source."""
    return daily_series(volumes, end=spike.window_end - timedelta(seconds=1), days=days,
                        by="source", title=spike.title, narrative_id=spike.narrative_id,
                        spikes=cfg)


class SpikeMonitor:
    """Checks every narrative's volume, alerts new spikes once, unflags calmed ones.

    The flag and the queued alerts are written in one transaction (`Store.open_spike`), so a
    crash or restart neither loses nor repeats a spike alert; delivery goes through the posts
    outbox like every other message. State is read and written on the event loop's thread;
    only the chart is drawn in a worker thread.
    """

    def __init__(self, store: Store, cfg: TrendsConfig, titles: Callable[[], Mapping[str, str]],
                 chats_for: ChatsFor, render: SpikeRenderer,
                 chart: ChartRenderer | None = None,
                 language_of: LanguageOf | None = None) -> None:
        """`language_of`: each chat's language (the alert is written once per language)."""
        self.store = store
        self.cfg = cfg
        self.titles = titles
        self.chats_for = chats_for
        self.render = render
        self.chart = chart
        self.language_of: LanguageOf = language_of or (lambda chat: "en")

    async def check(self, now: datetime | None = None) -> SpikeDecision:
        """One check; returns what it decided (new spikes were flagged and queued)."""
        now = now or datetime.now(UTC)
        reach = max(baseline_span(self.cfg),
                    timedelta(days=SPIKE_CHART_DAYS + self.cfg.baseline_days))
        volumes = self.store.volumes(now - reach - timedelta(days=1))
        titles = {**self.store.narrative_titles(), **self.titles()}
        flagged = [n for n, s in self.store.spike_states().items() if s.active]
        decision = decide(measure(volumes, titles, now, self.cfg), flagged, self.cfg)
        for spike in decision.new:
            await self._alert(spike, volumes)
        for check in decision.calmed:
            if self.store.note_spike_check(check.narrative_id, check.z, check.count, calm=True):
                log.info("spike of %s calmed down (z=%.1f)", check.narrative_id, check.z)
        for check in decision.ongoing:
            self.store.note_spike_check(check.narrative_id, check.z, check.count, calm=False)
        return decision

    async def _alert(self, spike: SpikeCheck, volumes: Sequence[Volume]) -> None:
        chats = tuple(self.chats_for(spike.narrative_id))
        by_language: dict[str, list[str]] = {}
        for chat in chats:
            by_language.setdefault(self.language_of(chat), []).append(chat)
        chart = None
        if self.chart is not None and chats:
            try:
                series = spike_series(spike, volumes, self.cfg)
                chart = await asyncio.to_thread(self.chart, series)
            except Exception:  # a chart is a nicety: the alert goes out without it
                log.exception("spike chart for %s failed", spike.narrative_id)
        key = f"spike:{spike.narrative_id}:{spike.window_end.isoformat()}"
        details = json.dumps(asdict(spike), default=str)
        drafts = [PostDraft("spike", key, tuple(group), *self.render(spike, language), chart)
                  for language, group in by_language.items()]
        ids = self.store.open_spike(spike.narrative_id, spike.z, spike.count, details, drafts)
        log.warning("spike: %s has %d matches in the window (median %.1f, z=%.1f, %d sources);"
                    " %d alert(s) queued", spike.narrative_id, spike.count,
                    spike.baseline_median, spike.z, spike.distinct_sources, len(ids))
