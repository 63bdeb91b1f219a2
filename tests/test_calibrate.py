"""`narrative-bot calibrate`: thresholds proposed from labelled documents and from feedback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot import cli
from bot.config import ConfigError, load_narrative
from bot.tools.calibrate import Example, propose, write_threshold
from tests.conftest import WriteConfig
from tests.paths import REPO


def ex(score: float | None, positive: bool) -> Example:
    return Example("n", score, positive, "doc")


def test_the_lowest_threshold_that_keeps_the_target_precision_wins() -> None:
    examples = [ex(0.9, True), ex(0.8, True), ex(0.75, False), ex(0.7, True), ex(0.5, False),
                ex(None, True), ex(None, False)]
    # at 0.7: 3 alerts of 4 are right (0.75) → below 0.9; at 0.8: 2 of 2 → pick 0.8,
    # halfway down to the next lower example (0.75)
    proposal = propose("n", examples, 0.6, target_precision=0.9, min_positives=3)
    assert proposal.proposed == pytest.approx(0.775)
    assert proposal.proposed_pr == (1.0, 0.5)
    assert proposal.current_pr == (0.75, 0.75)
    looser = propose("n", examples, 0.6, target_precision=0.7, min_positives=3)
    assert looser.proposed == pytest.approx(0.6)  # keeps 0.7: halfway to 0.5
    assert looser.proposed_pr == (0.75, 0.75)


def test_too_little_data_or_an_unreachable_target_proposes_nothing() -> None:
    few = propose("n", [ex(0.9, True), ex(0.2, False)], 0.6, target_precision=0.9,
                  min_positives=3)
    assert few.proposed is None and "only 1 positive" in few.note
    hopeless = propose("n", [ex(0.5, True), ex(0.9, False)] * 3, 0.6, target_precision=0.9,
                       min_positives=3)
    assert hopeless.proposed is None and "no threshold" in hopeless.note


def test_writing_a_threshold_keeps_the_file_and_validates_it(tmp_path: Path) -> None:
    file = tmp_path / "n.toml"
    file.write_text('# note\nid = "n"\ntitle = "N"\nstatements = ["a b c"]\n', encoding="utf-8")
    write_threshold(file, 0.71)
    assert load_narrative(file).threshold == 0.71
    write_threshold(file, 0.65)
    text = file.read_text(encoding="utf-8")
    assert text.count("threshold") == 1 and text.startswith("# note\n")
    with pytest.raises(ConfigError):
        write_threshold(file, 7.0)  # out of range: refused, file restored
    assert load_narrative(file).threshold == 0.65


def test_calibrate_command_on_the_seed_documents(tmp_path: Path, write_config: WriteConfig,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_config()
    narratives = tmp_path / "narratives"  # write_config copied the shipped ones there
    dataset = tmp_path / "seeds"
    (dataset / "docs").mkdir(parents=True)
    rows = ["doc\tnarratives\tevidence\tsource"]  # seed rows refer to the shared seeds
    labels = {line.split("\t")[0]: line for line in
              (REPO / "eval/alerts/labels.tsv").read_text("utf-8").splitlines()[1:]}
    for doc in [d for d in labels if d.startswith(("seed-", "pos-kz", "neg-coop"))]:
        if not doc.startswith("seed-"):
            shutil.copy(REPO / "eval/alerts/docs" / f"{doc}.txt", dataset / "docs")
        rows.append(labels[doc])
    (dataset / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = str(tmp_path / "config.toml")
    assert cli.main(["calibrate", str(dataset), "--json", "--write", "--config", config]) == 0
    out = capsys.readouterr().out
    proposals = {p["narrative_id"]: p for p in json.loads(out.strip().splitlines()[-1])}
    kz = proposals["kz-return-to-china"]
    assert kz["positives"] >= 5 and kz["proposed"] is not None
    assert kz["proposed_pr"][0] >= 0.9
    written = load_narrative(next(narratives.glob("kazakhstan*.toml")))
    assert written.threshold == kz["proposed"]
    assert "wrote threshold" in out
    assert cli.main(["calibrate", "--config", config]) == 2  # nothing to calibrate on
