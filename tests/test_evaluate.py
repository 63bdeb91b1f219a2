"""`narrative-bot eval`: the figures on the shipped alert set, and the metric arithmetic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot import cli
from bot.matching.index import Centering
from bot.tools import evaluate
from tests.conftest import OpenApp, WriteConfig
from tests.paths import REPO


def one_hot(texts: Sequence[str]) -> np.ndarray:
    """A stand-in encoder: each text's first word picks its direction."""
    vocab = ["alpha", "beta", "gamma", "delta"]
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row, vocab.index(text.split()[0].lower())] = 1.0
    return out


def write_tsv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def test_shipped_alert_set_meets_the_bar(write_config: WriteConfig, open_app: OpenApp) -> None:
    app = open_app(write_config(), private_state=True)
    figures, results = evaluate.eval_alerts(app.matcher, REPO / "eval" / "alerts")
    by_doc = {r.doc: r for r in results}
    assert by_doc["seed-004"].alerted == {"kz-return-to-china"}
    assert by_doc["seed-004"].evidence_ok is True
    assert figures["precision"] >= 0.9 and figures["recall"] >= 0.9


def test_claim_retrieval_figures(tmp_path: Path) -> None:
    write_tsv(tmp_path / "claims.tsv", "claim_id\ttext\ttitle\tis_target",
              ["1\talpha claim\t\t1", "2\tbeta claim\tbeta title\t1", "3\tgamma claim\t\t0"])
    write_tsv(tmp_path / "queries.tsv", "query_id\ttext\tsplit",
              ["10\talpha tweet\tdev", "11\tbeta tweet\tdev", "12\tdelta tweet\tdev",
               "13\tgamma tweet\ttrain"])
    write_tsv(tmp_path / "qrels.tsv", "query_id\tclaim_id", ["10\t1", "11\t3", "13\t3"])
    options = {"default_threshold": 0.5, "centering": Centering(), "lexical_weight": 0.0}
    figures = evaluate.eval_claims(one_hot, options, tmp_path)
    assert figures["queries"] == 3
    assert figures["success@1"] == pytest.approx(1 / 3)  # only query 10 ranks its claim first
    # query 11's claim 3 scores 0 and ties with claim 1: rank 2 or 3 of 5 → AP 1/2 or 1/3
    assert 1 / 3 + 1 / 9 <= figures["map@5"] <= 1 / 3 + 1 / 6
    assert figures["alert_precision"] == pytest.approx(1 / 2)  # alerts on 10 (right), 11 (wrong)
    assert figures["alert_recall"] == pytest.approx(1 / 2)


def test_cross_lingual_figures(tmp_path: Path) -> None:
    write_tsv(tmp_path / "eng_Latn.tsv", "id\ttext", ["a\talpha", "b\tbeta", "c\tgamma"])
    write_tsv(tmp_path / "rus_Cyrl.tsv", "id\ttext", ["a\talpha", "b\tbeta", "c\tdelta"])
    figures = evaluate.eval_parallel(one_hot, Centering(), tmp_path)
    assert figures["rus_Cyrl.success@1"] == pytest.approx(2 / 3)
    assert figures["rus_Cyrl.gap"] == pytest.approx(2 / 3)


def test_fused_rank_uses_fact_check_titles_and_shared_words(tmp_path: Path) -> None:
    write_tsv(tmp_path / "claims.tsv", "claim_id\ttext\ttitle\tis_target",
              ["1\talpha vaccines magnets\t\t1", "2\talpha stolen ballots\tgamma\t1"])
    write_tsv(tmp_path / "queries.tsv", "query_id\ttext\tsplit",
              ["10\talpha the ballots were stolen\tdev", "11\tgamma title words\tdev"])
    write_tsv(tmp_path / "qrels.tsv", "query_id\tclaim_id", ["10\t2", "11\t2"])
    options = {"default_threshold": 0.5, "centering": Centering(), "lexical_weight": 0.5}
    figures = evaluate.eval_claims(one_hot, options, tmp_path)
    # 10 ties on embeddings and is decided by shared words; 11 only matches claim 2's title
    assert figures["success@1"] == 1.0 and figures["map@5"] == 1.0


def test_ratio_margin_discounts_a_hub_sentence() -> None:
    # English sentence 0 is close to every translation: plain cosine picks it for all three
    sims = np.array([[0.9, 0.2, 0.2], [0.8, 0.75, 0.2], [0.8, 0.2, 0.75]], dtype=np.float32)
    assert list(sims.argmax(axis=1)) == [0, 0, 0]
    assert list(evaluate.ratio_margin(sims, k=2).argmax(axis=1)) == [0, 1, 2]


def test_eval_command_ends_with_json(tmp_path: Path, write_config: WriteConfig,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_config()
    write_tsv(tmp_path / "eng_Latn.tsv", "id\ttext",
              ["a\tThe weather is sunny today.", "b\tThe bank raised interest rates."])
    write_tsv(tmp_path / "zho_Hans.tsv", "id\ttext", ["a\t今天天气晴朗。", "b\t银行提高了利率。"])
    assert cli.main(["eval", str(tmp_path), "--json", "--config",
                     str(tmp_path / "config.toml")]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["kind"] == "parallel" and figures["zho_Hans.success@1"] == 1.0


def test_unknown_layout_is_refused(tmp_path: Path, write_config: WriteConfig) -> None:
    write_config()
    (tmp_path / "data").mkdir()
    assert cli.main(["eval", str(tmp_path / "data"), "--config",
                     str(tmp_path / "config.toml")]) == 2
