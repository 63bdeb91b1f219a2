"""Matches with their evidence, for newsroom audits: CSV or JSON.

One record per match (an article that matches two narratives gives two), oldest first, with
these fields: narrative_id, narrative_title, score, threshold, source, language, url, title,
published, matched_at, evidence, statement, article_key. Times are UTC ISO-8601.

- CSV (RFC 4180 via the csv module, header row, UTF-8): safe to open in Excel or LibreOffice.
  A cell that starts with = + - @ (or a tab or carriage return) is prefixed with a single
  quote, so feed text can never run as a formula ("CSV injection").
- JSON: one array of objects (numbers stay numbers, missing values are null), UTF-8 without
  escaping non-ASCII. An array rather than JSON Lines: audits are bounded exports that tools
  (jq, pandas.read_json, spreadsheets) open whole.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Literal, TextIO

from bot.storage.store import MatchRecord, Store, iso

FIELDS = ("narrative_id", "narrative_title", "score", "threshold", "source", "language", "url",
          "title", "published", "matched_at", "evidence", "statement", "article_key")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def record_dict(record: MatchRecord) -> dict[str, object]:
    return {
        "narrative_id": record.narrative_id, "narrative_title": record.narrative_title,
        "score": round(record.score, 4), "threshold": round(record.threshold, 4),
        "source": record.source, "language": record.language, "url": record.url,
        "title": record.title, "published": iso(record.published),
        "matched_at": iso(record.matched_at), "evidence": record.evidence,
        "statement": record.statement, "article_key": record.article_key,
    }


def csv_safe(value: object) -> str:
    """A cell as text that a spreadsheet shows and never evaluates."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def export_matches(store: Store, since: datetime, fmt: Literal["csv", "json"],
                   out: TextIO) -> int:
    """Write every match recorded since `since` to `out` as CSV or JSON; return how many.

    Open `out` with newline="" for CSV (the csv module writes its own CRLF line ends).
    """
    records = store.match_records(since)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for record in records:
            row = record_dict(record)
            writer.writerow([csv_safe(row[name]) if isinstance(row[name], str) else
                             ("" if row[name] is None else row[name]) for name in FIELDS])
    elif fmt == "json":
        json.dump([record_dict(r) for r in records], out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        raise ValueError(f"unknown export format {fmt!r} (csv or json)")
    return len(records)
