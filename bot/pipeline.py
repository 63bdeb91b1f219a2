"""The one orchestrator: poll one feed = fetch → parse → new? → passages → embed → match → outbox.

Stages never call each other; this module is the only place that knows their order. A feed's
failure is recorded against that feed (with back-off) and never reaches the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bot.config import Config, FeedConfig
from bot.embed import AsyncEmbedder
from bot.fetch import FetchLimits, fetch_feed
from bot.match import NarrativeIndex, probe_texts
from bot.models import Article, FetchResult, HttpCacheState
from bot.parse import parse_feed
from bot.store import Store
from bot.text import make_passages

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)

Route = Callable[[str, Sequence[str]], Mapping[str, Sequence[str]] | Sequence[str]]


@dataclass(frozen=True)
class PollReport:
    """What one poll of one feed did, for logs, the CLI and tests."""

    feed: str
    status: str  # "new", "unchanged", "not-modified", "error", "backing-off"
    articles: int = 0
    new_articles: int = 0
    passages_embedded: int = 0
    matches: int = 0
    error: str | None = None
    backlog: int = 0  # new articles left for the next poll (over max_new_per_poll)


def fetch_limits(config: Config) -> FetchLimits:
    f = config.fetch
    return FetchLimits(timeout_s=f.timeout.total_seconds(),
                       connect_timeout_s=f.connect_timeout.total_seconds(),
                       max_bytes=f.max_bytes, max_redirects=f.max_redirects,
                       user_agent=f.user_agent, allow_file_urls=f.allow_file_urls)


class Pipeline:
    """Polls feeds and turns their new articles into matches and pending alerts."""

    def __init__(self, config: Config, store: Store, index: NarrativeIndex,
                 embedder: AsyncEmbedder, client: httpx.AsyncClient,
                 route: Route) -> None:
        """`route(source, narrative_ids)` says which chat gets which narratives (a plain list
        of chats: each gets every match)."""
        self.config = config
        self.store = store
        self.index = index
        self.embedder = embedder
        self.client = client
        self.route = route
        self.limits = fetch_limits(config)
        self._fetch_slots = asyncio.Semaphore(config.fetch.concurrency)

    async def poll_all(self, *, force: bool = False) -> list[PollReport]:
        feeds = [f for f in self.config.feeds if f.enabled]
        return list(await asyncio.gather(*(self.poll_feed(f, force=force) for f in feeds)))

    async def poll_feed(self, feed: FeedConfig, *, force: bool = False) -> PollReport:
        health = self.store.feed_health(feed.name, feed.url)
        now = datetime.now(UTC)
        if not force and health.retry_at and health.retry_at > now:
            return PollReport(feed.name, "backing-off", error=health.last_error)
        async with self._fetch_slots:
            result = await fetch_feed(self.client, feed.url, health.cache, self.limits)
        if result.error is not None:
            return self._feed_failed(feed, result.error, result)
        if result.not_modified or result.body is None:
            self._feed_ok(feed, result.cache)
            return PollReport(feed.name, "not-modified")
        parsed = await asyncio.to_thread(parse_feed, result.body, result.headers,
                                         source=feed.name, feed_url=feed.url)
        if parsed.error is not None:
            return self._feed_failed(feed, parsed.error, result)
        if parsed.warning:
            log.info("feed %s: %s", feed.name, parsed.warning)
        report = await self._process(feed, parsed.articles)
        # With a backlog, keep the old validators so that the next poll is not answered 304.
        self._feed_ok(feed, health.cache if report.backlog else result.cache, report.new_articles)
        return report

    def _feed_ok(self, feed: FeedConfig, cache: HttpCacheState, new_articles: int = 0) -> None:
        if self.store.record_feed_ok(feed.name, cache, new_articles):
            log.info("feed %s recovered", feed.name)
            self.store.add_notice(self._admins(), f"✅ Feed {feed.name!r} works again.")

    def _admins(self) -> list[str]:
        return [str(admin) for admin in self.config.telegram.admins]

    async def _process(self, feed: FeedConfig, articles: list[Article]) -> PollReport:
        # Feeds list newest first; process oldest first so alerts arrive in order.
        unseen = self.store.unseen(list(reversed(articles)))
        fresh = unseen[: self.config.fetch.max_new_per_poll]
        if not fresh:
            return PollReport(feed.name, "unchanged", articles=len(articles))
        matching = self.config.matching
        passages = [make_passages(a.title, a.text, max_chars=matching.passage_chars,
                                  max_passages=matching.max_passages) for a in fresh]
        probes = [probe_texts(ps) for ps in passages]
        vectors = await self.embedder.encode([t for texts in probes for t in texts])
        matches = 0
        offset = 0
        for article, article_passages, texts in zip(fresh, passages, probes, strict=True):
            article_vectors = vectors[offset:offset + len(texts)]
            offset += len(texts)
            found = self.index.match(article_passages, article_vectors)
            matches += len(found)
            routes = self.route(article.source, [m.narrative_id for m in found]) if found else []
            self.store.record_article(article, len(article_passages), found, routes)
            for m in found:
                log.info("match %s score=%.3f in %s: %s", m.narrative_id, m.score, feed.name,
                         article.title[:80])
        return PollReport(feed.name, "new", articles=len(articles), new_articles=len(fresh),
                          passages_embedded=len(vectors), matches=matches,
                          backlog=len(unseen) - len(fresh))

    def _feed_failed(self, feed: FeedConfig, error: str, result: FetchResult) -> PollReport:
        health = self.store.feed_health(feed.name, feed.url)
        delay = backoff_delay(feed.interval, health.consecutive_errors + 1, result.retry_after_s)
        failures = self.store.record_feed_error(feed.name, error, datetime.now(UTC) + delay)
        log.warning("feed %s failed (%s); next try in %ss", feed.name, error,
                    int(delay.total_seconds()))
        if failures >= self.config.fetch.pause_after:
            notice = (f"⚠️ Feed {feed.name!r} has failed {failures} times in a row and is "
                      f"paused (retried every {int(MAX_BACKOFF.total_seconds() // 3600)} h "
                      f"at most). Last error: {error}")
            if self.store.pause_feed(feed.name, notice, self._admins()):
                log.error("feed %s paused after %d failures", feed.name, failures)
        return PollReport(feed.name, "error", error=error)


def backoff_delay(interval: timedelta, failures: int, retry_after_s: float | None) -> timedelta:
    """Exponential back-off from the feed's own interval, capped; a server's Retry-After wins."""
    cap = max(MAX_BACKOFF, interval)
    doublings = max(failures - 1, 0)
    # compare in float seconds first: interval * 2**n overflows timedelta after a few weeks
    fits = doublings < 64 and interval.total_seconds() * 2 ** doublings < cap.total_seconds()
    delay = interval * 2 ** doublings if fits else cap
    if retry_after_s is not None:
        delay = max(delay, timedelta(seconds=min(retry_after_s, 86400)))
    return delay

