"""Hourly match volumes (one row per narrative, UTC hour, source and language) and each
narrative's spike state.

Volumes are counted in the transaction that records the matches (bot/storage/articles.py) and
are never pruned with articles, so trends outlive the articles behind them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from bot.storage.database import Database, in_filter, iso, parse_time, run, utcnow
from bot.storage.posts import PostDraft, queue_drafts

UNDETERMINED = "und"  # ISO 639-2 "undetermined": the language of an article nobody could tell

# When a match counts: its article's publication time, but never later than when the article
# was seen (feeds with clocks or time zones in the future) and the seen time when undated.
COUNTED_AT = ("CASE WHEN a.published IS NOT NULL AND a.published < a.seen_at "
              "THEN a.published ELSE a.seen_at END")


@dataclass(frozen=True)
class Volume:
    """Matches of one narrative in one UTC hour, from one source, in one language."""

    narrative_id: str
    hour: datetime
    source: str
    language: str
    matches: int


@dataclass(frozen=True)
class SpikeState:
    """Where a narrative stands: in a spike (alerted, not calmed down yet) or not."""

    narrative_id: str
    active: bool
    started_at: datetime | None
    calmed_at: datetime | None
    z: float | None
    window_count: int | None


def volume_hour(published: datetime | None, seen: datetime | None, *,
                floor: bool = True) -> datetime:
    """The UTC hour a match is counted in: publication time, capped at when it was seen.

    Counting by publication rather than by discovery keeps a new feed's back catalogue (or a
    backlog after downtime) in the days it was published instead of one false spike now.
    """
    moment = published if published is not None else seen
    if moment is None:
        raise ValueError("either published or seen is needed")
    if seen is not None and moment > seen:
        moment = seen
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0) if floor else moment


def count_volume(db: Connection, narrative_id: str, hour: str | None, source: str,
                 language: str, matches: int = 1) -> None:
    run(db, "INSERT INTO volumes VALUES (:narrative_id, :hour, :source, :language, :matches) "
        "ON CONFLICT(narrative_id, hour, source, language) "
        "DO UPDATE SET matches = volumes.matches + excluded.matches",
        {"narrative_id": narrative_id, "hour": hour, "source": source, "language": language,
         "matches": matches})


def rebuild_volumes(db: Connection) -> None:
    """Volumes from the stored matches (the migration from schema 1)."""
    run(db, "DELETE FROM volumes")
    counts: dict[tuple[str, str | None, str, str], int] = {}
    rows = run(db, f"SELECT DISTINCT m.narrative_id, m.article_key, a.source, a.language, "
                   f"{COUNTED_AT} AS counted_at FROM matches m JOIN articles a "
                   f"ON a.key = m.article_key").mappings()
    for r in rows:
        hour = iso(volume_hour(parse_time(r["counted_at"]), None))
        key = (r["narrative_id"], hour, r["source"], r["language"] or UNDETERMINED)
        counts[key] = counts.get(key, 0) + 1
    for (narrative_id, hour, source, language), n in counts.items():
        count_volume(db, narrative_id, hour, source, language, n)


class VolumesStore(Database):
    """Volumes and spike states."""

    def volumes(self, since: datetime, until: datetime | None = None,
                narrative_ids: Collection[str] | None = None) -> list[Volume]:
        """Hourly volume rows with since <= hour < until (UTC hour starts), oldest first."""
        statement = "SELECT * FROM volumes WHERE hour >= :since"
        params: dict[str, Any] = {"since": iso(volume_hour(since, since))}
        if until is not None:
            statement += " AND hour < :until"
            params["until"] = iso(until)
        statement += in_filter("narrative_id", narrative_ids, params)
        with self._read() as db:
            rows = run(db, statement + " ORDER BY hour, narrative_id, source, language",
                       params).mappings().fetchall()
        return [Volume(r["narrative_id"], datetime.fromisoformat(r["hour"]), r["source"],
                       r["language"], int(r["matches"])) for r in rows]

    def spike_states(self) -> dict[str, SpikeState]:
        with self._read() as db:
            rows = run(db, "SELECT * FROM spikes").mappings().fetchall()
        return {r["narrative_id"]: SpikeState(
            r["narrative_id"], bool(r["active"]), parse_time(r["started_at"]),
            parse_time(r["calmed_at"]), r["z"], r["window_count"]) for r in rows}

    def open_spike(self, narrative_id: str, z: float, window_count: int, details: str,
                   drafts: Sequence[PostDraft]) -> list[int]:
        """Flag the narrative as spiking and queue its alert, atomically.

        Returns the queued post ids; [] when the narrative was already flagged (a restart, or a
        second checker, never alerts the same spike twice).
        """
        at = iso(utcnow())
        with self._tx() as db:
            active = run(db, "SELECT active FROM spikes WHERE narrative_id = :narrative_id",
                         {"narrative_id": narrative_id}).scalar()
            if active:
                return []
            run(db, "INSERT INTO spikes (narrative_id, active, started_at, calmed_at, "
                "checked_at, z, window_count, details) VALUES (:narrative_id, 1, :at, NULL, "
                ":at, :z, :window_count, :details) ON CONFLICT (narrative_id) DO UPDATE SET "
                "active = 1, started_at = excluded.started_at, calmed_at = NULL, "
                "checked_at = excluded.checked_at, z = excluded.z, "
                "window_count = excluded.window_count, details = excluded.details",
                {"narrative_id": narrative_id, "at": at, "z": z, "window_count": window_count,
                 "details": details})
            return queue_drafts(db, drafts, at)

    def note_spike_check(self, narrative_id: str, z: float, window_count: int, *,
                         calm: bool) -> bool:
        """Record the latest z of a spiking narrative; `calm` ends the spike. True if it ended."""
        params = {"at": iso(utcnow()), "z": z, "window_count": window_count,
                  "narrative_id": narrative_id}
        with self._tx() as db:
            if calm:
                return run(db, "UPDATE spikes SET active = 0, calmed_at = :at, checked_at = :at, "
                           "z = :z, window_count = :window_count "
                           "WHERE narrative_id = :narrative_id AND active = 1",
                           params).rowcount > 0
            run(db, "UPDATE spikes SET checked_at = :at, z = :z, window_count = :window_count "
                "WHERE narrative_id = :narrative_id", params)
            return False
