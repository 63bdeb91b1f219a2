"""Narrative index: a narrative's texts → vectors and a classifier; passages → decisions.

How a passage is judged against a narrative, probe by probe (bot/matching/probes.py):
- its *score* is the best cosine similarity of the probe to the narrative's positives (its
  statements and its claim and report examples), its *counter score* the best against the
  narrative's counter-examples (same topic, no claim), both in the centred space (a probe on
  its article's language's mean, a narrative's text on the mean of the language it looks like);
- its *probability* is the narrative's claim classifier on the probe (classifier.py);
- a probe supports the narrative when the score reaches the threshold, beats its own counter
  score by `counter_margin`, and the probability reaches `min_probability`; a counter-example
  learned from 👎 counts against every probe of a passage that resembles it, since it was
  that whole passage an analyst marked as wrong;
- the passage must be about the narrative's subject: name it (`subject` terms, any script),
  or name no narrative's subject while the article's title names this one;
- with `exclusive`, a passage that does not name a narrative's subject supports only the
  narrative it ranks best for (rank = score + `lexical_weight` × TF-IDF cosine, lexical.py);
  one that names several subjects may support each of them;
- a title alone supports a narrative only when it clears the threshold by `title_margin`
  (or restates a statement nearly word for word) or the body supports the same narrative:
  short headlines are all topic and score high;
- the article must pass the narrative's keyword guard (`require_any`), if it has one.
The evidence is the supporting body passage that is both closest to the claim's own wording
(statements and claim examples, not reports of it) and most claim-like, judged on the probes
that assert rather than on headlines (quoted spans, questions: probes.headline_probes); a
passage that supports only through a headline is used like the title is: after a body
passage that asserts the claim and is held back by nothing but a counter-example. When only
the title supports, such a body passage, else the title.
The threshold applies to the embedding score, so an article in another language than the
statements faces the same bar. The defaults were chosen on the eval data (README, "Quality").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.config import Narrative
from bot.embedding import Embedder
from bot.feeds import guess_language
from bot.matching.classifier import ClaimClassifier
from bot.matching.evidence import assertions, evidence_passage
from bot.matching.guard import KeywordGuard
from bot.matching.lexical import LexicalIndex
from bot.matching.probes import (
    Centering,
    Languages,
    headline_probes,
    passage_probes,
    passage_rows,
    probe_texts,
    segment_starts,
)
from bot.matching.texts import TextVectors
from bot.models import Match, Passage

VERBATIM = 0.98  # a title this close to a statement restates it, whatever the margin

__all__ = ["Centering", "NarrativeIndex", "PassageScore", "passage_probes", "passage_rows",
           "probe_texts"]


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
    probability: float = 0.5  # the claim classifier on the deciding probe


@dataclass(frozen=True)
class _Entry:
    narrative: Narrative
    threshold: float
    statements: np.ndarray  # centred vectors of the positives
    statement_texts: tuple[str, ...]
    claims: np.ndarray  # bool per positive: it states the claim (not a report of it)
    counters: np.ndarray  # centred vectors of the counter-examples
    learned: np.ndarray  # centred vectors of the counter-examples learned from 👎
    guard: KeywordGuard
    subject: KeywordGuard
    classifier: ClaimClassifier


@dataclass(frozen=True)
class _Probes:
    """(probes × narratives) arrays for one article."""

    pos: np.ndarray  # best embedding score
    claim: np.ndarray  # best embedding score against the positives that state the claim
    rank: np.ndarray  # best fused rank
    neg: np.ndarray  # best counter-example score (-1 without counter-examples)
    learned: np.ndarray  # best learned counter-example score (-1 without any)
    prob: np.ndarray  # claim probability
    statement: np.ndarray  # index, within the narrative, of the statement behind `rank`


@dataclass(frozen=True)
class _Stacked:
    """Every positive and counter-example in one matrix, grouped by narrative, so that an
    article is scored against all narratives with one product. Replaced whole, never changed:
    a 👎 that adds a counter-example cannot be seen half-applied by a scoring thread."""

    entries: tuple[_Entry, ...]
    statements: np.ndarray
    statement_starts: np.ndarray
    claims: np.ndarray
    counters: np.ndarray
    counter_starts: np.ndarray
    counter_owners: np.ndarray
    learned: np.ndarray
    learned_starts: np.ndarray
    learned_owners: np.ndarray
    thresholds: np.ndarray

    @classmethod
    def of(cls, entries: Sequence[_Entry]) -> _Stacked:
        with_counters = [j for j, e in enumerate(entries) if len(e.counters)]
        with_learned = [j for j, e in enumerate(entries) if len(e.learned)]
        return cls(
            entries=tuple(entries),
            statements=_vstack([e.statements for e in entries]),
            statement_starts=segment_starts([len(e.statements) for e in entries]),
            claims=np.concatenate([e.claims for e in entries]) if entries else np.zeros(0, bool),
            counters=_vstack([entries[j].counters for j in with_counters]),
            counter_starts=segment_starts([len(entries[j].counters) for j in with_counters]),
            counter_owners=np.array(with_counters, dtype=int),
            learned=_vstack([entries[j].learned for j in with_learned]),
            learned_starts=segment_starts([len(entries[j].learned) for j in with_learned]),
            learned_owners=np.array(with_learned, dtype=int),
            thresholds=np.array([e.threshold for e in entries], dtype=np.float32))


class NarrativeIndex:
    """Narratives with their vectors and classifiers, built once and reused for every article."""

    def __init__(self, narratives: Sequence[Narrative], embedder: Embedder, *,
                 default_threshold: float, counter_margin: float = 0.0,
                 exclusive: bool = True, centering: Centering | None = None,
                 lexical_weight: float = 0.0, reference_texts: Sequence[str] = (),
                 min_probability: float = 0.0, title_margin: float | None = None,
                 learned: Mapping[str, Sequence[str]] | None = None) -> None:
        """`reference_texts`: ordinary news, the lexical score's idea of common words and the
        classifiers' everyday negatives; `min_probability` 0 leaves the classifiers out;
        `title_margin` None lets a title alone alert like any passage; `learned`:
        counter-examples taken from 👎, by narrative id."""
        self.centering = centering or Centering()
        self.counter_margin = counter_margin
        self.exclusive = exclusive
        self.lexical_weight = lexical_weight
        self.min_probability = min_probability
        self.title_margin = title_margin
        self.narratives = list(narratives)
        # hundreds of texts per narrative: embedded once per model, then remembered
        embedder = embedder if isinstance(embedder, TextVectors) else TextVectors(embedder)
        learned = learned or {}
        entries = [self._embed(n, embedder, default_threshold, learned.get(n.id, ()))
                   for n in narratives]
        self._background = (self._centred(embedder.encode(list(reference_texts)),
                                          reference_texts)
                            if min_probability > 0 and reference_texts else None)
        entries = [self._trained(e, entries) for e in entries]
        statements = [s for e in entries for s in e.statement_texts]
        self._lexical = (LexicalIndex(statements, reference_texts) if lexical_weight else None)
        self._stacked = _Stacked.of(entries)

    def _embed(self, narrative: Narrative, embedder: Embedder, default: float,
               learned: Sequence[str]) -> _Entry:
        positives = tuple(narrative.positives)
        statements = self._centred(embedder.encode(list(positives)), positives)
        counters = self._centred(embedder.encode(narrative.negatives), narrative.negatives)
        marked = self._centred(embedder.encode(list(learned)), learned)
        threshold = default if narrative.threshold is None else narrative.threshold
        claims = np.array([True] * len(narrative.statements) + [
            e.label == "claim" for e in narrative.training if e.label != "counter"], dtype=bool)
        return _Entry(narrative, threshold, statements, positives, claims, counters, marked,
                      KeywordGuard(narrative.require_any), KeywordGuard(narrative.subject),
                      ClaimClassifier(np.zeros(0, np.float32), 0.0))

    def _trained(self, entry: _Entry, entries: Sequence[_Entry]) -> _Entry:
        """`entry` with its classifier fitted: its positives against its counter-examples,
        ordinary news and the other narratives' positives."""
        if self.min_probability <= 0 or not len(entry.statements):
            return entry
        others = [e.statements for e in entries if e.narrative.id != entry.narrative.id]
        background = [] if self._background is None else [self._background]
        dim = entry.statements.shape[1]
        negatives = _vstack([entry.counters.reshape(-1, dim), entry.learned.reshape(-1, dim),
                             *background, *others])
        return replace(entry, classifier=ClaimClassifier.fit(entry.statements, negatives))

    def _centred(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """`vectors` of `texts` centred, each on the mean of the language it is written in."""
        return self.centering.apply(vectors, self._languages(texts))

    def _languages(self, texts: Sequence[str]) -> list[str] | None:
        """The language each text looks like; None when the centring has one mean for all."""
        return [_text_language(t) for t in texts] if self.centering.by_language else None

    def add_counter_examples(self, narrative_id: str, texts: Sequence[str],
                             vectors: np.ndarray) -> None:
        """Append counter-examples (their vectors not yet centred) to one narrative; its
        classifier learns them too."""
        extra = self._centred(vectors, texts)
        entries = list(self._stacked.entries)
        for j, e in enumerate(entries):
            if e.narrative.id == narrative_id:
                learned = np.vstack([e.learned.reshape(-1, vectors.shape[1]), extra])
                entries[j] = self._trained(replace(e, learned=learned), entries)
        self._stacked = _Stacked.of(entries)

    def score(self, passages: Sequence[Passage], probe_vectors: np.ndarray, *,
              language: str | None = None,
              ignore_thresholds: bool = False) -> list[PassageScore]:
        """Each narrative's best passage: its best supported one, else its best overall.

        `probe_vectors` holds one row per text of `probe_texts(passages)`; `language`: the
        article's, which its probes are centred on.
        """
        stacked = self._stacked
        if not passages or not stacked.entries:
            return []
        starts = passage_rows(passages)
        owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(probe_vectors))))
        probes = self._probe_scores(stacked, probe_texts(passages), probe_vectors, language)
        marked = np.maximum.reduceat(probes.learned, starts, axis=0)[owner]
        ok = probes.pos - np.maximum(probes.neg, marked) > self.counter_margin
        ok &= probes.prob >= self.min_probability
        if not ignore_thresholds:
            ok &= probes.pos >= stacked.thresholds
        names = _names(stacked, passages)
        about = _about_subject(stacked, passages, names)
        ok &= about[owner]
        supported = np.logical_or.reduceat(ok, starts, axis=0)
        top = _top_probes(probes, ok, starts)
        rank = np.take_along_axis(probes.rank, top, axis=0)
        if self.exclusive:
            supported &= (rank >= rank.max(axis=1, keepdims=True)) | names
        if self.title_margin is not None and not ignore_thresholds:
            bar = np.minimum(stacked.thresholds + self.title_margin, VERBATIM)
            supported &= _title_rule(passages, supported,
                                     np.take_along_axis(probes.pos, top, 0), bar)
        article = "\n".join(p.text for p in passages)
        hits = [e.guard.first_hit(article) for e in stacked.entries]
        guarded = np.array([bool(e.guard.terms) and hit is None
                            for e, hit in zip(stacked.entries, hits, strict=True)])
        supported &= ~guarded
        # a body passage that is about the subject, on the claim and claim-like, but held back
        # by a counter-example: better evidence than the headline the alert already shows
        quotable = about & (np.take_along_axis(probes.pos, top, 0) >= stacked.thresholds)
        quotable &= np.take_along_axis(probes.prob, top, 0) >= self.min_probability
        asserted = assertions(probes.claim, probes.prob, probes.pos, ok,
                              headline_probes(passages), starts,
                              stacked.thresholds, self.min_probability)
        return [replace(_best(stacked.entries[j], j, passages, probes, top[:, j], supported[:, j],
                              quotable[:, j], (asserted[0][:, j], asserted[1][:, j])),
                        guard_hit=hits[j], guarded_out=bool(guarded[j]))
                for j in range(len(stacked.entries))]

    def match(self, passages: Sequence[Passage], probe_vectors: np.ndarray,
              language: str | None = None) -> list[Match]:
        return [Match(narrative_id=s.narrative_id, narrative_title=s.narrative_title,
                      score=s.score, threshold=s.threshold, passage=s.passage,
                      statement=s.statement)
                for s in self.score(passages, probe_vectors, language=language) if s.supported]

    def rank_matrix(self, texts: Sequence[str], vectors: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(texts × narratives) embedding scores and fused ranks, each text one passage (in
        the language it looks like): how the claim-retrieval eval ranks many narratives for
        one query."""
        probes = self._probe_scores(self._stacked, texts, vectors, self._languages(texts))
        return probes.pos, probes.rank

    def _probe_scores(self, stacked: _Stacked, texts: Sequence[str],
                      probe_vectors: np.ndarray, languages: Languages) -> _Probes:
        vectors = self.centering.apply(probe_vectors, languages)
        sims = vectors @ stacked.statements.T  # probes × all statements
        fused = sims
        if self._lexical is not None:
            fused = sims + self.lexical_weight * self._lexical.similarity(texts)
        pos = np.maximum.reduceat(sims, stacked.statement_starts, axis=1)  # probes × narratives
        claim = np.maximum.reduceat(np.where(stacked.claims, sims, -1.0),
                                    stacked.statement_starts, axis=1)
        rank = np.maximum.reduceat(fused, stacked.statement_starts, axis=1)
        statement = np.zeros(pos.shape, dtype=int)
        for j, first in enumerate(stacked.statement_starts):
            last = first + len(stacked.entries[j].statements)
            statement[:, j] = fused[:, first:last].argmax(axis=1)
        neg = np.full_like(pos, -1.0)
        if len(stacked.counters):
            neg[:, stacked.counter_owners] = np.maximum.reduceat(
                vectors @ stacked.counters.T, stacked.counter_starts, axis=1)
        learned = np.full_like(pos, -1.0)
        if len(stacked.learned):
            learned[:, stacked.learned_owners] = np.maximum.reduceat(
                vectors @ stacked.learned.T, stacked.learned_starts, axis=1)
        prob = np.stack([e.classifier.probability(vectors) for e in stacked.entries], axis=1)
        return _Probes(pos, claim, rank, neg, learned, prob, statement)


def _names(stacked: _Stacked, passages: Sequence[Passage]) -> np.ndarray:
    """(passages × narratives): the passage names the narrative's subject."""
    return np.array([[bool(e.subject.terms) and e.subject.first_hit(p.text) is not None
                      for e in stacked.entries] for p in passages], dtype=bool).reshape(
        len(passages), len(stacked.entries))


def _about_subject(stacked: _Stacked, passages: Sequence[Passage],
                   names: np.ndarray) -> np.ndarray:
    """(passages × narratives): the passage may speak for the narrative — it names the
    subject, or names no narrative's subject while the title names this one's."""
    has_subject = np.array([bool(e.subject.terms) for e in stacked.entries])
    title = next((p for p in passages if p.title), None)
    title_names = names[title.index] if title is not None else np.zeros(len(has_subject), bool)
    silent = ~names.any(axis=1, keepdims=True)
    return np.asarray(~has_subject | names | (silent & title_names))


def _top_probes(probes: _Probes, ok: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(passages × narratives): each passage's deciding probe — its best-ranked supporting
    probe, else its best-scoring one."""
    ends = np.append(starts[1:], len(ok))
    top = np.zeros((len(starts), ok.shape[1]), dtype=int)
    for i, (first, last) in enumerate(zip(starts, ends, strict=True)):
        block_ok = ok[first:last]
        key = np.where(block_ok, probes.rank[first:last] + 10.0, probes.pos[first:last])
        top[i] = first + key.argmax(axis=0)
    return top


def _title_rule(passages: Sequence[Passage], supported: np.ndarray, scores: np.ndarray,
                bar: np.ndarray) -> np.ndarray:
    """(passages × narratives): False where a title supports a narrative that no body
    passage supports, with a score under `bar`."""
    keep = np.ones_like(supported)
    body = np.array([not p.title for p in passages])
    body_supports = supported[body].any(axis=0)
    for i, p in enumerate(passages):
        if p.title:
            keep[i] = body_supports | (scores[i] >= bar)
    return keep


def _best(entry: _Entry, j: int, passages: Sequence[Passage], probes: _Probes,
          top: np.ndarray, supported: np.ndarray, quotable: np.ndarray,
          asserted: tuple[np.ndarray, np.ndarray]) -> PassageScore:
    """Narrative `j`'s evidence (bot/matching/evidence.py), with its figures."""
    if supported.any():
        i = evidence_passage(passages, probes.claim[top, j] + probes.prob[top, j], supported,
                             quotable, asserted)
    else:
        i = int(probes.pos[top, j].argmax())
    k = int(top[i])
    return PassageScore(
        narrative_id=entry.narrative.id, narrative_title=entry.narrative.title,
        threshold=entry.threshold, passage=passages[i], score=float(probes.pos[k, j]),
        counter_score=float(max(probes.neg[k, j], probes.learned[k, j])),
        statement=entry.statement_texts[int(probes.statement[k, j])],
        supported=bool(supported.any()), rank=float(probes.rank[k, j]),
        probability=float(probes.prob[k, j]))


# A reload or a 👎 rebuilds the index from the same hundreds of texts: guess each language once
_text_language = functools.lru_cache(maxsize=16384)(guess_language)


def _vstack(blocks: Sequence[np.ndarray]) -> np.ndarray:
    blocks = [b for b in blocks if len(b)]
    return np.vstack(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)
