"""TF-IDF similarity beside the embedding score: words in every script, rare words weigh more."""

from __future__ import annotations

import pytest

from bot.matching.lexical import LexicalIndex, terms


def test_terms_fold_case_and_split_chinese_into_bigrams() -> None:
    assert terms("Kazakhstan, KAZAKHSTAN’s vassal of the Qing!") == (
        "kazakhstan", "kazakhstan's", "vassal", "the", "qing")
    assert terms("哈萨克斯坦回归") == ("哈萨", "萨克", "克斯", "斯坦", "坦回", "回归")
    assert terms("Ёлка 2024 ок") == ("елка",)  # digits and two-letter words carry no claim


def test_rare_shared_words_outweigh_common_ones() -> None:
    index = LexicalIndex(["Kazakhstan was a vassal of the Qing dynasty",
                          "Kazakhstan signed a trade deal with China"],
                         reference=["Kazakhstan said on Monday", "Kazakhstan and China trade"])
    [vassal, trade] = index.similarity(["historians call it a vassal of the Qing"])[0]
    assert vassal > 0.5 > trade == pytest.approx(0.0)
    [same] = index.similarity(["Kazakhstan was a vassal of the Qing dynasty"])[0][:1]
    assert same == pytest.approx(1.0, abs=1e-5)


def test_other_languages_and_empty_input_score_zero() -> None:
    index = LexicalIndex(["Kazakhstan wants to return to China"])
    assert index.similarity(["Казахстан хочет вернуться в Китай"]).max() == 0.0
    assert index.similarity([]).shape == (0, 1)
    assert LexicalIndex([]).similarity(["x"]).shape == (1, 0)
