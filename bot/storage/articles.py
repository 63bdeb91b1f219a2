"""Seen articles (text kept, capped, for backtests) and their matches with evidence.

An article, its matches, their hourly volumes, its story and its pending alerts are written in
one transaction, so a crash either loses nothing (the article is processed again) or keeps
everything (it is never processed again).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.models import Article, Match
from bot.storage.outbox import queue_alerts
from bot.storage.sqlite import Database, id_filter, iso, parse_time, utcnow
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
        for article in articles:
            link = article.url or "\0"  # no link: only key and text decide
            row = self._db.execute(
                "SELECT 1 FROM articles WHERE key = ? OR (source = ? AND content_hash = ?) "
                "OR (source = ? AND url = ?)",
                (article.key, article.source, article.content_hash, article.source,
                 link)).fetchone()
            seen = {article.key, article.content_hash} | ({link} if article.url else set())
            if row is None and not seen & batch:
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
            cur = db.execute(
                "INSERT OR IGNORE INTO articles (key, source, url, title, published, seen_at, "
                "passages, content_hash, text, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (article.key, article.source, article.url, article.title,
                 iso(article.published), at, passages, article.content_hash,
                 article.text[:ARTICLE_TEXT_CHARS], article.language))
            if cur.rowcount == 0:
                return []  # another poll got there first
            hour = iso(volume_hour(article.published, seen))
            for narrative_id in dict.fromkeys(m.narrative_id for m in matches):
                count_volume(db, narrative_id, hour, article.source,
                             article.language or UNDETERMINED)
            for match in matches:
                db.execute(
                    "INSERT INTO matches (article_key, narrative_id, narrative_title, score, "
                    "threshold, passage_index, evidence, statement, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.key, match.narrative_id, match.narrative_title, match.score,
                     match.threshold, match.passage.index, match.passage.text, match.statement,
                     at))
            matched = [m.narrative_id for m in matches]
            pairs = (routes.items() if isinstance(routes, Mapping)
                     else [(chat_id, matched) for chat_id in routes])
            ids = queue_alerts(db, article.key, pairs, matched, origin_key, at)
            if story is not None:
                remember_story(db, article.key, story, origin_key)
        return ids

    def articles_since(self, since: datetime) -> list[StoredArticle]:
        """Stored articles (with their text, for backtests) seen since `since`."""
        rows = self._db.execute("SELECT * FROM articles WHERE seen_at >= ? ORDER BY seen_at",
                                (iso(since),)).fetchall()
        return [StoredArticle(Article(key=r["key"], source=r["source"], url=r["url"],
                                      title=r["title"], text=r["text"] or "",
                                      published=parse_time(r["published"]),
                                      language=r["language"]),
                              datetime.fromisoformat(r["seen_at"])) for r in rows]

    def match_counts(self, since: datetime) -> dict[str, int]:
        """narrative id → matches found since `since`."""
        rows = self._db.execute("SELECT narrative_id, COUNT(*) FROM matches WHERE created_at >= ? "
                                "GROUP BY narrative_id", (iso(since),))
        return {r[0]: r[1] for r in rows}

    def source_counts(self) -> dict[str, SourceCount]:
        """source → articles seen and matched."""
        rows = self._db.execute(
            "SELECT a.source, COUNT(DISTINCT a.key), COUNT(DISTINCT m.article_key) "
            "FROM articles a "
            "LEFT JOIN matches m ON m.article_key = a.key GROUP BY a.source")
        return {r[0]: SourceCount(r[1], r[2]) for r in rows}

    def counts(self) -> dict[str, int]:
        """Totals for status displays: articles, matches and alerts by status."""
        one = self._db.execute
        result = {
            "articles": one("SELECT COUNT(*) FROM articles").fetchone()[0],
            "matches": one("SELECT COUNT(*) FROM matches").fetchone()[0],
        }
        result["alerts_interrupted"] = one(
            "SELECT COALESCE(SUM(interrupted), 0) FROM outbox").fetchone()[0]
        for status in ("pending", "sending", "sent", "failed"):
            result[f"alerts_{status}"] = one(
                "SELECT COUNT(*) FROM outbox WHERE status = ?", (status,)).fetchone()[0]
        return result

    def narrative_titles(self) -> dict[str, str]:
        """narrative id → the title it last matched under (narratives no longer loaded too)."""
        # SQLite takes the bare column from the row that has the MAX
        rows = self._db.execute("SELECT narrative_id, narrative_title, MAX(id) FROM matches "
                                "GROUP BY narrative_id")
        return {r[0]: r[1] for r in rows}

    def match_records(self, since: datetime, until: datetime | None = None, *,
                      narrative_ids: Collection[str] | None = None,
                      by: str = "matched") -> list[MatchRecord]:
        """Stored matches with their articles, oldest first. `by`: "matched" filters on when
        the match was recorded, "counted" on the moment its volume counts in."""
        column = {"matched": "m.created_at", "counted": COUNTED_AT}[by]
        sql = (f"SELECT m.*, a.source, a.language, a.url, a.title, a.published, "
               f"{COUNTED_AT} AS counted_at FROM matches m JOIN articles a "
               f"ON a.key = m.article_key WHERE {column} >= ?")
        args: list[object] = [iso(since)]
        if until is not None:
            sql += f" AND {column} < ?"
            args.append(iso(until))
        sql += id_filter("m.narrative_id", narrative_ids, args)
        rows = self._db.execute(sql + f" ORDER BY {column}, m.id", args)
        return [MatchRecord(
            narrative_id=r["narrative_id"], narrative_title=r["narrative_title"],
            score=r["score"], threshold=r["threshold"], source=r["source"],
            language=r["language"], url=r["url"], title=r["title"],
            published=parse_time(r["published"]),
            matched_at=datetime.fromisoformat(r["created_at"]),
            counted_at=volume_hour(parse_time(r["counted_at"]), None, floor=False),
            evidence=r["evidence"], statement=r["statement"], article_key=r["article_key"])
            for r in rows]

    def voted_articles(self) -> list[VotedArticle]:
        """Every (article, narrative) that got feedback, with its votes (for calibration)."""
        rows = self._db.execute(
            "SELECT f.article_key, f.narrative_id, a.title, a.text, "
            "SUM(f.vote = 'relevant') AS up, SUM(f.vote = 'wrong') AS down FROM feedback f "
            "JOIN articles a ON a.key = f.article_key "
            "GROUP BY f.article_key, f.narrative_id").fetchall()
        return [VotedArticle(r["article_key"], r["narrative_id"], r["title"], r["text"],
                             r["up"], r["down"]) for r in rows]
