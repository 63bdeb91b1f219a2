"""`narrative-bot eval`: matching quality on a labelled dataset, one function per dataset kind.

- alerts: a folder `docs/*.txt` (first line = title) and `labels.tsv` (doc, narratives
  comma-separated or `none`, optional evidence substring): the alert rule end to end.
- claims: `claims.tsv`, `queries.tsv` (with a split column) and `qrels.tsv`: claims act as
  narratives, queries as articles (CheckThat! 2020 layout).
- parallel: one `<lang>.tsv` per language with aligned ids: the English sentence is the
  narrative, its translation the article.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.match import Centering
from bot.runtime import Runtime

Encode = Callable[[Sequence[str]], np.ndarray]


def dataset_kind(folder: Path) -> str:
    if (folder / "labels.tsv").exists() and (folder / "docs").is_dir():
        return "alerts"
    if (folder / "claims.tsv").exists() and (folder / "qrels.tsv").exists():
        return "claims"
    if (folder / "eng_Latn.tsv").exists():
        return "parallel"
    raise ValueError(f"{folder}: not an eval dataset (expected labels.tsv + docs/, "
                     "claims.tsv + queries.tsv + qrels.tsv, or eng_Latn.tsv + <lang>.tsv)")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


# -- alerts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DocResult:
    doc: str
    expected: frozenset[str]
    alerted: frozenset[str]
    evidence_ok: bool | None


def eval_alerts(runtime: Runtime, folder: Path) -> tuple[dict[str, float], list[DocResult]]:
    """Precision and recall of (document, narrative) alerts, and whether evidence is right."""
    results = []
    for row in _rows(folder / "labels.tsv"):
        title, _, body = (folder / "docs" / f"{row['doc']}.txt").read_text("utf-8").partition("\n")
        if row["doc"].startswith("seed-"):
            title, body = "", f"{title}\n{body}"  # seed articles have no title line
        _, scores = runtime.score(title, body)
        alerted = {s.narrative_id: s for s in scores if s.supported}
        expected = frozenset(row["narratives"].split(",")) - {"none", ""}
        wanted = (row.get("evidence") or "").strip()
        evidence_ok = None
        if wanted and expected & alerted.keys():
            evidence_ok = all(wanted in alerted[n].passage.text for n in expected & alerted.keys())
        results.append(DocResult(row["doc"], expected, frozenset(alerted), evidence_ok))
    tp = sum(len(r.expected & r.alerted) for r in results)
    fp = sum(len(r.alerted - r.expected) for r in results)
    fn = sum(len(r.expected - r.alerted) for r in results)
    checked = [r.evidence_ok for r in results if r.evidence_ok is not None]
    return {
        "documents": len(results), "true_positives": tp, "false_positives": fp,
        "false_negatives": fn, "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "evidence_correct": sum(checked) / max(len(checked), 1),
    }, results


# -- claim retrieval ----------------------------------------------------------------------

def eval_claims(encode: Encode, centering: Centering, threshold: float, folder: Path,
                split: str = "dev") -> dict[str, float]:
    """MAP@5 and success@1 of ranking claims for each query; P/R of the alert rule."""
    claims = _rows(folder / "claims.tsv")
    queries = [q for q in _rows(folder / "queries.tsv") if q["split"] == split]
    relevant: dict[str, set[str]] = {}
    for pair in _rows(folder / "qrels.tsv"):
        relevant.setdefault(pair["query_id"], set()).add(pair["claim_id"])
    claim_vectors = centering.apply(encode([c["text"] for c in claims]))
    query_vectors = centering.apply(encode([q["text"] for q in queries]))
    sims = query_vectors @ claim_vectors.T
    ids = np.array([c["claim_id"] for c in claims])
    ap5, hit1, alerts, correct_alerts = [], [], 0, 0
    for row, query in zip(sims, queries, strict=True):
        gold = relevant.get(query["query_id"], set())
        ranked = ids[np.argsort(-row)[:5]]
        ap5.append(_average_precision(list(ranked), gold))
        hit1.append(float(ranked[0] in gold))
        if row.max() >= threshold:
            alerts += 1
            correct_alerts += ranked[0] in gold
    with_gold = sum(1 for q in queries if relevant.get(q["query_id"]))
    return {"queries": len(queries), "claims": len(claims), "map@5": float(np.mean(ap5)),
            "success@1": float(np.mean(hit1)), "alert_precision": correct_alerts / max(alerts, 1),
            "alert_recall": correct_alerts / max(with_gold, 1), "threshold": threshold}


def _average_precision(ranked: list[str], gold: set[str]) -> float:
    if not gold:
        return 0.0
    hits, total = 0, 0.0
    for rank, claim in enumerate(ranked, start=1):
        if claim in gold:
            hits += 1
            total += hits / rank
    return total / min(len(gold), len(ranked))


# -- cross-lingual ------------------------------------------------------------------------

def eval_parallel(encode: Encode, centering: Centering, folder: Path,
                  limit: int | None = None) -> dict[str, float]:
    """Per language: success@1 of finding the English original, and the mean score gap."""
    english = _rows(folder / "eng_Latn.tsv")[:limit]
    ids = [r["id"] for r in english]
    statements = centering.apply(encode([r["text"] for r in english]))
    figures: dict[str, float] = {"sentences": len(ids)}
    for file in sorted(folder.glob("*.tsv")):
        lang = file.stem
        if lang in ("eng_Latn", "meta"):
            continue
        by_id = {r["id"]: r["text"] for r in _rows(file)}
        articles = centering.apply(encode([by_id[i] for i in ids]))
        sims = articles @ statements.T
        true = np.diag(sims)
        wrong = np.where(np.eye(len(ids), dtype=bool), -np.inf, sims).max(axis=1)
        figures[f"{lang}.success@1"] = float((sims.argmax(axis=1) == np.arange(len(ids))).mean())
        figures[f"{lang}.gap"] = float((true - wrong).mean())
    return figures
