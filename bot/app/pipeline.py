"""The one orchestrator: poll one feed = fetch → parse → new? → full text → judge → outbox.

Stages never call each other; this module is the only place that knows their order (also for
`check-feeds --probe`, which fetches and parses without touching state). A feed's failure is
recorded against that feed (with back-off) and never reaches the others. What differs between
kinds of source (feed, sitemap, Telegram channel) and the reading of linked article pages
live in bot.app.sources; the feeds polled are config.toml's and those kept in state.

Where the time goes (bench/run.py): embedding dominates, so a feed whose body is byte-for-byte
the one already processed is neither parsed nor embedded, and each article is judged on its
own (bot.matching.matcher: passages split off the event loop, probe texts sent to the shared
embedding queue), so that concurrently polled feeds fill the model's batches and cached texts
cost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx

from bot.app.sources import SourceReader
from bot.config import Config, FeedConfig
from bot.feeds import FetchLimits, fetch_feed
from bot.feeds.sources import SourceRead
from bot.matching.matcher import Matcher, Verdict
from bot.matching.syndicate import Stories, story_vectors
from bot.models import Article, FetchResult, HttpCacheState
from bot.storage.store import Store, Story

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
WORK_SLOTS_PER_FETCH_SLOT = 2

Route = Callable[[str, Sequence[str]], Mapping[str, Sequence[str]] | Sequence[str]]
# Hands a poll's new articles to the work queue (bot.app.queue), which judges each on its own
Defer = Callable[[FeedConfig, list[Article]], Awaitable[None]]


@dataclass(frozen=True)
class PollReport:
    """What one poll of one feed did, for logs, the CLI and tests."""

    feed: str
    # "new", "queued" (handed to the work queue), "unchanged", "empty", "not-modified",
    # "error", "backing-off"
    status: str
    articles: int = 0
    new_articles: int = 0
    passages_embedded: int = 0
    matches: int = 0
    error: str | None = None
    backlog: int = 0  # new articles left for the next poll (over max_new_per_poll)
    too_old: int = 0  # unseen articles published before [fetch] max_age, skipped
    pages_read: int = 0  # linked article pages read for their full text


@dataclass(frozen=True)
class ProbeReport:
    """One feed fetched and parsed now, state untouched (`check-feeds --probe`)."""

    feed: str
    fetch_error: str | None = None
    status: int | None = None  # HTTP status (None for a file: URL)
    size: int = 0  # bytes of the body
    parse_error: str | None = None
    articles: int = 0


def fetch_limits(config: Config) -> FetchLimits:
    f = config.fetch
    return FetchLimits(timeout_s=f.timeout.total_seconds(),
                       connect_timeout_s=f.connect_timeout.total_seconds(),
                       max_bytes=f.max_bytes, max_redirects=f.max_redirects,
                       user_agent=f.user_agent, allow_file_urls=f.allow_file_urls,
                       allow_private=f.allow_private)


class Pipeline:
    """Polls feeds and turns their new articles into matches and pending alerts."""

    def __init__(self, config: Config, store: Store, matcher: Matcher,
                 client: httpx.AsyncClient, route: Route) -> None:
        """`route(source, narrative_ids)` says which chat gets which narratives (a plain list
        of chats: each gets every match)."""
        self.config = config
        self.store = store
        self.matcher = matcher
        self.client = client
        self.route = route
        self.limits = fetch_limits(config)
        self.sources = SourceReader(config, store, client, self.limits)
        # the feeds kept in state (added from the chat, imported from OPML), set by the app
        self.stored_feeds: Callable[[], list[FeedConfig]] = list
        self._fetch_slots = asyncio.Semaphore(config.fetch.concurrency)
        # Feeds whose articles are parsed, embedded and matched at once: enough to fill the
        # model's rounds, few enough that a thousand changed feeds do not all hold their
        # articles, passages and vectors in memory together.
        self._work_slots = asyncio.Semaphore(WORK_SLOTS_PER_FETCH_SLOT * config.fetch.concurrency)
        window = config.matching.syndication_window
        self.stories = Stories(store, window) if window > timedelta(0) else None
        # feed name → (body digest, what it read to), kept while the feed has a backlog
        self._backlog_reads: dict[str, tuple[str, SourceRead]] = {}

    def feeds(self) -> list[FeedConfig]:
        """config.toml's feeds, then those kept in state."""
        return [*self.config.feeds, *self.stored_feeds()]

    async def poll_all(self, *, force: bool = False) -> list[PollReport]:
        feeds = [f for f in self.feeds() if f.enabled]
        return list(await asyncio.gather(*(self.poll_feed(f, force=force) for f in feeds)))

    async def poll_feed(self, feed: FeedConfig, *, force: bool = False,
                        defer: Defer | None = None) -> PollReport:
        """Poll one feed; with `defer` (a `worker`'s poll) its new articles are handed to the
        work queue instead of being judged here."""
        health = self.store.feed_health(feed.name, feed.url)
        now = datetime.now(UTC)
        if not force and health.retry_at and health.retry_at > now:
            return PollReport(feed.name, "backing-off", error=health.last_error)
        async with self._fetch_slots:
            result = await fetch_feed(self.sources.client_for(feed), self.sources.url(feed),
                                      health.cache, self.limits, trusted=True)
        if result.error is not None:
            return self._feed_failed(feed, result.error, result)
        if result.not_modified or result.body is None:
            self._feed_ok(feed, result.cache)
            return PollReport(feed.name, "not-modified")
        digest = hashlib.blake2b(result.body, digest_size=16).hexdigest()
        if health.body_hash == digest:
            # A server without validators sent the same bytes again (kept in state, so also
            # after a restart): nothing new in them.
            self._feed_ok(feed, result.cache)
            return PollReport(feed.name, "unchanged")
        async with self._work_slots:
            kept = self._backlog_reads.pop(feed.name, None)
            read = (kept[1] if kept is not None and kept[0] == digest else
                    await self.sources.read(feed, result, first_poll=health.last_ok_at is None))
            parsed = read.parsed
            if parsed.error is not None:
                return self._feed_failed(feed, parsed.error, result)
            if parsed.warning:
                log.info("feed %s: %s", feed.name, parsed.warning)
            report = await self._process(feed, parsed.articles, defer)
        # With a backlog, keep the old validators so that the next poll is not answered 304,
        # and what this body parsed to: the same body next time is not parsed again.
        if report.backlog:
            self._backlog_reads[feed.name] = (digest, read)
            self._feed_ok(feed, health.cache, report.new_articles)
        else:
            self._feed_ok(feed, result.cache, report.new_articles,
                          body_hash=digest if read.remember_body else None)
        return report

    def _feed_ok(self, feed: FeedConfig, cache: HttpCacheState, new_articles: int = 0,
                 body_hash: str | None = None) -> None:
        if self.store.record_feed_ok(feed.name, cache, new_articles, body_hash):
            log.info("feed %s recovered", feed.name)
            self.store.add_notice(self._admins(), f"✅ Feed {feed.name!r} works again.")

    def _admins(self) -> list[str]:
        return [str(admin) for admin in self.config.telegram.admins]

    async def _process(self, feed: FeedConfig, articles: list[Article],
                       defer: Defer | None = None) -> PollReport:
        # Feeds list newest first; process oldest first so alerts arrive in order.
        if not articles:  # a well-formed feed listing nothing: a successful poll
            return PollReport(feed.name, "empty")
        unseen, too_old = self._recent(self.store.unseen(list(reversed(articles))))
        completed = await self.sources.complete(feed, unseen[: self.config.fetch.max_new_per_poll])
        fresh = completed.articles
        if not fresh:
            return PollReport(feed.name, "unchanged", articles=len(articles), too_old=too_old,
                              backlog=len(unseen))
        if defer is not None:  # queued before the feed's state is recorded: nothing is lost
            await defer(feed, fresh)
            return PollReport(feed.name, "queued", articles=len(articles),
                              new_articles=len(fresh), pages_read=completed.pages_read,
                              backlog=len(unseen) - len(fresh), too_old=too_old)
        # One embedding request per article: requests from many feeds share the model's batches.
        # Each article is committed as soon as it (and those before it) is judged: a crash
        # mid-batch keeps what was done, and the next start goes on from there.
        judging = [asyncio.ensure_future(self.matcher.judge(a.title, a.text, a.language))
                   for a in fresh]
        verdicts: list[Verdict] = []
        matches = 0
        try:
            for article, pending in zip(fresh, judging, strict=True):
                verdict = await pending
                verdicts.append(verdict)
                matches += self._record(feed, article, verdict)
        finally:
            for pending in judging:
                pending.cancel()
        return PollReport(feed.name, "new", articles=len(articles), new_articles=len(fresh),
                          passages_embedded=sum(len(v.vectors) for v in verdicts),
                          matches=matches, pages_read=completed.pages_read,
                          backlog=len(unseen) - len(fresh), too_old=too_old)

    async def judge_article(self, feed: FeedConfig, article: Article) -> int:
        """Judge and commit one article a queued poll found new; how many matches. Committing
        it twice (a retried job) records nothing the second time."""
        verdict = await self.matcher.judge(article.title, article.text, article.language)
        return self._record(feed, article, verdict)

    def _record(self, feed: FeedConfig, article: Article, verdict: Verdict) -> int:
        """Commit one judged article, its matches and its alerts; how many matches."""
        found = verdict.matches
        if feed.language:
            article = replace(article, language=feed.language)
        routes = self.route(article.source, [m.narrative_id for m in found]) if found else []
        origin, remember = self._syndication(verdict)
        if origin is not None and article.source in self.store.story_sources(origin):
            routes = []  # the same source re-publishing its own story: one "also in" at most
        self.store.record_article(article, len(verdict.passages), found, routes,
                                  origin_key=origin, story=remember)
        if origin is not None:
            log.info("%s in %s re-publishes %s: listed under its alert", article.key,
                     feed.name, origin)
        for m in found:
            log.info("match %s score=%.3f in %s: %s", m.narrative_id, m.score, feed.name,
                     article.title[:80])
        return len(found)

    def _recent(self, articles: list[Article]) -> tuple[list[Article], int]:
        """The articles within `[fetch] max_age` (undated ones included), and how many not."""
        max_age = self.config.fetch.max_age
        if max_age is None:
            return articles, 0
        cutoff = datetime.now(UTC) - max_age
        recent = [a for a in articles if a.published is None or a.published >= cutoff]
        return recent, len(articles) - len(recent)

    def _syndication(self, verdict: Verdict) -> tuple[str | None, Story | None]:
        """The story this matching article re-publishes (if any), and how to remember it."""
        found = verdict.matches
        if not found or self.stories is None:
            return None, None
        story = story_vectors(verdict.passage_vectors)
        narratives = [m.narrative_id for m in found]
        now = datetime.now(UTC)
        origin = self.stories.find_origin(narratives, story, now)
        return origin, Story(tuple(narratives), story, now)

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


async def probe_feed(reader: SourceReader, feed: FeedConfig,
                     limits: FetchLimits) -> ProbeReport:
    """Fetch (unconditionally) and parse one feed, as a poll would; nothing is recorded."""
    result = await fetch_feed(reader.client_for(feed), reader.url(feed), HttpCacheState(),
                              limits, trusted=True)
    if result.error is not None or result.body is None:
        return ProbeReport(feed.name, fetch_error=result.error or "no body")
    parsed = (await reader.read(feed, result, first_poll=False)).parsed
    return ProbeReport(feed.name, status=result.status, size=len(result.body),
                       parse_error=parsed.error, articles=len(parsed.articles))
