"""`narrative-bot calibrate`: propose thresholds from labelled documents and stored 👍/👎.

Every example is one (document, narrative) pair with a label and the narrative's *eligible
score* on that document: its best score among passages that pass every rule but the threshold
(`Verdict.eligible`, bot/matching/matcher.py), so the document alerts exactly when that score
reaches the threshold. For a target precision the proposal is the lowest threshold that keeps
precision at the target (the most recall), moved halfway down to the next lower example so that
it does not sit on one document's score. Feedback only exists for alerts that were sent, so it
can only ever argue for a stricter threshold; the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.config import ConfigError, Narrative, load_narrative
from bot.matching.matcher import Matcher
from bot.storage.store import Store
from bot.tools.evaluate import labelled_documents
from bot.tools.progress import progress

NO_LOWER_EXAMPLE_STEP = 0.02  # below the lowest kept positive when nothing scores under it


@dataclass(frozen=True)
class Example:
    narrative_id: str
    score: float | None  # None: no passage passes the other rules; never alerts
    positive: bool
    origin: str  # document name or article key


@dataclass(frozen=True)
class Proposal:
    """A threshold for one narrative (or `*` for the shared default) and its figures."""

    narrative_id: str
    current: float
    proposed: float | None  # None: too little data, or the target cannot be reached
    positives: int
    negatives: int
    current_pr: tuple[float, float]
    proposed_pr: tuple[float, float] | None
    note: str = ""


def examples_from_documents(matcher: Matcher, folder: Path) -> list[Example]:
    """Every labelled document of an alerts dataset × every narrative."""
    examples: list[Example] = []
    for doc in progress(labelled_documents(folder), folder.name, unit="doc"):
        eligible = matcher.judge_blocking(doc.title, doc.body).eligible()
        examples.extend(Example(nid, score, nid in doc.narratives, doc.name)
                        for nid, score in eligible.items())
    return examples


def examples_from_feedback(matcher: Matcher, store: Store) -> list[Example]:
    """Voted alerts, each scored again with today's narratives; the majority vote labels it."""
    examples = []
    for voted in progress(store.voted_articles(), "voted alerts", unit="alert"):
        if voted.relevant == voted.wrong or voted.text is None:
            continue
        eligible = matcher.judge_blocking(voted.title, voted.text).eligible()
        if voted.narrative_id in eligible:
            examples.append(Example(voted.narrative_id, eligible[voted.narrative_id],
                                    voted.relevant > voted.wrong, voted.article_key))
    return examples


def precision_recall(examples: Sequence[Example], threshold: float) -> tuple[float, float]:
    alerted = [e for e in examples if e.score is not None and e.score >= threshold]
    hits = sum(e.positive for e in alerted)
    positives = sum(e.positive for e in examples)
    return (hits / len(alerted) if alerted else 1.0, hits / positives if positives else 1.0)


def propose(narrative_id: str, examples: Sequence[Example], current: float, *,
            target_precision: float, min_positives: int) -> Proposal:
    positives = sum(e.positive for e in examples)
    negatives = len(examples) - positives
    current_pr = precision_recall(examples, current)

    def refused(note: str) -> Proposal:
        return Proposal(narrative_id, current, None, positives, negatives, current_pr, None,
                        note)

    if positives < min_positives:
        return refused(f"only {positives} positive example(s); need {min_positives}")
    best = _lowest_threshold_at_precision(examples, target_precision)
    if best is None:
        return refused(f"no threshold reaches precision {target_precision:.2f}")
    below = [e.score for e in examples if e.score is not None and e.score < best]
    proposed = round((best + max(below)) / 2 if below else best - NO_LOWER_EXAMPLE_STEP, 3)
    return Proposal(narrative_id, current, proposed, positives, negatives, current_pr,
                    precision_recall(examples, proposed))


def _lowest_threshold_at_precision(examples: Sequence[Example], target: float) -> float | None:
    candidates = sorted({e.score for e in examples if e.positive and e.score is not None})
    for threshold in candidates:  # ascending: the first that holds keeps the most recall
        if precision_recall(examples, threshold)[0] >= target:
            return threshold
    return None


def calibrate(examples: Sequence[Example], narratives: Sequence[Narrative], default: float, *,
              target_precision: float = 0.9, min_positives: int = 3) -> list[Proposal]:
    """One proposal for the shared default (`*`), then one per narrative."""
    proposals = [propose("*", examples, default, target_precision=target_precision,
                         min_positives=min_positives)]
    for narrative in narratives:
        own = [e for e in examples if e.narrative_id == narrative.id]
        current = default if narrative.threshold is None else narrative.threshold
        proposals.append(propose(narrative.id, own, current, target_precision=target_precision,
                                 min_positives=min_positives))
    return proposals


_THRESHOLD_LINE = re.compile(r"^threshold\s*=.*$", re.MULTILINE)


def write_threshold(file: Path, value: float) -> None:
    """Set the top-level `threshold` of a narrative file, keeping everything else as written;
    the file is validated afterwards and restored if it no longer loads."""
    original = file.read_text(encoding="utf-8")
    top, table, rest = original.partition("\n[")
    line = f"threshold = {value}"
    if _THRESHOLD_LINE.search(top):
        top = _THRESHOLD_LINE.sub(line, top, count=1)
    else:
        top = re.sub(r"^(title\s*=.*)$", rf"\1\n{line}", top, count=1, flags=re.MULTILINE)
    file.write_text(top + table + rest, encoding="utf-8")
    try:
        if load_narrative(file).threshold != value:
            raise ConfigError(f"{file}: threshold could not be written")
    except ConfigError:
        file.write_text(original, encoding="utf-8")
        raise


def format_report(proposals: Iterable[Proposal], target_precision: float) -> list[str]:
    lines = [f"target precision {target_precision:.2f}",
             f"{'narrative':24} {'+':>4} {'-':>4}  {'current':>7} (P / R)        proposed (P / R)"]
    for p in proposals:
        now = f"{p.current:7.3f} ({p.current_pr[0]:.2f} / {p.current_pr[1]:.2f})"
        if p.proposed is None or p.proposed_pr is None:
            then = f"keep — {p.note}"
        else:
            then = f"{p.proposed:.3f} ({p.proposed_pr[0]:.2f} / {p.proposed_pr[1]:.2f})"
        lines.append(f"{p.narrative_id:24} {p.positives:4} {p.negatives:4}  {now}  {then}")
    return lines
