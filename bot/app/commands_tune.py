"""`narrative-bot score | backtest | eval | calibrate`: how narratives and thresholds are tuned.

Each builds the same App the bot runs (so learned counter-examples count here too) and judges
through its matcher; each returns the command's exit status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.app.wiring import App
from bot.config import Config, ConfigError, Narrative, load_narrative, parse_duration
from bot.matching.index import PassageScore
from bot.tools import calibrate as calibration
from bot.tools import evaluate
from bot.tools.progress import progress, working


def score(config: Config, narratives: Sequence[Narrative], text: str) -> int:
    """Each narrative's best passage in `text`, best first: how analysts tune seeds."""
    with App(config, narratives) as app:
        verdict = app.matcher.judge_blocking("", text)
    for s in sorted(verdict.scores, key=lambda s: -s.score):
        print(score_line(s))
    return 0


def score_line(s: PassageScore) -> str:
    verdict = "MATCH" if s.supported else "-"
    guard = (" (guard: no keyword)" if s.guarded_out
             else f" (keyword {s.guard_hit!r})" if s.guard_hit else "")
    return (f"{s.narrative_id:24} {s.score:6.3f} / {s.threshold:.3f}  rank {s.rank:6.3f}  "
            f"counter {s.counter_score:6.3f}  {verdict}{guard}\n"
            f"    passage #{s.passage.index}: {s.passage.text[:300]}\n"
            f"    closest statement: {s.statement[:200]}")


def backtest(config: Config, current: Sequence[Narrative], narrative_file: Path,
             since: str) -> int:
    """Score stored articles with the candidate in place of (or beside) the live narratives,
    so that it competes with its siblings exactly as it would live."""
    try:
        narrative = load_narrative(narrative_file)
        start = datetime.now(UTC) - parse_duration(since)
    except (ConfigError, ValueError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    others = [n for n in current if n.id != narrative.id]
    hits = 0
    with working("loading the model"):
        app = App(config, [*others, narrative], private_state=True)
    with app:
        articles = app.store.articles_since(start)
        for stored in progress(articles, "stored articles", unit="article"):
            article = stored.article
            verdict = app.matcher.judge_blocking(article.title, article.text,
                                                 article.language)
            found = next((m for m in verdict.matches if m.narrative_id == narrative.id), None)
            if found is not None:
                hits += 1
                print(f"{stored.seen_at:%Y-%m-%dT%H:%M}  {found.score:.3f}  "
                      f"{article.source}: {article.title}\n"
                      f"    {article.url}\n    « {found.passage.text[:300]} »")
    threshold = config.matching.threshold if narrative.threshold is None else narrative.threshold
    print(f"{narrative.id}: {hits} of {len(articles)} stored articles since "
          f"{start:%Y-%m-%d %H:%M} UTC would have alerted (threshold {threshold})")
    return 0


def eval_dataset(config: Config, narratives: Sequence[Narrative], dataset: Path, *,
                 split: str, limit: int | None, as_json: bool) -> int:
    """Matching quality on one labelled dataset (alerts, claims or parallel layout)."""
    try:
        kind = evaluate.dataset_kind(dataset)
    except ValueError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    results: list[evaluate.DocResult] = []
    with working("loading the model"):
        app = App(config, narratives, private_state=True)
    with app, working(f"{kind} eval") if kind != "alerts" else contextlib.nullcontext():
        matcher = app.matcher
        encode = matcher.embedder.encode_blocking
        if kind == "alerts":
            figures, results = evaluate.eval_alerts(matcher, dataset)
            for r in results:
                mark = "ok " if r.expected == r.alerted and r.evidence_ok is not False else "BAD"
                print(f"{mark} {r.doc:24} expected {sorted(r.expected) or '-'} "
                      f"alerted {sorted(r.alerted) or '-'}")
        elif kind == "claims":
            figures = evaluate.eval_claims(encode, matcher.index_options, dataset, split)
        else:
            figures = evaluate.eval_parallel(encode, matcher.centering, dataset, limit)
        model = app.model_name
    print(f"{kind} eval of {dataset} with {model}:")
    for name, value in figures.items():
        print(f"  {name:28} {value:.3f}" if isinstance(value, float) else f"  {name:28} {value}")
    groups: dict[str, list[dict[str, object]]] = {}
    if kind == "alerts":
        for title, rows in zip(("narrative", "language"), evaluate.breakdown(results),
                               strict=True):
            print(f"  by {title}:")
            for g in rows:
                print(f"    {g.group:24} precision {g.precision:.2f}  recall {g.recall:.2f}  "
                      f"(tp {g.true_positives}, fp {g.false_positives}, "
                      f"fn {g.false_negatives})")
            groups[f"by_{title}"] = [{"group": g.group, "precision": g.precision,
                                      "recall": g.recall, "true_positives": g.true_positives,
                                      "false_positives": g.false_positives,
                                      "false_negatives": g.false_negatives} for g in rows]
    if as_json:
        print(json.dumps({"kind": kind, **figures, **groups}))
    return 0


@dataclasses.dataclass(frozen=True)
class CalibrateOptions:
    """What `calibrate` was asked for (see its --help)."""

    datasets: tuple[Path, ...]
    feedback: bool
    target_precision: float
    min_positives: int
    write: bool
    as_json: bool


def calibrate(config: Config, narratives: Sequence[Narrative], options: CalibrateOptions) -> int:
    """Thresholds proposed from labelled documents and/or stored 👍/👎."""
    if not options.datasets and not options.feedback:
        print("calibrate: give labelled dataset folders and/or --feedback", file=sys.stderr)
        return 2
    if not 0 < options.target_precision <= 1:
        print("calibrate: --target-precision must be in (0, 1]", file=sys.stderr)
        return 2
    with working("loading the model"):
        app = App(config, narratives, private_state=True)
    with app:
        try:
            examples = [e for folder in options.datasets
                        for e in calibration.examples_from_documents(app.matcher, folder)]
            if options.feedback:
                examples += calibration.examples_from_feedback(app.matcher, app.store)
        except (OSError, KeyError, ValueError) as exc:
            print(f"calibrate: cannot read the labelled data: {exc}", file=sys.stderr)
            return 2
    proposals = calibration.calibrate(examples, narratives, config.matching.threshold,
                                      target_precision=options.target_precision,
                                      min_positives=options.min_positives)
    print(f"{len(examples)} examples ({sum(e.positive for e in examples)} positive)")
    print("\n".join(calibration.format_report(proposals, options.target_precision)))
    if options.feedback:
        print("note: feedback exists only for sent alerts, so it can only argue for stricter "
              "thresholds")
    if options.write:
        write_thresholds(proposals, narratives)
    if options.as_json:
        print(json.dumps([dataclasses.asdict(p) for p in proposals]))
    return 0


def write_thresholds(proposals: Sequence[calibration.Proposal],
                     narratives: Sequence[Narrative]) -> None:
    files = {n.id: n.source_file for n in narratives if n.source_file is not None}
    for p in proposals:
        if p.proposed is not None and (file := files.get(p.narrative_id)) is not None:
            calibration.write_threshold(file, p.proposed)
            print(f"wrote threshold = {p.proposed} to {file}")
    if (shared := proposals[0]).proposed is not None:
        print(f"shared default: set [matching] threshold = {shared.proposed} in the config")
