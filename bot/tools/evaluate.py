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
from typing import Any

import numpy as np

from bot.app.runtime import Runtime
from bot.config import Narrative
from bot.matching.index import Centering, NarrativeIndex

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


@dataclass(frozen=True)
class LabelledDocument:
    name: str
    title: str
    body: str
    narratives: frozenset[str]
    evidence: str  # a substring of the passage that should be the evidence ("" = any)


def labelled_documents(folder: Path) -> list[LabelledDocument]:
    """The documents of an alerts dataset with their labels."""
    documents = []
    for row in _rows(folder / "labels.tsv"):
        text = (folder / "docs" / f"{row['doc']}.txt").read_text("utf-8")
        title, _, body = text.partition("\n")
        if row["doc"].startswith("seed-"):
            title, body = "", text  # seed articles have no title line
        documents.append(LabelledDocument(
            row["doc"], title, body, frozenset(row["narratives"].split(",")) - {"none", ""},
            (row.get("evidence") or "").strip()))
    return documents


def eval_alerts(runtime: Runtime, folder: Path) -> tuple[dict[str, float], list[DocResult]]:
    """Precision and recall of (document, narrative) alerts, and whether evidence is right."""
    results = []
    for doc in labelled_documents(folder):
        _, scores = runtime.score(doc.title, doc.body)
        alerted = {s.narrative_id: s for s in scores if s.supported}
        evidence_ok = None
        if doc.evidence and doc.narratives & alerted.keys():
            evidence_ok = all(doc.evidence in alerted[n].passage.text
                              for n in doc.narratives & alerted.keys())
        results.append(DocResult(doc.name, doc.narratives, frozenset(alerted), evidence_ok))
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

def eval_claims(encode: Encode, options: dict[str, Any], folder: Path,
                split: str = "dev") -> dict[str, float]:
    """MAP@5 and success@1 of ranking claims for each query; P/R of the alert rule.

    Each claim becomes a narrative whose statements are the claim and the title of its
    fact-check, scored by the bot's own NarrativeIndex (`options` = its `[matching]` settings):
    ranked by the fused rank; alerted when the top claim's score reaches the threshold.
    """
    claims = _rows(folder / "claims.tsv")
    queries = [q for q in _rows(folder / "queries.tsv") if q["split"] == split]
    relevant: dict[str, set[str]] = {}
    for pair in _rows(folder / "qrels.tsv"):
        relevant.setdefault(pair["query_id"], set()).add(pair["claim_id"])
    narratives = [Narrative(id=f"c{i}", title=c["claim_id"] or "?", statements=[
        t.strip()[:2000] for t in (c["text"], c.get("title") or "") if len(t.strip()) >= 3]
        or ["(empty claim)"]) for i, c in enumerate(claims)]
    statements = [t for n in narratives for t in n.statements]
    index = NarrativeIndex(narratives, _Cached(encode, statements), **options)
    texts = [q["text"] for q in queries]
    score, rank = index.rank_matrix(texts, encode(texts))
    ids = np.array([c["claim_id"] for c in claims])
    threshold = options["default_threshold"]
    ap5, hit1, alerts, correct_alerts = [], [], 0, 0
    for row_rank, row_score, query in zip(rank, score, queries, strict=True):
        gold = relevant.get(query["query_id"], set())
        order = np.argsort(-row_rank)[:5]
        ranked = ids[order]
        ap5.append(_average_precision(list(ranked), gold))
        hit1.append(float(ranked[0] in gold))
        if row_score[order[0]] >= threshold:
            alerts += 1
            correct_alerts += ranked[0] in gold
    with_gold = sum(1 for q in queries if relevant.get(q["query_id"]))
    return {"queries": len(queries), "claims": len(claims), "map@5": float(np.mean(ap5)),
            "success@1": float(np.mean(hit1)), "alert_precision": correct_alerts / max(alerts, 1),
            "alert_recall": correct_alerts / max(with_gold, 1), "threshold": threshold}


class _Cached:
    """An Embedder that encodes every text of `texts` in one batched call up front (the index
    asks claim by claim, two texts at a time, which would be slow) and looks them up after."""

    name = "eval"

    def __init__(self, encode: Encode, texts: Sequence[str]) -> None:
        unique = list(dict.fromkeys(texts))
        self._encode = encode
        self._rows = dict(zip(unique, encode(unique), strict=True))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            self._rows.update(zip(missing, self._encode(missing), strict=True))
        if not texts:
            return np.zeros((0, len(next(iter(self._rows.values())))), dtype=np.float32)
        return np.vstack([self._rows[t] for t in texts])


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

MARGIN_K = 4  # neighbours in the ratio margin (Artetxe & Schwenk 2019 use 4)


def eval_parallel(encode: Encode, centering: Centering, folder: Path,
                  limit: int | None = None) -> dict[str, float]:
    """Per language: success@1 of finding the English original among all English sentences.

    Ranked by the ratio margin of bitext mining: cosine divided by the mean similarity of
    both sentences to their k nearest candidates on the other side, which discounts "hub"
    sentences that are close to everything. Plain cosine figures are reported beside it;
    the gap is the true pair's score minus the best wrong pair's, averaged.
    """
    english = _rows(folder / "eng_Latn.tsv")[:limit]
    ids = [r["id"] for r in english]
    statements = centering.apply(encode([r["text"] for r in english]))
    figures: dict[str, float] = {"sentences": len(ids), "margin_k": MARGIN_K}
    for file in sorted(folder.glob("*.tsv")):
        lang = file.stem
        if lang in ("eng_Latn", "meta"):
            continue
        by_id = {r["id"]: r["text"] for r in _rows(file)}
        articles = centering.apply(encode([by_id[i] for i in ids]))
        cosine = articles @ statements.T
        margin = ratio_margin(cosine, MARGIN_K)
        figures[f"{lang}.success@1"] = _success_at_1(margin)
        figures[f"{lang}.success@1_cosine"] = _success_at_1(cosine)
        figures[f"{lang}.gap"] = _gap(cosine)
        figures[f"{lang}.margin_gap"] = _gap(margin)
    return figures


def ratio_margin(sims: np.ndarray, k: int) -> np.ndarray:
    """sims / mean(k-NN similarity of the row item, k-NN similarity of the column item)."""
    k = max(1, min(k, sims.shape[0], sims.shape[1]))
    rows = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
    columns = np.sort(sims, axis=0)[-k:, :].mean(axis=0)
    return sims / np.maximum((rows[:, None] + columns[None, :]) / 2, 1e-6)


def _success_at_1(sims: np.ndarray) -> float:
    return float((sims.argmax(axis=1) == np.arange(len(sims))).mean())


def _gap(sims: np.ndarray) -> float:
    wrong = np.where(np.eye(len(sims), dtype=bool), -np.inf, sims).max(axis=1)
    return float((np.diag(sims) - wrong).mean())
