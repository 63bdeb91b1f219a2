"""The one wiring object: every part of the bot, built once from the settings.

`run`, `poll`, `score`, `backtest`, `eval`, `calibrate` and the tests all build an `App`, so
they judge with the same matcher (statements, learned counter-examples, thresholds). Building
it touches no network; `async with app:` opens the HTTP client, and `app.running()` runs the
schedule at once and brings the Telegram side up as soon as it answers (retried with back-off:
polling never waits for Telegram, alerts wait in the outbox). The App is also what the chat
commands see (bot.telegram.Services).

On PostgreSQL the App also holds the work queue (bot.app.queue): its schedule defers polls and
digests there; `worker` processes build an App with `worker=True` to run them, and `run` with
`[queue] inline = true` runs them itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime
from types import TracebackType

from apscheduler.triggers.interval import IntervalTrigger
from telegram import Bot

from bot.app.feedlist import FeedList
from bot.app.metrics import Metrics
from bot.app.model import open_matcher
from bot.app.pipeline import Pipeline, fetch_limits
from bot.app.queue import (
    SHUTDOWN_GRACE_S,
    Work,
    WorkQueue,
    apply_schema_on,
    delivery_round,
)
from bot.app.reload import NarrativeReloader
from bot.app.schedule import add_backup_job, add_trend_jobs, build_scheduler, digest_job_id
from bot.config import Config, Narrative
from bot.embedding import Embedder
from bot.feeds import guess_language, make_client
from bot.matching.index import PassageScore
from bot.models import Passage
from bot.storage.audience import Audience
from bot.storage.store import Store
from bot.telegram import (
    AlertSink,
    ButtonSigner,
    ConsoleSink,
    TelegramSink,
    build_application,
    make_bot,
    register_commands,
    render_digest,
    render_spike,
)
from bot.telegram.application import BotApplication
from bot.telegram.i18n import Voices
from bot.telegram.link import Quiet, TelegramLink, TokenRejected, polling_failed
from bot.telegram.report import DeliveryReport
from bot.telegram.watchdog import PollingWatchdog
from bot.trends.charts import render_trend
from bot.trends.digest import Digester
from bot.trends.spikes import SpikeCheck, SpikeMonitor

log = logging.getLogger(__name__)

CONSOLE = "console"  # the channel's name when alerts are printed and none is configured
STOP_TIMEOUT_S = 10.0  # a running poll or delivery may finish: a send cut off would be resent


class App:
    """The store, the audience, the matcher, the pipeline, delivery, the schedule and trends."""

    def __init__(self, config: Config, narratives: Sequence[Narrative], *,
                 token: str | None = None, chat: bool = False, private_state: bool = False,
                 embedder: Embedder | None = None, worker: bool = False,
                 queue_pool: int = 4) -> None:
        """`token`: the bot's (None: alerts are printed); `chat`: also answer chat commands
        (`run`, when `[telegram] commands` is on); `private_state`: work on an in-memory copy
        of the state, the file is never changed (dry runs, backtests, evals); `embedder`: a
        model already loaded, else the one `[model]` asks for; `worker`: a `narrative-bot
        worker`, which runs the queue's tasks and never delivers (so never touches a row being
        sent); `queue_pool`: connections to the work queue (PostgreSQL)."""
        self.config = config
        self.started_at = datetime.now(UTC)
        self.private_state = private_state
        location = config.state.location
        self.store = (Store.in_memory_copy(location, guess_language=guess_language)
                      if private_state else Store(location, guess_language=guess_language))
        channel = config.telegram.channel_id if token else config.telegram.channel_id or CONSOLE
        self.audience = Audience(self.store, channel, config.telegram.channel_narratives,
                                 language=config.telegram.language)
        self.voices = Voices(self.audience.language, self._titles_in)
        self.signer = ButtonSigner.from_store(self.store)
        try:  # loading the model is what fails (a missing extra, a broken file)
            self.matcher = open_matcher(config, narratives, self.store,
                                        self.audience.learned_counter_examples(), embedder)
        except BaseException:
            self.store.close()
            raise
        self.client = make_client(fetch_limits(config), config.fetch.proxy)
        self.pipeline = Pipeline(config, self.store, self.matcher, self.client,
                                 route=self.audience.routes)
        self.feeds = FeedList(config, self.store, self.pipeline.sources)  # config's + stored
        self.pipeline.stored_feeds = self.feeds.stored
        self.worker = worker
        self.queue = (WorkQueue(config.state.url, pool_size=queue_pool)
                      if config.state.url is not None and not private_state else None)
        self.reloader = NarrativeReloader(config, self.matcher, self.audience, self.store)
        self.application: BotApplication | None = (
            build_application(token, self) if token and chat and config.telegram.commands
            else None)
        self.bot: Bot | None = (self.application.bot if self.application is not None
                                else make_bot(config, token) if token else None)
        self.sink: AlertSink = (
            ConsoleSink(self.store) if self.bot is None else
            TelegramSink(self.bot, self.store, max_attempts=config.telegram.max_attempts,
                         signer=self.signer, audience=self.audience,
                         admins=[str(a) for a in config.telegram.admins],
                         deadline=config.telegram.delivery_deadline, voices=self.voices))
        self.link = self._link()
        self._quiet_polling = Quiet()  # the same across the watchdog's restarts
        self.metrics = (Metrics(location) if config.metrics.address and not private_state
                        else None)
        if self.metrics is not None:
            self.matcher.embedder.observe = self.metrics.embed_seconds.observe
        # Delivery waits until Telegram has answered once (see running()): meanwhile alerts
        # stay in the outbox and polling goes on.
        self.scheduler = build_scheduler(
            self.pipeline, _WhenReady(self.sink, self.link, self.metrics),
            on_poll=None if self.metrics is None else self.metrics.observe_poll, queue=self.queue)
        self.feeds.on_added, self.feeds.on_removed = (self.scheduler.add_feed,
                                                      self.scheduler.remove_feed)
        self.scheduler.add_job(self.reloader.watch, IntervalTrigger(
            seconds=config.schedule.reload_check.total_seconds()), id="narratives",
            name="watch narratives")
        self.spikes = SpikeMonitor(self.store, config.trends, self._titles,
                                   self.audience.narrative_chats, self._spike_text,
                                   chart=render_trend, language_of=self.audience.language)
        self.digester = Digester(
            self.store, config.trends, self._titles,
            lambda digest, language: render_digest(digest, self.voices.of_language(language)),
            language_of=self.audience.language)
        add_trend_jobs(self.scheduler, config.trends, self.spikes, self.digester, config.digests,
                       queue=self.queue)
        if not private_state:
            add_backup_job(self.scheduler, self.store, config.state)
        self._open = AsyncExitStack()
        self.watchdog: PollingWatchdog | None = None

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> App:
        """Open the HTTP client and the bot; alerts cut off by a crash are sent again."""
        try:
            await self._open.enter_async_context(self.client)
            self._open.push_async_callback(self.pipeline.sources.aclose)  # per-feed proxies
            # Telegram is not asked here: running() or connect_telegram() bring it up, so
            # that an unreachable Bot API never stops polling.
            self._open.push_async_callback(self._shut_telegram)
            if self.queue is not None:
                # `run` and the workers start together: one creates the tables, under a lock
                await asyncio.to_thread(apply_schema_on, self.store.engine)
                await self._open.enter_async_context(self.queue.app.open_async())
                self.queue.serve(self._work())
        except BaseException:
            await self._open.aclose()
            self.close()
            raise
        if self.worker or not self._may_recover():
            return self
        if not self.private_state and (interrupted := self.store.recover_interrupted()):
            log.warning("%d alert(s) were being sent when the bot last stopped: sending them "
                        "again (Telegram may show them twice)", interrupted)
        return self

    def _may_recover(self) -> bool:
        """Whether rows left `sending` were cut off by a crash: not while another `run` on
        this database is in a delivery round (it holds the lock), as they are its sends."""
        if self.queue is None:
            return True
        with delivery_round(self.store.engine) as held:
            return held

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        try:
            await self._open.aclose()
        finally:
            self.close()

    def __enter__(self) -> App:
        """Without the network (score, backtest, eval, calibrate): only the store to close."""
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    async def connect_telegram(self, *, once: bool = False) -> bool:
        """Bring the Telegram side up (getMe, the command menu): True once it answered (also
        without a bot); with `once`, False after one failed try. Raises TokenRejected."""
        return True if self.link is None else await self.link.connect(once=once)

    @asynccontextmanager
    async def answering(self, *, poll_timeout: int = 10) -> AsyncIterator[None]:
        """Chat commands answered meanwhile (when the App has them); needs `async with app`;
        waits for Telegram first. `poll_timeout`: seconds each long poll may wait."""
        await self.connect_telegram()
        await self._start_answering(poll_timeout)
        try:
            yield
        finally:
            await self._stop_answering()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The daemon: every scheduled job running at once, chats answered and alerts
        delivered as soon as Telegram answers; on the way out the running polls and
        deliveries may finish."""
        if self.metrics is not None and (address := self.config.metrics.address):
            self.metrics.serve(*address)
        self.scheduler.start()
        coming_up = asyncio.create_task(self._telegram_up(), name="telegram start-up")
        inline = (asyncio.create_task(self.run_worker(self.config.queue.concurrency,
                                                      grace_s=STOP_TIMEOUT_S),
                                      name="inline worker")
                  if self.queue is not None and self.config.queue.inline else None)
        try:
            yield
        finally:
            coming_up.cancel()
            with suppress(asyncio.CancelledError):
                await coming_up
            if inline is not None:  # its running jobs finish first
                inline.cancel()
                with suppress(asyncio.CancelledError, Exception):  # a failure was logged
                    await inline
            await self.scheduler.stop(timeout=STOP_TIMEOUT_S)
            await self._stop_answering()
            if self.metrics is not None:
                self.metrics.stop()

    async def run_worker(self, concurrency: int, *, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Run the work queue's tasks until cancelled (a `worker`, or `run` inline); a stop
        lets the running ones finish for up to `grace_s`."""
        if self.queue is None:
            raise RuntimeError("the work queue needs a PostgreSQL state ([state] url)")
        log.info("working on the queue in %s: %d task(s) at once", self.queue.shown,
                 concurrency)
        try:
            await self.queue.run_worker(concurrency, grace_s=grace_s)
        except Exception:  # inline, nothing else would tell
            log.exception("the work queue stopped")
            raise
        # not cancelled: procrastinate stopped on its own (its listener or heartbeat failed)
        log.error("the work queue stopped: no more polls, judging or digests here")

    def _work(self) -> Work:
        pipeline = self.pipeline
        return Work(feeds=pipeline.feeds,
                    poll=lambda feed, defer: pipeline.poll_feed(feed, defer=defer),
                    judge=pipeline.judge_article, digest=self.digester.run,
                    digests=self.config.digests, digest_id=digest_job_id)

    async def _telegram_up(self) -> None:
        try:
            await self.connect_telegram()
        except TokenRejected:
            return  # link.failed is set: `run` stops with its one line
        await self._start_answering(poll_timeout=10)
        self.scheduler.deliver_now()  # what waited in the outbox goes out now

    async def _start_answering(self, poll_timeout: int) -> None:
        application = self.application
        if application is None or application.updater is None:
            return
        await application.start()
        # bootstrap_retries=-1: Telegram going away right after getMe delays polling only
        await application.updater.start_polling(
            timeout=poll_timeout, bootstrap_retries=-1, drop_pending_updates=False,
            error_callback=polling_failed(self._quiet_polling))
        self.watchdog = PollingWatchdog(application, poll_timeout)  # restarts dead polling
        self.watchdog.start()

    async def _stop_answering(self) -> None:
        application = self.application
        if application is None or not application.running:
            return
        if self.watchdog is not None:  # first, or it would restart what is stopped here
            await self.watchdog.stop()
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        await application.stop()

    async def _shut_telegram(self) -> None:
        """Close PTB's HTTP clients, whether or not Telegram ever answered."""
        if self.application is not None:
            await self.application.shutdown()
        if self.bot is not None:
            await self.bot.shutdown()

    def _link(self) -> TelegramLink | None:
        bot, application = self.bot, self.application
        token_env = self.config.telegram.token_env
        if bot is None:
            return None
        if application is None:
            return TelegramLink(bot, bot.initialize, token_env=token_env)

        async def menu() -> None:
            await register_commands(application)

        return TelegramLink(bot, application.initialize, token_env=token_env, after=menu)

    # -- what the chat commands use (bot.telegram.Services) --------------------------------

    @property
    def narratives(self) -> list[Narrative]:
        return self.matcher.narratives

    @property
    def model_name(self) -> str:
        embedder = self.matcher.embedder.embedder
        return getattr(embedder, "name", type(embedder).__name__)

    def score(self, title: str, text: str) -> tuple[list[Passage], list[PassageScore]]:
        verdict = self.matcher.judge_blocking(title, text)
        return list(verdict.passages), list(verdict.scores)

    def learn_counter_example(self, narrative_id: str, text: str) -> None:
        self.matcher.learn_counter_example(narrative_id, text)

    async def reload(self) -> str:
        return await self.reloader.reload()

    def last_cycle_at(self) -> datetime | None:
        return max((h.last_poll_at for h in self.store.all_feed_health() if h.last_poll_at),
                   default=None)

    def _titles(self) -> dict[str, str]:
        return {n.id: n.title for n in self.matcher.narratives}

    def _titles_in(self, language: str) -> dict[str, str]:
        return {n.id: n.title_in(language) for n in self.matcher.narratives}

    def _spike_text(self, spike: SpikeCheck, language: str) -> tuple[str, str]:
        rendered = render_spike(spike, self.voices.of_language(language))
        return rendered.html, rendered.plain


class _WhenReady:
    """The delivery job's sink: nothing is tried before Telegram has answered once."""

    def __init__(self, sink: AlertSink, link: TelegramLink | None,
                 metrics: Metrics | None = None) -> None:
        self.sink = sink
        self.link = link
        self.metrics = metrics

    async def deliver_pending(self) -> DeliveryReport:
        if self.link is not None and not self.link.ready.is_set():
            return DeliveryReport()
        report = await self.sink.deliver_pending()
        if self.metrics is not None:
            self.metrics.observe_delivery(report)
        return report

    def stop(self) -> None:
        self.sink.stop()

