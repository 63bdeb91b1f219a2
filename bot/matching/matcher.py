"""The one way from a document to a decision: passages → probes → vectors → a `Verdict`.

The pipeline, `score`, `/score`, `backtest`, `eval` and `calibrate` all judge through a
Matcher, so they share its statements, learned counter-examples and thresholds. A reload or a
learned counter-example swaps the index inside the matcher: whoever holds the matcher sees it.
The rules themselves live in the index (bot/matching/index.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.config import MatchingConfig, Narrative
from bot.embedding import AsyncEmbedder
from bot.feeds import guess_language, make_passages
from bot.matching.index import Centering, NarrativeIndex, PassageScore, passage_rows, probe_texts
from bot.matching.texts import TextVectors, VectorKeeper
from bot.models import Match, Passage


@dataclass(frozen=True)
class Verdict:
    """What the matcher decided about one document, and what it decided on."""

    passages: tuple[Passage, ...]
    vectors: np.ndarray = field(compare=False, repr=False)  # one row per probe text
    scores: tuple[PassageScore, ...]  # each narrative's best passage and why
    index: NarrativeIndex = field(compare=False, repr=False)  # the index that judged
    language: str | None = None  # the document's, which its probes were centred on

    @property
    def matches(self) -> list[Match]:
        """The narratives the document supports, with their evidence."""
        return [Match(narrative_id=s.narrative_id, narrative_title=s.narrative_title,
                      score=s.score, threshold=s.threshold, passage=s.passage,
                      statement=s.statement)
                for s in self.scores if s.supported]

    @property
    def passage_vectors(self) -> np.ndarray:
        """Each passage's own vector (its first probe), in passage order."""
        return np.asarray(self.vectors[passage_rows(self.passages)])

    def eligible(self) -> dict[str, float | None]:
        """Each narrative's best score among passages that pass every rule but the threshold
        (None when none does): the document alerts exactly when it reaches the threshold.
        What `calibrate` chooses thresholds from."""
        relaxed = self.index.score(self.passages, self.vectors, language=self.language,
                                   ignore_thresholds=True)
        return {s.narrative_id: s.score if s.supported else None for s in relaxed}


class Matcher:
    """Narratives (with learned counter-examples) and the shared embedding queue."""

    def __init__(self, narratives: Sequence[Narrative], embedder: AsyncEmbedder,
                 settings: MatchingConfig, *, centering: Centering | None = None,
                 reference_texts: Sequence[str] = (),
                 learned: Mapping[str, Sequence[str]] | None = None,
                 keeper: VectorKeeper | None = None) -> None:
        """`learned`: counter-examples taken from feedback, by narrative id;
        `reference_texts`: ordinary news, the lexical score's idea of common words and the
        classifiers' everyday negatives; `keeper`: where the vectors of narrative texts are
        kept across restarts (the state)."""
        self.embedder = embedder
        self.texts = TextVectors(embedder.embedder, keeper)
        self.settings = settings
        self.index_options: dict[str, Any] = {
            "default_threshold": settings.threshold, "counter_margin": settings.counter_margin,
            "exclusive": settings.exclusive, "centering": centering or Centering(),
            "lexical_weight": settings.lexical_weight, "reference_texts": list(reference_texts),
            "min_probability": settings.min_probability, "title_margin": settings.title_margin}
        self._narratives = list(narratives)
        self._index = self._build(self._narratives, learned or {})

    @property
    def narratives(self) -> list[Narrative]:
        """The narratives as loaded (without the learned counter-examples)."""
        return self._narratives

    @property
    def index(self) -> NarrativeIndex:
        return self._index

    @property
    def centering(self) -> Centering:
        return self._index.centering

    def reload(self, narratives: Sequence[Narrative],
               learned: Mapping[str, Sequence[str]]) -> None:
        """Judge with `narratives` from now on (blocking: it embeds their statements)."""
        index = self._build(narratives, learned)
        self._index, self._narratives = index, list(narratives)

    def learn_counter_example(self, narrative_id: str, text: str) -> None:
        """`text` counts against the narrative from now on (blocking: it embeds the text)."""
        self._index.add_counter_examples(narrative_id, [text],
                                         self.embedder.encode_blocking([text]))

    def passages(self, title: str, text: str) -> list[Passage]:
        return make_passages(title, text, max_chars=self.settings.passage_chars,
                             max_passages=self.settings.max_passages)

    async def judge(self, title: str, text: str, language: str | None = None) -> Verdict:
        """Split off the event loop, embed through the shared queue, decide off the loop.
        `language`: the article's (declared by its feed, or guessed); guessed when None."""
        passages, probes = await asyncio.to_thread(self._split, title, text)
        vectors = await self.embedder.encode(probes)
        # A learned counter-example replaces the index's arrays whole, so a decision in a
        # thread never sees them half-built.
        return await asyncio.to_thread(self._decide, passages, vectors, language)

    def judge_blocking(self, title: str, text: str, language: str | None = None) -> Verdict:
        """The same steps in the calling thread, the model called directly (CLI, eval)."""
        passages, probes = self._split(title, text)
        return self._decide(passages, self.embedder.encode_blocking(probes), language)

    def _decide(self, passages: Sequence[Passage], vectors: np.ndarray,
                language: str | None) -> Verdict:
        index = self._index
        if language is None and index.centering.by_language:
            language = guess_language("\n".join(p.text for p in passages))
        scores = tuple(index.score(passages, vectors, language=language))
        return Verdict(tuple(passages), vectors, scores, index, language)

    def _split(self, title: str, text: str) -> tuple[list[Passage], list[str]]:
        passages = self.passages(title, text)
        return passages, probe_texts(passages)

    def _build(self, narratives: Sequence[Narrative],
               learned: Mapping[str, Sequence[str]]) -> NarrativeIndex:
        return NarrativeIndex(narratives, self.texts, learned=learned, **self.index_options)
