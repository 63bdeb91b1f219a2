"""The one wiring object: every part of the bot, built once from the settings.

`run`, `poll`, `score`, `backtest`, `eval`, `calibrate` and the tests all build an `App`, so
they judge with the same matcher (statements, learned counter-examples, thresholds). Building
it touches no network; `async with app:` opens the HTTP client and the Telegram bot, and
`app.running()` answers chats and runs the schedule. The App is also what the chat commands
see (bot.telegram.Services).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType

from apscheduler.triggers.interval import IntervalTrigger
from telegram import Bot

from bot.app.model import open_matcher
from bot.app.pipeline import Pipeline, fetch_limits
from bot.app.reload import NarrativeReloader
from bot.app.schedule import add_trend_jobs, build_scheduler
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
                 embedder: Embedder | None = None) -> None:
        """`token`: the bot's (None: alerts are printed); `chat`: also answer chat commands
        (`run`, when `[telegram] commands` is on); `private_state`: work on an in-memory copy
        of the state, the file is never changed (dry runs, backtests, evals); `embedder`: a
        model already loaded, else the one `[model]` asks for."""
        self.config = config
        self.started_at = datetime.now(UTC)
        self.private_state = private_state
        path = config.state.path
        self.store = (Store.in_memory_copy(path, guess_language=guess_language) if private_state
                      else Store(path, guess_language=guess_language))
        channel = config.telegram.channel_id if token else config.telegram.channel_id or CONSOLE
        self.audience = Audience(self.store, channel, config.telegram.channel_narratives)
        self.signer = ButtonSigner.from_store(self.store)
        try:  # loading the model is what fails (a missing extra, a broken file)
            self.matcher = open_matcher(config, narratives, self.store,
                                        self.audience.learned_counter_examples(), embedder)
        except BaseException:
            self.store.close()
            raise
        self.client = make_client(fetch_limits(config))
        self.pipeline = Pipeline(config, self.store, self.matcher, self.client,
                                 route=self.audience.routes)
        self.reloader = NarrativeReloader(config, self.matcher, self.audience, self.store)
        self.application: BotApplication | None = (
            build_application(token, self) if token and chat and config.telegram.commands
            else None)
        self.bot: Bot | None = (self.application.bot if self.application is not None
                                else make_bot(config, token) if token else None)
        self.sink: AlertSink = (
            ConsoleSink(self.store) if self.bot is None else
            TelegramSink(self.bot, self.store, max_attempts=config.telegram.max_attempts,
                         signer=self.signer, audience=self.audience))
        self.scheduler = build_scheduler(self.pipeline, self.sink)
        self.scheduler.add_job(self.reloader.watch, IntervalTrigger(
            seconds=config.schedule.reload_check.total_seconds()), id="narratives",
            name="watch narratives")
        self.spikes = SpikeMonitor(self.store, config.trends, self._titles,
                                   self.audience.narrative_chats, _spike_text, chart=render_trend)
        self.digester = Digester(self.store, config.trends, self._titles, render_digest)
        add_trend_jobs(self.scheduler, config.trends, self.spikes, self.digester, config.digests)
        self._open = AsyncExitStack()

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> App:
        """Open the HTTP client and the bot; alerts cut off by a crash are sent again."""
        try:
            await self._open.enter_async_context(self.client)
            if self.application is not None:
                await self._open.enter_async_context(self.application)
            elif self.bot is not None:
                await self._open.enter_async_context(self.bot)
        except BaseException:
            await self._open.aclose()
            self.close()
            raise
        if not self.private_state and (interrupted := self.store.recover_interrupted()):
            log.warning("%d alert(s) were being sent when the bot last stopped: sending them "
                        "again (Telegram may show them twice)", interrupted)
        return self

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

    @asynccontextmanager
    async def answering(self, *, poll_timeout: int = 10) -> AsyncIterator[None]:
        """Chat commands answered meanwhile (when the App has them); needs `async with app`.
        `poll_timeout`: seconds each long poll for updates may wait."""
        application = self.application
        if application is None:
            yield
            return
        await register_commands(application)
        await application.start()
        await application.updater.start_polling(timeout=poll_timeout,
                                                drop_pending_updates=False)
        try:
            yield
        finally:
            await application.updater.stop()
            await application.stop()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The daemon: chats answered and every scheduled job running; on the way out the
        running polls and deliveries may finish."""
        async with self.answering():
            self.scheduler.start()
            try:
                yield
            finally:
                await self.scheduler.stop(timeout=STOP_TIMEOUT_S)

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


def _spike_text(spike: SpikeCheck) -> tuple[str, str]:
    rendered = render_spike(spike)
    return rendered.html, rendered.plain
