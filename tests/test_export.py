"""export_matches: CSV and JSON round trips, formula-injection guard, hostile text."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from bot.models import Article, Match, Passage
from bot.storage.store import Store
from bot.trends.export import FIELDS, export_matches

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOSTILE_TITLE = '=HYPERLINK("http://evil.example","click") "quoted", comma\nnew line'
HOSTILE_EVIDENCE = "+SUM(A1:A9) <script>alert(1)</script> 哈萨克斯坦 Қазақстан \x00"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.sqlite3")
    with time_machine.travel(NOW - timedelta(days=40), tick=False):
        s.record_article(Article("old", "Old", "https://e.org/old", "Old", "x"), 1,
                         [Match("kz", "KZ", 0.7, 0.6, Passage(0, "old"), "st")], [])
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        s.record_article(
            Article("a1", "@Sohu", "https://e.org/a?x=1&y=2", HOSTILE_TITLE, "body",
                    published=NOW - timedelta(days=3), language="zh"), 2,
            [Match("kz", "Kazakhstan wants to return to China", 0.71234, 0.63,
                   Passage(1, HOSTILE_EVIDENCE), "Kazakhstan wants to return to China."),
             Match("kg", "-Kyrgyz", 0.65, 0.6, Passage(0, "-1 evidence"), "st")], [])
    return s


def test_csv_round_trip_with_formula_guard(store: Store) -> None:
    out = io.StringIO(newline="")
    assert export_matches(store, NOW - timedelta(days=30), "csv", out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(rows[0]) == FIELDS and len(rows) == 2
    kz = next(r for r in rows if r["narrative_id"] == "kz")
    assert kz["title"] == "'" + HOSTILE_TITLE  # a spreadsheet shows it, never evaluates it
    assert kz["source"] == "'@Sohu" and kz["evidence"] == "'" + HOSTILE_EVIDENCE
    assert kz["score"] == "0.7123" and kz["threshold"] == "0.63" and kz["language"] == "zh"
    assert kz["url"] == "https://e.org/a?x=1&y=2"
    assert kz["published"] == "2026-11-20T12:00:00+00:00"
    assert kz["matched_at"] == "2026-11-21T12:00:00+00:00"
    kg = next(r for r in rows if r["narrative_id"] == "kg")
    assert kg["narrative_title"] == "'-Kyrgyz" and kg["evidence"] == "'-1 evidence"
    for row in rows:  # no cell a spreadsheet would run
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_json_round_trip_keeps_text_exact(store: Store) -> None:
    out = io.StringIO()
    assert export_matches(store, NOW - timedelta(days=30), "json", out) == 2
    data = json.loads(out.getvalue())
    assert [d["narrative_id"] for d in data] == ["kz", "kg"]
    assert set(data[0]) == set(FIELDS)
    assert data[0]["title"] == HOSTILE_TITLE and data[0]["evidence"] == HOSTILE_EVIDENCE
    assert data[0]["score"] == 0.7123 and data[0]["article_key"] == "a1"
    assert "哈萨克斯坦" in out.getvalue()  # UTF-8, not \\u escapes


def test_since_filters_and_empty_exports(store: Store) -> None:
    out = io.StringIO()
    assert export_matches(store, NOW - timedelta(days=60), "json", out) == 3
    out = io.StringIO()
    assert export_matches(store, NOW, "json", out) == 0 and json.loads(out.getvalue()) == []
    out = io.StringIO()
    assert export_matches(store, NOW, "csv", out) == 0
    assert out.getvalue().strip() == ",".join(FIELDS)
    with pytest.raises(ValueError, match="unknown export format"):
        export_matches(store, NOW, "xml", io.StringIO())  # type: ignore[arg-type]
