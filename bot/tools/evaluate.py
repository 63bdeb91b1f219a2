"""`narrative-bot eval`: matching quality on a labelled dataset, one function per dataset kind.

- alerts: a folder `docs/*.txt` (first line = title) and `labels.tsv` (doc, narratives
  comma-separated or `none`, optional evidence substring, optional `source` in the shared
  data for third-party texts the repository does not hold): the alert rule end to end.
- claims: `claims.tsv`, `queries.tsv` (with a split column) and `qrels.tsv`: claims act as
  narratives, queries as articles (CheckThat! 2020 layout).
- parallel: one `<lang>.tsv` per language with aligned ids: the English sentence is the
  narrative, its translation the article.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Narrative
from bot.feeds import UNDETERMINED, guess_language, normalize_language
from bot.matching.index import Centering, NarrativeIndex
from bot.matching.matcher import Matcher
from bot.tools.progress import progress

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
    lang: str = UNDETERMINED


@dataclass(frozen=True)
class GroupFigures:
    """Alert counts of one narrative or one language."""

    group: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        return self.true_positives / max(self.true_positives + self.false_positives, 1)

    @property
    def recall(self) -> float:
        return self.true_positives / max(self.true_positives + self.false_negatives, 1)


@dataclass(frozen=True)
class LabelledDocument:
    name: str
    title: str
    body: str
    narratives: frozenset[str]
    evidence: str  # a substring of the passage that should be the evidence ("" = any)
    lang: str = UNDETERMINED


DOC_LANGUAGES = frozenset({"en", "ru", "zh", "kk", "ky", "tg", "uz"})
SHARED_ENV = "NARRATIVE_BOT_SHARED"


def shared_folder() -> Path:
    """Where `source` references point: $NARRATIVE_BOT_SHARED, else `shared` beside the checkout."""
    named = os.environ.get(SHARED_ENV)
    return Path(named) if named else Path(__file__).resolve().parents[3] / "shared"


def labelled_documents(folder: Path) -> list[LabelledDocument]:
    """The documents of an alerts dataset with their labels.

    A row's text is `docs/<doc>.txt` (first line = title), or, when its `source` column is
    set, third-party text read from the shared data (see `_shared_text`).
    """
    documents = []
    for row in _rows(folder / "labels.tsv"):
        source = (row.get("source") or "").strip()
        if source:
            title, body = _shared_text(source)
        else:
            text = (folder / "docs" / f"{row['doc']}.txt").read_text("utf-8")
            title, _, body = text.partition("\n")
        documents.append(LabelledDocument(
            row["doc"], title, body, frozenset(row["narratives"].split(",")) - {"none", ""},
            (row.get("evidence") or "").strip(), _language(row, title, body)))
    return documents


def _language(row: dict[str, str], title: str, body: str) -> str:
    """A `lang` column, else a language code between dashes in the name (`real-pos-kz-ru-2`),
    else the language the text looks like."""
    if code := (row.get("lang") or "").strip():
        return code
    named = [part for part in row["doc"].split("-") if part in DOC_LANGUAGES]
    return named[-1] if named else guess_language(f"{title}\n{body}")


def _shared_text(source: str) -> tuple[str, str]:
    """(title, body) of a reference into the shared data folder.

    `ntrex:<lang>:<groups>`: sentences of `eval/parallel/<lang>.tsv` by NTREX number; groups
    are split by `|`, numbers within one by `,`; the first group is the title, each further
    group a paragraph. Anything else is a text file's path: the whole file is the body.
    """
    shared = shared_folder()
    if not shared.is_dir():
        raise FileNotFoundError(f"{source}: no shared data folder at {shared} (set {SHARED_ENV})")
    kind, _, reference = source.partition(":")
    if kind != "ntrex":
        return "", (shared / source).read_text("utf-8")  # a whole article without a title line
    lang, _, groups = reference.partition(":")
    sentences = _sentences(shared / "eval" / "parallel" / f"{lang}.tsv")
    joiner = "" if lang.startswith("zho") else " "  # Chinese puts no space between sentences
    parts = [joiner.join(sentences[f"ntrex-{int(n):04d}"] for n in group.split(","))
             for group in groups.split("|")]
    return parts[0], "".join(f"{paragraph}\n" for paragraph in parts[1:])


@cache
def _sentences(path: Path) -> dict[str, str]:
    """id → text of one aligned-sentence file, whitespace runs collapsed."""
    return {row["id"]: " ".join(row["text"].split()) for row in _rows(path)}


def eval_alerts(matcher: Matcher, folder: Path) -> tuple[dict[str, float], list[DocResult]]:
    """Precision and recall of (document, narrative) alerts, and whether evidence is right."""
    results = []
    for doc in progress(labelled_documents(folder), "documents", unit="doc"):
        verdict = matcher.judge_blocking(doc.title, doc.body)
        alerted = {s.narrative_id: s for s in verdict.scores if s.supported}
        evidence_ok = None
        if doc.evidence and doc.narratives & alerted.keys():
            evidence_ok = all(doc.evidence in alerted[n].passage.text
                              for n in doc.narratives & alerted.keys())
        results.append(DocResult(doc.name, doc.narratives, frozenset(alerted), evidence_ok,
                                 doc.lang))
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


def breakdown(results: Sequence[DocResult]) -> tuple[list[GroupFigures], list[GroupFigures]]:
    """The alert counts per narrative and per language, for the eval's tables."""
    by_narrative: dict[str, list[int]] = {}
    by_language: dict[str, list[int]] = {}
    for r in results:
        for narrative in r.expected | r.alerted:
            cell = 0 if narrative in r.expected & r.alerted else 1 if narrative in r.alerted else 2
            for table, key in ((by_narrative, narrative), (by_language, r.lang)):
                table.setdefault(key, [0, 0, 0])[cell] += 1
    def rows(table: dict[str, list[int]]) -> list[GroupFigures]:
        return [GroupFigures(k, *v) for k, v in sorted(table.items())]
    return rows(by_narrative), rows(by_language)


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

    def __init__(self, encode: Encode, texts: Sequence[str]) -> None:
        self.name = f"eval-{id(self)}"  # its own memo in the index's text vectors
        unique = list(dict.fromkeys(texts))
        self._encode = encode
        self._rows = dict(zip(unique, encode(unique), strict=True))
        self.dim = len(next(iter(self._rows.values()))) if self._rows else 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self._rows]
        if missing:
            self._rows.update(zip(missing, self._encode(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
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

    Each side is centred on its language's mean (`rus_Cyrl` → ru). Ranked by the ratio
    margin of bitext mining: cosine divided by the mean similarity of
    both sentences to their k nearest candidates on the other side, which discounts "hub"
    sentences that are close to everything. Plain cosine figures are reported beside it;
    the gap is the true pair's score minus the best wrong pair's, averaged.
    """
    english = _rows(folder / "eng_Latn.tsv")[:limit]
    ids = [r["id"] for r in english]
    statements = centering.apply(encode([r["text"] for r in english]), "en")
    figures: dict[str, float] = {"sentences": len(ids), "margin_k": MARGIN_K}
    for file in sorted(folder.glob("*.tsv")):
        lang = file.stem
        if lang in ("eng_Latn", "meta"):
            continue
        by_id = {r["id"]: r["text"] for r in _rows(file)}
        articles = centering.apply(encode([by_id[i] for i in ids]), normalize_language(lang))
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
    ratio: np.ndarray = sims / np.maximum((rows[:, None] + columns[None, :]) / 2, 1e-6)
    return ratio


def _success_at_1(sims: np.ndarray) -> float:
    return float((sims.argmax(axis=1) == np.arange(len(sims))).mean())


def _gap(sims: np.ndarray) -> float:
    wrong = np.where(np.eye(len(sims), dtype=bool), -np.inf, sims).max(axis=1)
    return float((np.diag(sims) - wrong).mean())
