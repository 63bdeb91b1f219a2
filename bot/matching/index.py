"""Narrative index: seed statements → vectors; article passages → Match with evidence.

How a passage is scored against a narrative:
- its *probes* are the passage itself and each quoted span inside it (news that reports a
  narrative quotes its headline; the quote alone says it more plainly than the paragraph);
- its *score* is the best cosine similarity of any probe to any of the narrative's statements,
  its *counter score* the same against the narrative's counter-examples;
- its *rank* adds `lexical_weight` × the TF-IDF cosine to the statement (lexical.py): in
  one language, shared rare words tell which of several close narratives a passage restates;
- it supports the narrative when the score reaches the threshold, beats the counter score by
  `counter_margin`, (with `exclusive`) no other narrative ranks higher on that passage, and the
  article passes the narrative's keyword guard (`require_any`, bot/matching/guard.py) if it has one.
The threshold applies to the embedding score alone, so an article in another language than the
statements is held to the same bar. Scores live in a "centered" space when a background mean
is given: subtracting the mean embedding of ordinary news and re-normalising removes what every
news sentence shares, which widens the gap between a narrative and mere topic overlap. The
defaults were chosen on the eval data (README, "Quality").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.config import Narrative
from bot.embedding.embedder import Embedder, normalise
from bot.feeds.text import split_sentences
from bot.matching.guard import KeywordGuard
from bot.matching.lexical import LexicalIndex
from bot.models import Match, Passage


@dataclass(frozen=True)
class Centering:
    """Subtract a background mean and re-normalise; identity when `mean` is None."""

    mean: np.ndarray | None = None

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        if self.mean is None:
            return vectors
        return normalise(vectors - self.mean)


MIN_SENTENCE_CHARS = 25  # shorter sentences ("He disagreed.") carry no claim on their own


@functools.lru_cache(maxsize=4096)
def passage_probes(passage: Passage) -> tuple[str, ...]:
    """The texts scored for one passage: itself, its quoted spans, and (when it has several)
    its sentences, so that one claim sentence inside a long paragraph is not diluted.

    Cached: the pipeline asks once to embed them and scoring asks again for their rows and
    their words; sentence splitting should happen once per passage."""
    probes = (passage.text, *passage.quotes)
    sentences = split_sentences(passage.text)
    if len(sentences) > 1:
        probes += tuple(s for s in sentences
                        if len(s) >= MIN_SENTENCE_CHARS and s not in passage.quotes)
    return probes


def passage_rows(passages: Sequence[Passage]) -> np.ndarray:
    """Where each passage's own text sits among the rows of `probe_texts(passages)`."""
    return _starts([len(passage_probes(p)) for p in passages])


def probe_texts(passages: Sequence[Passage]) -> list[str]:
    """The texts to embed for `passages`: each passage's probes, in order."""
    return [text for p in passages for text in passage_probes(p)]


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
    rank: float = 0.0  # score + lexical_weight × lexical similarity


@dataclass(frozen=True)
class _Entry:
    narrative: Narrative
    threshold: float
    statements: np.ndarray
    counters: np.ndarray
    guard: KeywordGuard


@dataclass(frozen=True)
class _Scores:
    """(passages × narratives) arrays for one article."""

    pos: np.ndarray  # best embedding score
    rank: np.ndarray  # best fused rank
    neg: np.ndarray  # best counter-example score (-1 without counter-examples)
    statement: np.ndarray  # index, within the narrative, of the statement behind `rank`


@dataclass(frozen=True)
class _Stacked:
    """Every statement (and counter-example) in one matrix, grouped by narrative, so that an
    article is scored against all narratives with one product. Replaced whole, never changed:
    a 👎 that adds a counter-example cannot be seen half-applied by a scoring thread."""

    entries: tuple[_Entry, ...]
    statements: np.ndarray
    statement_starts: np.ndarray
    counters: np.ndarray
    counter_starts: np.ndarray
    counter_owners: np.ndarray
    thresholds: np.ndarray

    @classmethod
    def of(cls, entries: Sequence[_Entry]) -> _Stacked:
        with_counters = [j for j, e in enumerate(entries) if len(e.counters)]
        return cls(
            entries=tuple(entries),
            statements=_vstack([e.statements for e in entries]),
            statement_starts=_starts([len(e.statements) for e in entries]),
            counters=_vstack([entries[j].counters for j in with_counters]),
            counter_starts=_starts([len(entries[j].counters) for j in with_counters]),
            counter_owners=np.array(with_counters, dtype=int),
            thresholds=np.array([e.threshold for e in entries], dtype=np.float32))


