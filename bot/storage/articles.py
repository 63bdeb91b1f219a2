"""Seen articles (text kept, capped, for backtests) and their matches with evidence.

An article, its matches, their hourly volumes, its story and its pending alerts are written in
one transaction, so a crash either loses nothing (the article is processed again) or keeps
everything (it is never processed again).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping

from bot.models import Article, Match
from bot.storage.database import Database, in_filter, iso, parse_time, run, utcnow
from bot.storage.outbox import queue_alerts
from bot.storage.stories import Story, remember_story
from bot.storage.volumes import COUNTED_AT, UNDETERMINED, count_volume, volume_hour

ARTICLE_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class MatchRecord:
    """One stored match with its article and evidence (for exports, digests and audits)."""

    narrative_id: str
    narrative_title: str
    score: float
    threshold: float
    source: str
    language: str | None
    url: str
    title: str
    published: datetime | None
    matched_at: datetime
    counted_at: datetime  # the moment its volume was counted in (see volume_hour)
    evidence: str
    statement: str
    article_key: str


@dataclass(frozen=True)
class StoredArticle:
    """A stored article (with its text) and when it was first seen."""

    article: Article
    seen_at: datetime


@dataclass(frozen=True)
class SourceCount:
    """Articles seen from one source, and how many of them matched."""

    seen: int
    matched: int


@dataclass(frozen=True)
class VotedArticle:
    """An alerted article with the 👍/👎 votes it got for one narrative."""

    article_key: str
    narrative_id: str
    title: str
    text: str | None
    relevant: int
    wrong: int


class ArticlesStore(Database):
    """Articles and matches."""

    def unseen(self, articles: Sequence[Article]) -> list[Article]:
        """Articles never processed: neither their key nor, from the same source, their text or
        their link (a feed that rotates GUIDs and edits a line is still the same article)."""
        fresh: list[Article] = []
        batch: set[str] = set()
        with self._read() as db:
            for article in articles:
                seen = {article.key, article.content_hash} | ({article.url} if article.url
                                                               else set())
                if not _stored(db, article) and not seen & batch:
                    batch |= seen
                    fresh.append(article)
        return fresh

    def record_article(self, article: Article, passages: int, matches: Sequence[Match],
                       routes: Mapping[str, Sequence[str]] | Sequence[str], *,
                       origin_key: str | None = None, story: Story | None = None) -> list[int]:
        """Mark the article seen, store its matches and queue one alert per chat, atomically.

        `routes` maps each chat to the narratives (among `matches`) it is alerted to; a plain
        list of chat ids alerts each of them to every match. With `origin_key` the article is a
        syndicated copy of that one and its alerts are "also in" notes under it. `story` is
        kept to recognise later copies of this article.
        """
        seen = utcnow()
        at = iso(seen)
        with self._tx() as db:
            if not _insert_article(db, article, passages, at):
                return []  # another poll got there first
            hour = iso(volume_hour(article.published, seen))
            for narrative_id in dict.fromkeys(m.narrative_id for m in matches):
                count_volume(db, narrative_id, hour, article.source,
                             article.language or UNDETERMINED)
            for match in matches:
                _insert_match(db, article.key, match, at)
            matched = [m.narrative_id for m in matches]
            pairs = (routes.items() if isinstance(routes, Mapping)
                     else [(chat_id, matched) for chat_id in routes])
            ids = queue_alerts(db, article.key, pairs, matched, origin_key, at)
            if story is not None:
                remember_story(db, article.key, story, origin_key)
        return ids

    def articles_since(self, since: datetime) -> list[StoredArticle]:
        """Stored articles (with their text, for backtests) seen since `since`."""
        with self._read() as db:
            rows = run(db, "SELECT * FROM articles WHERE seen_at >= :since ORDER BY seen_at, key",
                       {"since": iso(since)}).mappings().fetchall()
        return [StoredArticle(Article(key=r["key"], source=r["source"], url=r["url"],
                                      title=r["title"], text=r["text"] or "",
                                      published=parse_time(r["published"]),
                                      language=r["language"]),
                              datetime.fromisoformat(r["seen_at"])) for r in rows]

    def match_counts(self, since: datetime) -> dict[str, int]:
        """narrative id → matches found since `since`."""
        with self._read() as db:
            rows = run(db, "SELECT narrative_id, COUNT(*) AS n FROM matches "
                       "WHERE created_at >= :since GROUP BY narrative_id",
                       {"since": iso(since)}).mappings().fetchall()
        return {r["narrative_id"]: int(r["n"]) for r in rows}

    def source_counts(self) -> dict[str, SourceCount]:
        """source → articles seen and matched."""
        with self._read() as db:
            rows = run(db, "SELECT a.source, COUNT(DISTINCT a.key) AS seen, "
                       "COUNT(DISTINCT m.article_key) AS matched FROM articles a "
                       "LEFT JOIN matches m ON m.article_key = a.key GROUP BY a.source"
                       ).mappings().fetchall()
        return {r["source"]: SourceCount(int(r["seen"]), int(r["matched"])) for r in rows}

    def counts(self) -> dict[str, int]:
        """Totals for status displays: articles, matches and alerts by status."""
        with self._read() as db:
            def one(statement: str, params: dict[str, str] | None = None) -> int:
                # SUM of a BIGINT is NUMERIC on PostgreSQL (a Decimal)
                return int(run(db, statement, params).scalar_one())

            result = {"articles": one("SELECT COUNT(*) FROM articles"),
                      "matches": one("SELECT COUNT(*) FROM matches"),
                      "alerts_interrupted": one("SELECT COALESCE(SUM(interrupted), 0) "
                                                "FROM outbox")}
            for status in ("pending", "sending", "sent", "failed"):
                result[f"alerts_{status}"] = one(
                    "SELECT COUNT(*) FROM outbox WHERE status = :status", {"status": status})
        return result

    def narrative_titles(self) -> dict[str, str]:
        """narrative id → the title it last matched under (narratives no longer loaded too)."""
        with self._read() as db:
            rows = run(db, "SELECT narrative_id, narrative_title FROM matches WHERE id IN "
                       "(SELECT MAX(id) FROM matches GROUP BY narrative_id)").mappings().fetchall()
        return {r["narrative_id"]: r["narrative_title"] for r in rows}

    def match_records(self, since: datetime, until: datetime | None = None, *,
                      narrative_ids: Collection[str] | None = None,
                      by: str = "matched") -> list[MatchRecord]:
        """Stored matches with their articles, oldest first. `by`: "matched" filters on when
        the match was recorded, "counted" on the moment its volume counts in."""
        column = {"matched": "m.created_at", "counted": COUNTED_AT}[by]
        statement = (f"SELECT m.*, a.source, a.language, a.url, a.title, a.published, "
                     f"{COUNTED_AT} AS counted_at FROM matches m JOIN articles a "
                     f"ON a.key = m.article_key WHERE {column} >= :since")
        params: dict[str, Any] = {"since": iso(since)}
        if until is not None:
            statement += f" AND {column} < :until"
            params["until"] = iso(until)
        statement += in_filter("m.narrative_id", narrative_ids, params)
        with self._read() as db:
            rows = run(db, statement + f" ORDER BY {column}, m.id", params).mappings().fetchall()
        return [_match_record(r) for r in rows]

    def voted_articles(self) -> list[VotedArticle]:
        """Every (article, narrative) that got feedback, with its votes (for calibration)."""
        with self._read() as db:
            rows = run(db, "SELECT f.article_key, f.narrative_id, a.title, a.text, "
                       "SUM(CASE WHEN f.vote = 'relevant' THEN 1 ELSE 0 END) AS up, "
                       "SUM(CASE WHEN f.vote = 'wrong' THEN 1 ELSE 0 END) AS down "
                       "FROM feedback f JOIN articles a ON a.key = f.article_key "
                       "GROUP BY f.article_key, f.narrative_id, a.title, a.text "
                       "ORDER BY f.article_key, f.narrative_id").mappings().fetchall()
        return [VotedArticle(r["article_key"], r["narrative_id"], r["title"], r["text"],
                             int(r["up"]), int(r["down"])) for r in rows]


def _stored(db: Connection, article: Article) -> bool:
    """Whether the article, or one from its source with its text or its link, is stored."""
    statement = ("SELECT 1 FROM articles WHERE key = :key "
                 "OR (source = :source AND content_hash = :content_hash)")
    params = {"key": article.key, "source": article.source,
              "content_hash": article.content_hash}
    if article.url:  # no link: only key and text decide
        statement += " OR (source = :source AND url = :url)"
        params["url"] = article.url
    return run(db, statement, params).first() is not None


def _insert_article(db: Connection, article: Article, passages: int, at: str | None) -> bool:
    """False when the article is stored already."""
    inserted = run(
        db, "INSERT INTO articles (key, source, url, title, published, seen_at, passages, "
        "content_hash, text, language) VALUES (:key, :source, :url, :title, :published, "
        ":seen_at, :passages, :content_hash, :text, :language) ON CONFLICT (key) DO NOTHING",
        {"key": article.key, "source": article.source, "url": article.url,
         "title": article.title, "published": iso(article.published), "seen_at": at,
         "passages": passages, "content_hash": article.content_hash,
         "text": article.text[:ARTICLE_TEXT_CHARS], "language": article.language})
    return inserted.rowcount > 0


def _insert_match(db: Connection, article_key: str, match: Match, at: str | None) -> None:
    run(db, "INSERT INTO matches (article_key, narrative_id, narrative_title, score, threshold, "
        "passage_index, evidence, statement, created_at) VALUES (:article_key, :narrative_id, "
        ":narrative_title, :score, :threshold, :passage_index, :evidence, :statement, "
        ":created_at)",
        {"article_key": article_key, "narrative_id": match.narrative_id,
         "narrative_title": match.narrative_title, "score": match.score,
         "threshold": match.threshold, "passage_index": match.passage.index,
         "evidence": match.passage.text, "statement": match.statement, "created_at": at})


def _match_record(r: RowMapping) -> MatchRecord:
    return MatchRecord(
        narrative_id=r["narrative_id"], narrative_title=r["narrative_title"],
        score=r["score"], threshold=r["threshold"], source=r["source"],
        language=r["language"], url=r["url"], title=r["title"],
        published=parse_time(r["published"]),
        matched_at=datetime.fromisoformat(r["created_at"]),
        counted_at=volume_hour(parse_time(r["counted_at"]), None, floor=False),
        evidence=r["evidence"], statement=r["statement"], article_key=r["article_key"])
