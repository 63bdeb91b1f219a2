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

from bot.config import Config
from bot.feeds import guess_language
from bot.storage.integrity import StateDamaged, backup_path
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
    if not config.state.path.exists():
        print(f"{command}: no state at {config.state.path} (nothing has run yet)",
              file=sys.stderr)
        return None
    try:
        return Store(config.state.path, guess_language=guess_language)
    except StateDamaged as exc:
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
