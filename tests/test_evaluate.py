"""`narrative-bot eval`: the figures on the shipped alert set, and the metric arithmetic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot import cli, evaluate
from bot.match import Centering
from bot.runtime import Runtime
from tests.conftest import WriteConfig
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


def test_shipped_alert_set_meets_the_bar(write_config: WriteConfig, shipped_narratives: list,
                                         embedder) -> None:
    runtime = Runtime.open(write_config(), shipped_narratives, embedder=embedder)
    figures, results = evaluate.eval_alerts(runtime, REPO / "eval" / "alerts")
    by_doc = {r.doc: r for r in results}
    assert by_doc["seed-004"].alerted == {"kz-return-to-china"}
    assert by_doc["seed-004"].evidence_ok is True
    assert figures["precision"] >= 0.85 and figures["recall"] >= 0.9


def test_claim_retrieval_figures(tmp_path: Path) -> None:
    write_tsv(tmp_path / "claims.tsv", "claim_id\ttext\ttitle\tis_target",
              ["1\talpha claim\tt\t1", "2\tbeta claim\tt\t1", "3\tgamma claim\tt\t0"])
    write_tsv(tmp_path / "queries.tsv", "query_id\ttext\tsplit",
              ["10\talpha tweet\tdev", "11\tbeta tweet\tdev", "12\tdelta tweet\tdev",
               "13\tgamma tweet\ttrain"])
    write_tsv(tmp_path / "qrels.tsv", "query_id\tclaim_id", ["10\t1", "11\t3", "13\t3"])
    figures = evaluate.eval_claims(one_hot, Centering(), 0.5, tmp_path)
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
