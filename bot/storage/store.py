"""The one `Store`: every per-entity part of the state over one database, SQLite (WAL) or
PostgreSQL (bot/storage/database.py).

Each part lives in its own module (feeds, articles, outbox, volumes, posts, stories, meta)
and shares the engine; opening a state migrates it (bot/storage/migrations.py). The
audience (bot/storage/audience.py) keeps its tables in the same database.
This module also re-exports the records callers import from here.
"""

from __future__ import annotations

from bot.storage.articles import (
    ARTICLE_TEXT_CHARS,
    ArticlesStore,
    MatchRecord,
    SourceCount,
    StoredArticle,
    VotedArticle,
)
from bot.storage.copy import copy_tables
from bot.storage.database import Location, is_url, iso, parse_time
from bot.storage.feeds import FeedHealth, FeedsStore
from bot.storage.meta import MetaStore
from bot.storage.migrations import SCHEMA_VERSION, LanguageGuesser, MigrationError, migrate
from bot.storage.outbox import AlertsStore, Delivery, OutboxEntry, StoredAlert
from bot.storage.pages import CachedPage, PagesStore
from bot.storage.pauses import PausedChat, PausesStore
from bot.storage.posts import Chart, Notice, Post, PostDraft, PostsStore, PostStatus
from bot.storage.sources import SourcesStore, StoredFeed
from bot.storage.sqlite import MEMORY
from bot.storage.stories import Copy, OriginStory, StoriesStore, Story
from bot.storage.volumes import UNDETERMINED, SpikeState, Volume, VolumesStore, volume_hour

__all__ = [
    "ARTICLE_TEXT_CHARS",
    "SCHEMA_VERSION",
    "UNDETERMINED",
    "CachedPage",
    "Chart",
    "Copy",
    "Delivery",
    "FeedHealth",
    "LanguageGuesser",
    "MatchRecord",
    "MigrationError",
    "Notice",
    "OriginStory",
    "OutboxEntry",
    "PausedChat",
    "Post",
    "PostDraft",
    "PostStatus",
    "SourceCount",
    "SpikeState",
    "Store",
    "StoredAlert",
    "StoredArticle",
    "StoredFeed",
    "Story",
    "Volume",
    "VotedArticle",
    "iso",
    "parse_time",
    "volume_hour",
]


class Store(FeedsStore, ArticlesStore, AlertsStore, VolumesStore, PostsStore, StoriesStore,
            MetaStore, PausesStore, PagesStore, SourcesStore):
    """All state but the audience's. `guess_language` is only needed to open a file from the
    first release (its articles' languages are guessed as it migrates)."""

    def __init__(self, location: Location, *, guess_language: LanguageGuesser | None = None,
                 private_copy: bool = False) -> None:
        super().__init__(location, private_copy=private_copy)
        try:
            with self._tx() as db:
                migrate(db, self.name, guess_language)
        except BaseException:
            self.close()
            raise

    @classmethod
    def in_memory_copy(cls, path: Location, *,
                       guess_language: LanguageGuesser | None = None) -> Store:
        """A private copy of the state at `path` (for dry runs, exports, evals): changes never
        reach the file, and an older schema is brought up to date in the copy only. A
        PostgreSQL state is copied into memory table by table (bot/storage/copy.py)."""
        if not is_url(path):
            return cls(path, guess_language=guess_language, private_copy=True)
        source = cls(path, guess_language=guess_language)
        copy = cls(MEMORY)
        try:
            with source.transaction() as read, copy.transaction() as write:
                copy_tables(read, write)
        except BaseException:
            copy.close()
            raise
        finally:
            source.close()
        return copy
