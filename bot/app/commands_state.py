"""`narrative-bot outbox [list|retry|drop]` and `narrative-bot state backup [--to FILE]`: what
is stuck in the outbox, and copies of the state; also how the admins hear of damaged state.

Each returns the command's exit status; bot/cli.py parses the arguments.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from telegram.error import TelegramError

from bot.app.queue import apply_queue_schema
from bot.config import Config
from bot.feeds import guess_language
from bot.storage.copy import TargetNotEmpty, copy_tables, require_empty, row_counts
from bot.storage.database import Database, is_url
from bot.storage.integrity import StateDamaged, backup_path
from bot.storage.migrations import SCHEMA_VERSION, MigrationError, schema_version
from bot.storage.postgres import StateUnavailable
from bot.storage.store import OutboxEntry, Store
from bot.telegram import make_bot

log = logging.getLogger("narrative-bot")


def outbox(config: Config, action: str, ids: Sequence[str]) -> int:
    """list: failed alerts and posts; retry: requeue them (all, or those ids); drop: forget
    them. Ids are alert ids, `p<id>` for a post."""
    try:
        alerts, posts = _parse_ids(ids)
    except ValueError as exc:
        print(f"outbox: {exc}", file=sys.stderr)
        return 2
    store = _existing_state(config, "outbox")
    if store is None:
        return 2
    try:
        if action == "list":
            entries = store.outbox_entries(("failed", "pending", "sending"))
            for entry in entries:
                print(_line(entry))
            print(f"{sum(e.status == 'failed' for e in entries)} failed, "
                  f"{sum(e.status != 'failed' for e in entries)} waiting; paused chats: "
                  f"{', '.join(p.chat_id for p in store.paused_chats()) or 'none'}")
            return 0
        change = store.requeue if action == "retry" else store.drop
        done = sum(change(kind, wanted) for kind, wanted in (("alert", alerts), ("post", posts))
                   if wanted is None or wanted)
        print(f"{'requeued' if action == 'retry' else 'dropped'} {done}")
        return 0
    finally:
        store.close()


def _existing_state(config: Config, command: str) -> Store | None:
    """The state file opened for a maintenance command, or None once the reason is printed
    (there is none yet, or it is damaged: never created anew here)."""
    if not config.state.on_postgres and not config.state.path.exists():
        print(f"{command}: no state at {config.state.path} (nothing has run yet)",
              file=sys.stderr)
        return None
    try:
        return Store(config.state.location, guess_language=guess_language)
    except (StateDamaged, StateUnavailable, MigrationError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return None


def _parse_ids(ids: Sequence[str]) -> tuple[list[int] | None, list[int] | None]:
    """(alert ids, post ids); (None, None) for every failed one."""
    if not ids:
        return None, None
    alerts: list[int] = []
    posts: list[int] = []
    for raw in ids:
        text = raw.strip().lower()
        digits = text[1:] if text.startswith("p") else text
        if not digits.isdigit():
            raise ValueError(f"not an alert id or p<post id>: {raw!r}")
        (posts if text.startswith("p") else alerts).append(int(digits))
    return alerts, posts


def _line(entry: OutboxEntry) -> str:
    ident = f"p{entry.id}" if entry.kind == "post" else str(entry.id)
    queued = f"{entry.created_at:%Y-%m-%d %H:%M}" if entry.created_at else "?"
    extra = f", {entry.interrupted} interrupted" if entry.interrupted else ""
    return (f"{ident:>7} {entry.status:<8} {entry.chat_id:<16} queued {queued} UTC, "
            f"{entry.attempts} attempts{extra}: {entry.title[:60]}"
            + (f"\n        last error: {entry.last_error}" if entry.last_error else ""))


def backup(config: Config, to: Path | None) -> int:
    """An online copy of the state (the bot may keep running), checked, at `to` or in the
    backups folder beside the state."""
    store = _existing_state(config, "state backup")
    if store is None:
        return 2
    try:
        target = store.backup_to(to.resolve() if to else backup_path(config.state.path))
    except (OSError, StateDamaged) as exc:
        print(f"state backup: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"state backed up to {target}")
    return 0


def migrate(config: Config) -> int:
    """Bring the state (SQLite or PostgreSQL) to this release's schema; on PostgreSQL also
    the work queue's tables. `run` and `worker` do the same as they start."""
    location = config.state.location
    try:
        before = _schema_version(location)
        store = Store(location, guess_language=guess_language)
    except (StateDamaged, StateUnavailable, MigrationError, OSError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    try:
        if config.state.on_postgres:
            apply_queue_schema(config)
    finally:
        store.close()
    if before == SCHEMA_VERSION:
        print(f"state {store.name}: schema version {SCHEMA_VERSION}, up to date")
    else:
        print(f"state {store.name}: schema version {before or 'none'} → {SCHEMA_VERSION}")
    return 0


def _schema_version(location: Path | str) -> int:
    if isinstance(location, Path) and not location.exists():
        return 0
    database = Database(location)
    try:
        with database.transaction() as db:
            return schema_version(db)
    finally:
        database.close()


def copy(config: Config, to: str) -> int:
    """The state, every table row for row, into the empty state at `to` (a postgresql://
    URL, or a new SQLite file); the counts are checked on both sides."""
    source = _existing_state(config, "state copy")
    if source is None:
        return 2
    target_location: Path | str = to if is_url(to) else Path(to).resolve()
    try:
        target = Store(target_location, guess_language=guess_language)
    except (StateDamaged, StateUnavailable, MigrationError, OSError) as exc:
        source.close()
        print(f"state copy: {exc}", file=sys.stderr)
        return 2
    try:
        with source.transaction() as read, target.transaction() as write:
            require_empty(write, target.name)
            copied = copy_tables(read, write)
            expected, found = row_counts(read), row_counts(write)
        if {k: v for k, v in expected.items() if k != "meta"} != \
                {k: v for k, v in found.items() if k != "meta"}:
            print(f"state copy: row counts differ after the copy: {expected} != {found}",
                  file=sys.stderr)
            return 1
    except TargetNotEmpty as exc:
        print(f"state copy: {exc}", file=sys.stderr)
        return 2
    finally:
        source.close()
        target.close()
    for table in copied:
        print(f"{table.name:<18} {table.rows:>8} rows")
    print(f"state {source.name} copied to {target.name}: "
          f"{sum(t.rows for t in copied)} rows in {len(copied)} tables")
    return 0


async def tell_admins(config: Config, token: str, text: str) -> int:
    """Send `text` straight to every admin (not through the state, which may be the problem);
    how many got it."""
    if not token or not config.telegram.admins:
        return 0
    told = 0
    try:
        async with make_bot(config, token) as bot:
            for admin in config.telegram.admins:
                try:
                    await bot.send_message(admin, text[:4000])
                    told += 1
                except TelegramError as exc:
                    log.warning("could not tell admin %s: %s", admin, exc.message)
    except TelegramError as exc:
        log.warning("could not reach Telegram to tell the admins: %s", exc.message)
    return told
