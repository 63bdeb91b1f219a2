"""Typed records that flow one way through the pipeline: fetch → parse → match → alert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class HttpCacheState:
    """Validators remembered from a feed's last successful response (for conditional GET)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one HTTP poll of a feed. Exactly one of: body, not_modified, error."""

    url: str
    status: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cache: HttpCacheState = field(default_factory=HttpCacheState)
    not_modified: bool = False
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.body is not None


@dataclass(frozen=True)
class Article:
    """One feed entry, normalised: a stable key, clean text and where it came from."""

    key: str
    source: str
    url: str
    title: str
    text: str
    published: datetime | None = None
    language: str | None = None  # ISO 639 code: declared by the feed, configured, or guessed

    @property
    def content_hash(self) -> str:
        """Same words, same hash: catches feeds that give old items new GUIDs."""
        words = " ".join(f"{self.title}\n{self.text}".casefold().split())
        return hashlib.sha256(words.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ParsedFeed:
    """Articles found in a feed body, or a readable reason why there are none."""

    articles: list[Article]
    feed_title: str = ""
    error: str | None = None
    warning: str | None = None


@dataclass(frozen=True)
class Passage:
    """A span of an article embedded and scored on its own (the title, or sentences)."""

    index: int
    text: str
    quotes: tuple[str, ...] = ()  # quoted spans inside `text`, scored on their own too
    title: bool = False  # the article's title line, not its body


@dataclass(frozen=True)
class Match:
    """An article that carries a narrative, with the passage that shows it."""

    narrative_id: str
    narrative_title: str
    score: float
    threshold: float
    passage: Passage
    statement: str


@dataclass(frozen=True)
class Evidence:
    """Why an alert names a narrative: its score and the passage that carries it."""

    narrative_id: str
    narrative_title: str
    score: float
    passage: str


@dataclass(frozen=True)
class Alert:
    """A pending message in the outbox: one article, for one chat, with its narratives."""

    id: int
    chat_id: str
    source: str
    article_title: str
    article_url: str
    evidence: tuple[Evidence, ...]
    published: datetime | None = None
    attempts: int = 0
    origin_key: str | None = None  # set on a syndicated copy: the article first alerted
