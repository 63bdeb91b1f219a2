"""Narrative index: seed statements → vectors; article passages → Match with evidence.

How a passage is scored against a narrative:
- its *probes* are the passage itself and each quoted span inside it (news that reports a
  narrative quotes its headline; the quote alone says it more plainly than the paragraph);
- its score is the best cosine similarity of any probe to any of the narrative's statements,
  its counter score the same against the narrative's counter-examples;
- it supports the narrative when the score reaches the threshold, beats the counter score by
  `counter_margin`, (with `exclusive`) no other narrative fits that passage better, and the
  article passes the narrative's keyword guard (`require_any`, bot/guard.py) if it has one.
Scores live in a "centered" space when a background mean is given: subtracting the mean
embedding of ordinary news and re-normalising removes what every news sentence shares, which
widens the gap between a narrative and mere topic overlap. The margins were chosen on the eval
data (README, "Quality").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.config import Narrative
from bot.embed import Embedder
from bot.guard import KeywordGuard
from bot.models import Match, Passage


@dataclass(frozen=True)
class Centering:
    """Subtract a background mean and re-normalise; identity when `mean` is None."""

    mean: np.ndarray | None = None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return vectors
        shifted = vectors - self.mean
        return shifted / np.maximum(np.linalg.norm(shifted, axis=-1, keepdims=True), 1e-12)


def probe_texts(passages: Sequence[Passage]) -> list[str]:
    """The texts to embed for `passages`: each passage, then its quoted spans, in order."""
    return [text for p in passages for text in (p.text, *p.quotes)]


@dataclass(frozen=True)
class PassageScore:
    """How one narrative scored on an article: its best passage and why it did or did not match."""

    narrative_id: str
    narrative_title: str
    threshold: float
    passage: Passage
    score: float
    counter_score: float
    statement: str
    supported: bool
    guard_hit: str | None = None  # the keyword that let the narrative through, if it has a guard
    guarded_out: bool = False  # the article names none of the narrative's `require_any` terms


@dataclass(frozen=True)
class _Entry:
    narrative: Narrative
    threshold: float
    statements: np.ndarray
    counters: np.ndarray
    guard: KeywordGuard


class NarrativeIndex:
    """Narratives with their statement vectors, embedded once and reused for every article."""

    def __init__(self, narratives: Sequence[Narrative], embedder: Embedder, *,
                 default_threshold: float, counter_margin: float = 0.0,
                 exclusive: bool = True, centering: Centering | None = None) -> None:
        self.centering = centering or Centering()
        self.counter_margin = counter_margin
        self.exclusive = exclusive
        self.narratives = list(narratives)
        self._entries = [self._embed(n, embedder, default_threshold) for n in narratives]

    def _embed(self, narrative: Narrative, embedder: Embedder, default: float) -> _Entry:
        statements = self.centering.apply(embedder.encode(narrative.statements))
        counters = self.centering.apply(embedder.encode(narrative.counter_examples))
        threshold = default if narrative.threshold is None else narrative.threshold
        return _Entry(narrative, threshold, statements, counters,
                      KeywordGuard(narrative.require_any))

    def add_counter_examples(self, narrative_id: str, vectors: np.ndarray) -> None:
        """Append counter-example vectors (not yet centered) to one narrative."""
        for i, entry in enumerate(self._entries):
            if entry.narrative.id == narrative_id:
                counters = np.vstack([entry.counters.reshape(-1, vectors.shape[1]),
                                      self.centering.apply(vectors)])
                self._entries[i] = replace(entry, counters=counters)

    def score(self, passages: Sequence[Passage], probe_vectors: np.ndarray) -> list[PassageScore]:
        """Each narrative's best passage: its best supported one, else its best overall.

        `probe_vectors` holds one row per text of `probe_texts(passages)`.
        """
        if not passages or not self._entries:
            return []
        vectors = self.centering.apply(probe_vectors)
        starts = np.cumsum([0] + [1 + len(p.quotes) for p in passages[:-1]])
        pos, best_statement, neg = self._passage_scores(vectors, starts)
        supported = pos >= np.array([e.threshold for e in self._entries])
        supported &= pos - neg > self.counter_margin
        if self.exclusive:
            supported &= pos >= pos.max(axis=1, keepdims=True)
        article = "\n".join(p.text for p in passages)
        hits = [e.guard.first_hit(article) for e in self._entries]
        guarded = [bool(e.guard.terms) and hit is None for e, hit in zip(
            self._entries, hits, strict=True)]
        supported &= ~np.array(guarded)
        return [replace(self._best(j, passages, pos[:, j], neg[:, j], best_statement[:, j],
                                   supported[:, j]), guard_hit=hits[j], guarded_out=guarded[j])
                for j in range(len(self._entries))]

    def match(self, passages: Sequence[Passage], probe_vectors: np.ndarray) -> list[Match]:
        return [Match(narrative_id=s.narrative_id, narrative_title=s.narrative_title,
                      score=s.score, threshold=s.threshold, passage=s.passage,
                      statement=s.statement)
                for s in self.score(passages, probe_vectors) if s.supported]

    def _passage_scores(self, vectors: np.ndarray, starts: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(passages × narratives) best statement score, which statement, best counter score."""
        pos, which, neg = [], [], []
        for entry in self._entries:
            sims = vectors @ entry.statements.T
            probe_best = sims.max(axis=1)
            passage_best = np.maximum.reduceat(probe_best, starts)
            # the statement behind each passage's best probe
            owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(vectors))))
            top_probe = [int(np.flatnonzero((owner == i) & (probe_best == passage_best[i]))[0])
                         for i in range(len(starts))]
            pos.append(passage_best)
            which.append(sims[top_probe].argmax(axis=1))
            counters = (np.maximum.reduceat((vectors @ entry.counters.T).max(axis=1), starts)
                        if len(entry.counters) else np.full(len(starts), -1.0, np.float32))
            neg.append(counters)
        return np.stack(pos, axis=1), np.stack(which, axis=1), np.stack(neg, axis=1)

    def _best(self, j: int, passages: Sequence[Passage], pos: np.ndarray, neg: np.ndarray,
              statement: np.ndarray, supported: np.ndarray) -> PassageScore:
        entry = self._entries[j]
        pool = np.flatnonzero(supported) if supported.any() else np.arange(len(passages))
        i = int(pool[pos[pool].argmax()])
        return PassageScore(
            narrative_id=entry.narrative.id, narrative_title=entry.narrative.title,
            threshold=entry.threshold, passage=passages[i], score=float(pos[i]),
            counter_score=float(neg[i]), statement=entry.narrative.statements[int(statement[i])],
            supported=bool(supported[i]))
