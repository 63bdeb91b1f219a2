"""`narrative-bot run | poll | check-feeds | export`: the bot at work, and what its state says.

Each returns the command's exit status; bot/cli.py parses the arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bot.app.pipeline import PollReport, ProbeReport, fetch_limits, probe_feed
from bot.app.sources import SourceReader
from bot.app.wiring import App
from bot.config import Config, FeedConfig, Narrative, parse_duration
from bot.feeds import guess_language, make_client
from bot.storage.instance import instance_lock
from bot.storage.store import FeedHealth, Store
from bot.telegram.report import DeliveryReport
from bot.trends.export import export_matches

log = logging.getLogger("narrative-bot")


def delivery_token(config: Config, token: str, *, dry_run: bool = False) -> str | None:
    """The token alerts are sent with; None: they are printed (a dry run, or no token)."""
    if dry_run:
        return None
    if not token:
        log.warning("no bot token in $%s: alerts are printed to the console",
                    config.telegram.token_env)
        return None
    return token


async def run(config: Config, narratives: Sequence[Narrative], token: str) -> int:
    """The daemon, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Before the state is opened: a second bot on the same file refuses (StateInUse).
    with instance_lock(config.state.path, config.state.url):
        app = App(config, narratives, token=delivery_token(config, token), chat=True)
        async with app, app.running():
            log.info("running: %d feeds, %d narratives; Ctrl-C or SIGTERM stops",
                     len(config.feeds), len(narratives))
            await _until_stopped(stop, app)
            log.info("stopping")
    if app.link is not None and app.link.error is not None:
        raise app.link.error
    return 0


async def _until_stopped(stop: asyncio.Event, app: App) -> None:
    """Until SIGTERM/SIGINT, or until Telegram rejects the token (the one fatal answer)."""
    waits = [asyncio.create_task(stop.wait())]
    if app.link is not None:
        waits.append(asyncio.create_task(app.link.failed.wait()))
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def poll(config: Config, narratives: Sequence[Narrative], token: str, *,
               dry_run: bool) -> int:
    """One cycle: every feed polled once, then every pending alert delivered (when Telegram
    answers; else they wait in the outbox)."""
    with contextlib.ExitStack() as held:
        if not dry_run:  # a dry run works on a private copy: it may run beside the daemon
            held.enter_context(instance_lock(config.state.path, config.state.url))
        async with App(config, narratives, token=delivery_token(config, token, dry_run=dry_run),
                       private_state=dry_run) as app:
            reports = await app.pipeline.poll_all(force=True)
            reachable = await app.connect_telegram(once=True)
            delivery = await app.sink.deliver_pending() if reachable else DeliveryReport()
            waiting = app.store.counts()["alerts_pending"]
    for line in poll_summary(reports):
        print(line)
    if not reachable:
        print(f"alerts: Telegram not reachable, {waiting} wait in the outbox for the next run")
        return 0
    print(f"alerts: {delivery.sent} delivered, {delivery.retried} to retry, "
          f"{delivery.failed} failed{' (dry run: state untouched)' if dry_run else ''}")
    return 0


def poll_summary(reports: Sequence[PollReport]) -> list[str]:
    lines = []
    for r in reports:
        detail = r.error or (f"{r.new_articles} new of {r.articles}, {r.matches} matches"
                             if r.status == "new" else
                             "0 items" if r.status == "empty" else r.status)
        if r.too_old:
            detail += f" ({r.too_old} older than [fetch] max_age skipped)"
        lines.append(f"feed {r.feed}: {r.status} — {detail}")
    return lines


async def check_feeds(config: Config, *, probe: bool) -> int:
    """Each feed's health from state (exit 1 if any is failing); `probe`: fetch and parse
    each now too, without changing state."""
    store = Store.in_memory_copy(config.state.location, guess_language=guess_language)
    known = {h.name: h for h in store.all_feed_health()}
    store.close()
    failing = 0
    limits = fetch_limits(config)
    async with make_client(limits, config.fetch.proxy) as client:
        reader = SourceReader(config, None, client, limits)
        for feed in config.feeds:
            line, bad = feed_health_line(feed, known.get(feed.name))
            failing += bad
            print(line)
            if probe:
                print(f"    probe: {probe_line(await probe_feed(reader, feed, limits))}")
        await reader.aclose()
    return 1 if failing else 0


def feed_health_line(feed: FeedConfig, health: FeedHealth | None) -> tuple[str, bool]:
    """One feed's line, and whether it is failing."""
    if not feed.enabled:
        return f"{feed.name}: disabled", False
    if health is None or health.last_poll_at is None:
        return f"{feed.name}: never polled ({feed.url})", False

    def when(t: datetime | None) -> str:
        return f"{t:%Y-%m-%d %H:%M:%S} UTC" if t else "never"

    if health.consecutive_errors == 0:
        return (f"{feed.name}: ok — last poll {when(health.last_poll_at)}, "
                f"{health.articles_seen} articles"), False
    state = "PAUSED" if health.paused_at else "FAILING"
    return (f"{feed.name}: {state} — {health.consecutive_errors} failures in a row, last ok "
            f"{when(health.last_ok_at)}, next try {when(health.retry_at)}\n"
            f"    last error: {health.last_error}"), True


def probe_line(report: ProbeReport) -> str:
    if report.fetch_error is not None:
        return f"fetch failed: {report.fetch_error}"
    got = f"HTTP {report.status}" if report.status else f"{report.size} bytes"
    if report.parse_error:
        return f"{got}, parse failed: {report.parse_error}"
    return f"{got}, {report.articles} articles"


def export(config: Config, since: str, fmt: Literal["csv", "json"], output: Path | None) -> int:
    """Matches with their evidence since `since` ago, as CSV or JSON, to `output` or stdout."""
    try:
        start = datetime.now(UTC) - parse_duration(since)
    except (ValueError, OverflowError) as exc:
        print(f"export: --since: {exc}", file=sys.stderr)
        return 2
    if not config.state.on_postgres and not config.state.path.exists():
        print(f"export: no state at {config.state.path} (nothing has run yet)", file=sys.stderr)
        return 2
    # read-only: never blocks the running bot
    store = Store.in_memory_copy(config.state.location, guess_language=guess_language)
    try:
        if output is None:
            count = export_matches(store, start, fmt, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = export_matches(store, start, fmt, out)
    except OSError as exc:
        print(f"export: cannot write {output}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"exported {count} matches since {start:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    return 0
