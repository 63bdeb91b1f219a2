"""The running bot (`narrative-bot run`): scheduler, pipeline, delivery, chat commands, reloads.

Narrative files are watched: a change is picked up within `[schedule] reload_check` (30 s by
default) or at once with /reload. A file that fails validation leaves the previous set active
and the admins are told which file, which key and why.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from apscheduler.triggers.interval import IntervalTrigger
from telegram import Bot
from telegram.ext import AIORateLimiter, Application, ExtBot
from telegram.request import HTTPXRequest

from bot.app.pipeline import Pipeline
from bot.app.runtime import Runtime
from bot.app.schedule import DrainingScheduler, add_trend_jobs, build_scheduler
from bot.config import Config, ConfigError, Narrative
from bot.storage.audience import Audience
from bot.storage.store import Store
from bot.telegram.buttons import ButtonSigner
from bot.telegram.deliver import AlertSink, ConsoleSink, TelegramSink, render_spike
from bot.trends.charts import render_trend
from bot.trends.digest import Digester
from bot.trends.spikes import SpikeCheck, SpikeMonitor

log = logging.getLogger(__name__)


def narratives_fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the narrative files: changes when any file is edited."""
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


class NarrativeReloader:
    """Re-reads narratives_dir into the running index, on demand or when a file changes."""

    def __init__(self, config: Config, runtime: Runtime, audience: Audience,
                 pipeline: Pipeline) -> None:
        self.config = config
        self.runtime = runtime
        self.audience = audience
        self.pipeline = pipeline
        self._fingerprint = narratives_fingerprint(config.narratives_dir)

    async def reload(self) -> str:
        """Raises ConfigError, and keeps the old set, when a file is bad."""
        self._fingerprint = narratives_fingerprint(self.config.narratives_dir)
        learned = self.audience.learned_counter_examples()
        narratives = await asyncio.to_thread(self.runtime.reload, learned)
        self.pipeline.index = self.runtime.index
        summary = f"{len(narratives)} narratives loaded: {', '.join(n.id for n in narratives)}"
        log.info("reloaded: %s", summary)
        return summary

    async def watch(self) -> None:
        """The scheduled check: reload when a file changed; tell the admins about a bad one."""
        if narratives_fingerprint(self.config.narratives_dir) == self._fingerprint:
            return
        try:
            await self.reload()
        except ConfigError as exc:  # reported once: the fingerprint was updated first
            log.error("narratives not reloaded: %s", exc)
            admins = [str(a) for a in self.config.telegram.admins]
            self.runtime.store.add_notice(
                admins, f"⚠️ Narratives not reloaded; the previous set stays active.\n{exc}")


def last_cycle_at(store: Store) -> datetime | None:
    return max((h.last_poll_at for h in store.all_feed_health() if h.last_poll_at), default=None)


@dataclass
class Service:
    """Everything `run` and `poll` keep alive, wired once."""

    runtime: Runtime
    audience: Audience
    pipeline: Pipeline
    sink: AlertSink
    scheduler: DrainingScheduler
    application: Application | None
    bot: Bot | None
    spikes: SpikeMonitor | None = None
    digester: Digester | None = None


def make_bot(config: Config, token: str) -> ExtBot:
    limiter = AIORateLimiter(max_retries=0) if config.telegram.rate_limit else None
    return ExtBot(token, base_url=config.telegram.api_base_url, rate_limiter=limiter,
                  request=telegram_request(config))


def telegram_request(config: Config) -> HTTPXRequest:
    """HTTP client for the Bot API with `[telegram] send_timeout` as its read/write timeout."""
    seconds = config.telegram.send_timeout.total_seconds()
    return HTTPXRequest(connect_timeout=10.0, read_timeout=seconds, write_timeout=seconds)


def build_service(config: Config, narratives: list[Narrative], store: Store,
                  client: httpx.AsyncClient, token: str, *, commands: bool,
                  console: bool = False) -> Service:
    """Wire the parts. `commands`: answer chats (run); `console`: print alerts (dry run)."""
    channel = config.telegram.channel_id
    if console or not token:
        channel = channel or "console"
    audience = Audience(store, channel, config.telegram.channel_narratives)
    runtime = Runtime.open(config, narratives, store=store,
                           learned=audience.learned_counter_examples())
    pipeline = Pipeline(config, store, runtime.index, runtime.embedder, client,
                        route=audience.routes)
    reloader = NarrativeReloader(config, runtime, audience, pipeline)
    signer = ButtonSigner.from_store(store)
    application: Application | None = None
    bot: Bot | None = None
    sink: AlertSink = ConsoleSink(store)
    if not token and not console:
        log.warning("no bot token in $%s: alerts are printed to the console",
                    config.telegram.token_env)
    elif console:
        pass
    elif commands and config.telegram.commands:
        from bot.telegram.commands import Services, build_application  # only `run` answers chats

        application = build_application(token, Services(
            config=config, store=store, audience=audience, runtime=runtime, signer=signer,
            reload=reloader.reload, started_at=datetime.now(UTC),
            last_cycle_at=lambda: last_cycle_at(store)))
        bot = application.bot
    else:
        bot = make_bot(config, token)
    if bot is not None:
        sink = TelegramSink(bot, store, max_attempts=config.telegram.max_attempts,
                            signer=signer, audience=audience)
    scheduler = build_scheduler(pipeline, sink)
    scheduler.add_job(reloader.watch, IntervalTrigger(
        seconds=config.schedule.reload_check.total_seconds()), id="narratives",
        name="watch narratives")

    def titles() -> dict[str, str]:
        return {n.id: n.title for n in runtime.narratives}

    def spike_text(spike: SpikeCheck) -> tuple[str, str]:
        rendered = render_spike(spike)
        return rendered.html, rendered.plain

    spikes = SpikeMonitor(store, config.trends, titles, audience.narrative_chats, spike_text,
                          chart=render_trend)
    digester = Digester(store, config.trends, titles)
    add_trend_jobs(scheduler, config.trends, spikes, digester, config.digests)
    return Service(runtime, audience, pipeline, sink, scheduler, application, bot, spikes,
                   digester)
