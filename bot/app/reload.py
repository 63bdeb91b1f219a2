"""Narrative files are watched: a change is picked up within `[schedule] reload_check` (30 s by
default) or at once with /reload. A file that fails validation leaves the previous set active
and the admins are told which file, which key and why.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.config import Config, ConfigError, load_narratives
from bot.matching.matcher import Matcher
from bot.storage.audience import Audience
from bot.storage.store import Store

log = logging.getLogger(__name__)


def narratives_fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the narrative files: changes when any file is edited."""
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


class NarrativeReloader:
    """Re-reads narratives_dir into the matcher, on demand or when a file changes."""

    def __init__(self, config: Config, matcher: Matcher, audience: Audience,
                 store: Store) -> None:
        self.config = config
        self.matcher = matcher
        self.audience = audience
        self.store = store
        self._fingerprint = narratives_fingerprint(config.narratives_dir)

    async def reload(self) -> str:
        """A summary of the new set. Raises ConfigError, and keeps the old set, when a file
        is bad."""
        self._fingerprint = narratives_fingerprint(self.config.narratives_dir)
        learned = self.audience.learned_counter_examples()

        def load() -> None:  # in a thread: it embeds every statement
            self.matcher.reload(load_narratives(self.config.narratives_dir), learned)

        await asyncio.to_thread(load)
        narratives = self.matcher.narratives
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
            self.store.add_notice(
                admins, f"⚠️ Narratives not reloaded; the previous set stays active.\n{exc}")