class NarrativeIndex:
    """Narratives with their statement vectors, embedded once and reused for every article."""

    def __init__(self, narratives: Sequence[Narrative], embedder: Embedder, *,
                 default_threshold: float, counter_margin: float = 0.0,
                 exclusive: bool = True, centering: Centering | None = None,
                 lexical_weight: float = 0.0, reference_texts: Sequence[str] = ()) -> None:
        self.centering = centering or Centering()
        self.counter_margin = counter_margin
        self.exclusive = exclusive
        self.lexical_weight = lexical_weight
        self.narratives = list(narratives)
        entries = [self._embed(n, embedder, default_threshold) for n in narratives]
        statements = [s for n in self.narratives for s in n.statements]
        self._lexical = (LexicalIndex(statements, reference_texts) if lexical_weight else None)
        self._stacked = _Stacked.of(entries)

    def _embed(self, narrative: Narrative, embedder: Embedder, default: float) -> _Entry:
        statements = self.centering.apply(embedder.encode(narrative.statements))
        counters = self.centering.apply(embedder.encode(narrative.counter_examples))
        threshold = default if narrative.threshold is None else narrative.threshold
        return _Entry(narrative, threshold, statements, counters,
                      KeywordGuard(narrative.require_any))

    def add_counter_examples(self, narrative_id: str, vectors: np.ndarray) -> None:
        """Append counter-example vectors (not yet centered) to one narrative."""
        extra = self.centering.apply(vectors)
        entries = [replace(e, counters=np.vstack([e.counters.reshape(-1, vectors.shape[1]),
                                                  extra]))
                   if e.narrative.id == narrative_id else e for e in self._stacked.entries]
        self._stacked = _Stacked.of(entries)

    def score(self, passages: Sequence[Passage], probe_vectors: np.ndarray, *,
              ignore_thresholds: bool = False) -> list[PassageScore]:
        """Each narrative's best passage: its best supported one, else its best overall.

        `probe_vectors` holds one row per text of `probe_texts(passages)`.
        """
        stacked = self._stacked
        if not passages or not stacked.entries:
            return []
        starts = passage_rows(passages)
        scores = self._passage_scores(stacked, probe_texts(passages), probe_vectors, starts)
        supported = scores.pos - scores.neg > self.counter_margin
        if not ignore_thresholds:
            supported &= scores.pos >= stacked.thresholds
        if self.exclusive:
            supported &= scores.rank >= scores.rank.max(axis=1, keepdims=True)
        article = "\n".join(p.text for p in passages)
        hits = [e.guard.first_hit(article) for e in stacked.entries]
        guarded = np.array([bool(e.guard.terms) and hit is None
                            for e, hit in zip(stacked.entries, hits, strict=True)])
        supported &= ~guarded
        return [replace(_best(stacked.entries[j], j, passages, scores, supported[:, j]),
                        guard_hit=hits[j], guarded_out=bool(guarded[j]))
                for j in range(len(stacked.entries))]

    def eligible_scores(self, passages: Sequence[Passage], probe_vectors: np.ndarray
                        ) -> dict[str, float | None]:
        """Each narrative's best score among passages that pass every rule but the threshold
        (None when none does): the article alerts exactly when this reaches the threshold.
        What `calibrate` needs to choose thresholds."""
        scores = self.score(passages, probe_vectors, ignore_thresholds=True)
        return {s.narrative_id: s.score if s.supported else None for s in scores}

    def match(self, passages: Sequence[Passage], probe_vectors: np.ndarray) -> list[Match]:
        return [Match(narrative_id=s.narrative_id, narrative_title=s.narrative_title,
                      score=s.score, threshold=s.threshold, passage=s.passage,
                      statement=s.statement)
                for s in self.score(passages, probe_vectors) if s.supported]

    def rank_matrix(self, texts: Sequence[str], vectors: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(texts × narratives) embedding scores and fused ranks, each text one passage: how
        the claim-retrieval eval ranks many narratives for one query."""
        scores = self._passage_scores(self._stacked, texts, vectors, np.arange(len(texts)))
        return scores.pos, scores.rank

    def _passage_scores(self, stacked: _Stacked, texts: Sequence[str],
                        probe_vectors: np.ndarray, starts: np.ndarray) -> _Scores:
        vectors = self.centering.apply(probe_vectors)
        sims = vectors @ stacked.statements.T  # probes × all statements
        fused = sims
        if self._lexical is not None:
            fused = sims + self.lexical_weight * self._lexical.similarity(texts)
        pos = np.maximum.reduceat(sims, stacked.statement_starts, axis=1)  # probes × narratives
        rank = np.maximum.reduceat(fused, stacked.statement_starts, axis=1)
        passage_pos = np.maximum.reduceat(pos, starts, axis=0)
        passage_rank = np.maximum.reduceat(rank, starts, axis=0)
        # the probe and statement behind each (passage, narrative) rank
        owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(vectors))))
        probe_index = np.arange(len(vectors))[:, None]
        candidates = np.where(rank == passage_rank[owner], probe_index, len(vectors))
        top_probe = np.minimum.reduceat(candidates, starts, axis=0)
        statement = np.zeros_like(top_probe)
        for j, first in enumerate(stacked.statement_starts):
            last = first + len(stacked.entries[j].statements)
            statement[:, j] = fused[top_probe[:, j], first:last].argmax(axis=1)
        neg = np.full_like(passage_pos, -1.0)
        if len(stacked.counters):
            counter = np.maximum.reduceat(vectors @ stacked.counters.T, stacked.counter_starts,
                                          axis=1)
            neg[:, stacked.counter_owners] = np.maximum.reduceat(counter, starts, axis=0)
        return _Scores(passage_pos, passage_rank, neg, statement)


def _best(entry: _Entry, j: int, passages: Sequence[Passage], scores: _Scores,
          supported: np.ndarray) -> PassageScore:
    """Narrative `j`'s best passage: its best-ranked supported one, else its best score."""
    pool = np.flatnonzero(supported) if supported.any() else np.arange(len(passages))
    order = scores.rank[:, j] if supported.any() else scores.pos[:, j]
    i = int(pool[order[pool].argmax()])
    return PassageScore(
        narrative_id=entry.narrative.id, narrative_title=entry.narrative.title,
        threshold=entry.threshold, passage=passages[i], score=float(scores.pos[i, j]),
        counter_score=float(scores.neg[i, j]),
        statement=entry.narrative.statements[int(scores.statement[i, j])],
        supported=bool(supported[i]), rank=float(scores.rank[i, j]))


def _starts(sizes: Sequence[int]) -> np.ndarray:
    return np.cumsum([0, *sizes[:-1]]).astype(int) if len(sizes) else np.zeros(0, dtype=int)


def _vstack(blocks: Sequence[np.ndarray]) -> np.ndarray:
    blocks = [b for b in blocks if len(b)]
    return np.vstack(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)
