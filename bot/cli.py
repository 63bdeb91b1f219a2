"""`narrative-bot run | poll --once [--dry-run] | score TEXT | check-config`.

Every command takes `--config PATH` (default ./config.toml); relative paths inside it are
resolved against the config file's folder. A bad config exits with status 2 before any state
is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from telegram import Bot

from bot.config import Config, ConfigError
from bot.deliver import AlertSink, ConsoleSink, TelegramSink
from bot.fetch import make_client
from bot.logs import setup_logging
from bot.pipeline import Pipeline, PollReport, fetch_limits
from bot.runtime import Runtime, load_settings
from bot.schedule import build_scheduler
from bot.store import Store

log = logging.getLogger("narrative-bot")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("config.toml"),
                        help="config file (default: ./config.toml)")
    common.add_argument("--log-level", default=os.environ.get("NARRATIVE_BOT_LOG", "INFO"))
    parser = argparse.ArgumentParser(prog="narrative-bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="the daemon: poll feeds and deliver alerts")
    poll = sub.add_parser("poll", parents=[common], help="poll every feed once and deliver")
    poll.add_argument("--once", action="store_true", help="one cycle (the only mode for now)")
    poll.add_argument("--dry-run", action="store_true",
                      help="print alerts instead of sending them; state is left untouched")
    score = sub.add_parser("score", parents=[common], help="score a text against each narrative")
    score.add_argument("text", nargs="?", help="the text to score")
    score.add_argument("--file", type=Path, help="read the text from a file instead")
    sub.add_parser("check-config", parents=[common], help="validate config and narratives")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config, narratives = load_settings(args.config)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return 2
    token = os.environ.get(config.telegram.token_env, "").strip()
    setup_logging(args.log_level, secrets=[token])
    if args.command == "check-config":
        return _check_config(config, len(narratives))
    if args.command == "score":
        return _score(args, config, narratives)
    if args.command == "poll":
        return asyncio.run(_poll_once(config, narratives, token, dry_run=args.dry_run))
    return asyncio.run(_run(config, narratives, token))


def _check_config(config: Config, narrative_count: int) -> int:
    print(f"{config.source_file}: OK — {len(config.feeds)} feeds, {narrative_count} narratives, "
          f"model {config.model.backend}, state {config.state.path}")
    return 0


def _score(args: argparse.Namespace, config: Config, narratives: list) -> int:
    if args.file is not None:
        text = args.file.read_text(encoding="utf-8", errors="replace")
    elif args.text:
        text = args.text
    else:
        print("score: give TEXT or --file PATH", file=sys.stderr)
        return 2
    runtime = Runtime.open(config, narratives)
    try:
        _, scores = runtime.score("", text)
    finally:
        runtime.close()
    for s in sorted(scores, key=lambda s: -s.score):
        verdict = "MATCH" if s.supported else "-"
        print(f"{s.narrative_id:24} {s.score:6.3f} / {s.threshold:.3f}  "
              f"counter {s.counter_score:6.3f}"
              f"  {verdict}\n    passage #{s.passage.index}: {s.passage.text[:300]}")
    return 0


def _sink(config: Config, token: str, store: Store) -> tuple[AlertSink, Bot | None]:
    if not token:
        log.warning("no bot token in $%s: alerts are printed to the console",
                    config.telegram.token_env)
        return ConsoleSink(store), None
    bot = Bot(token, base_url=config.telegram.api_base_url)
    return TelegramSink(bot, store, max_attempts=config.telegram.max_attempts), bot


def _chats(config: Config, token: str) -> list[str]:
    if token and config.telegram.channel_id:
        return [config.telegram.channel_id]
    return [config.telegram.channel_id or "console"]


async def _poll_once(config: Config, narratives: list, token: str, *, dry_run: bool) -> int:
    store = Store.in_memory_copy(config.state.path) if dry_run else Store(config.state.path)
    runtime = Runtime.open(config, narratives, store=store)
    sink: AlertSink
    if dry_run:
        sink, bot = ConsoleSink(store), None
    else:
        sink, bot = _sink(config, token, store)
    try:
        async with make_client(fetch_limits(config)) as client:
            pipeline = Pipeline(config, store, runtime.index, runtime.embedder, client,
                                chats=lambda: _chats(config, token))
            reports = await pipeline.poll_all(force=True)
        if bot is not None:
            async with bot:
                delivery = await sink.deliver_pending()
        else:
            delivery = await sink.deliver_pending()
    finally:
        runtime.close()
    _print_summary(reports)
    print(f"alerts: {delivery.sent} delivered, {delivery.retried} to retry, "
          f"{delivery.failed} failed{' (dry run: state untouched)' if dry_run else ''}")
    return 0


def _print_summary(reports: list[PollReport]) -> None:
    for r in reports:
        detail = r.error or (f"{r.new_articles} new of {r.articles}, {r.matches} matches"
                             if r.status == "new" else r.status)
        print(f"feed {r.feed}: {r.status} — {detail}")


async def _run(config: Config, narratives: list, token: str) -> int:
    store = Store(config.state.path)
    runtime = Runtime.open(config, narratives, store=store)
    sink, bot = _sink(config, token, store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with make_client(fetch_limits(config)) as client:
            if bot is not None:
                await bot.initialize()
            pipeline = Pipeline(config, store, runtime.index, runtime.embedder, client,
                                chats=lambda: _chats(config, token))
            scheduler = build_scheduler(pipeline, sink)
            scheduler.start()
            log.info("running: %d feeds, %d narratives; Ctrl-C or SIGTERM stops",
                     len(config.feeds), len(narratives))
            await stop.wait()
            log.info("stopping")
            scheduler.shutdown(wait=False)
            if bot is not None:
                await bot.shutdown()
    finally:
        runtime.close()
    return 0
