"""The benchmark's load is what it claims: multilingual feeds that parse, with syndicated copies,
boilerplate and narrative seeds, the same every run (the benchmark itself: bench/run.py)."""

from __future__ import annotations

from collections import Counter

from bench import corpus
from bench.server import rss
from bot.parse import parse_feed
from tests.paths import SEEDS, SHARED


def test_feeds_are_multilingual_realistic_and_reproducible() -> None:
    paragraphs = corpus.load_paragraphs(SHARED / "eval" / "parallel")
    seeds = corpus.load_seeds(SEEDS)
    feeds = corpus.make_feeds(paragraphs, seeds, feeds=40, items=20)

    assert len(feeds) == 40 and {len(items) for items in feeds} == {20}
    assert feeds == corpus.make_feeds(paragraphs, seeds, feeds=40, items=20)
    items = [it for f in feeds for it in f]
    kinds = Counter(it.kind for it in items)
    assert kinds["syndicated"] > 40 and kinds["news"] > 600 and kinds["seed"] >= 1
    footers = set(corpus.BOILERPLATE.values())
    assert sum(it.paragraphs[-1] in footers for it in items) > 150
    news = [it for it in items if it.kind == "news"]
    assert all(1 <= len(it.paragraphs) <= 9 for it in news)
    assert sum(len(it.paragraphs) >= 3 for it in news) > len(news) / 2
    scripts = {"cjk" if "\u4e00" <= it.title[0] <= "\u9fff" else
               "cyrillic" if "\u0400" <= it.title[0] <= "\u04ff" else "latin" for it in news}
    assert scripts == {"cjk", "cyrillic", "latin"}
    english = [w for p in paragraphs.by_lang["eng_Latn"] for para in p[:-1]
               for w in [sum(len(s.split()) for s in para)]]
    assert 65 <= sum(english) / len(english) <= 90  # ~65-word paragraphs


def test_a_generated_feed_parses_into_its_items() -> None:
    paragraphs = corpus.load_paragraphs(SHARED / "eval" / "parallel")
    items = corpus.make_feeds(paragraphs, corpus.load_seeds(SEEDS), feeds=1, items=12)[0]
    parsed = parse_feed(rss("feed0", items), {"content-type": "application/rss+xml"},
                        source="feed0", feed_url="http://127.0.0.1/f/0.xml")
    assert parsed.error is None and len(parsed.articles) == 12
    assert [a.title for a in parsed.articles] == [it.title for it in items]
    assert parsed.articles[0].text.split("\n")[0] == items[0].paragraphs[0]
