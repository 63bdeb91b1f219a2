"""Lexical similarity: TF-IDF cosine between texts, for ranking beside the embedding score.

Embeddings confuse topic with claim; shared rare words ("vassal", "homeland", "Qing") are
strong evidence that a passage restates a particular narrative when both are in one language.
Words are folded like keyword guards (bot/matching/guard.py); scripts without spaces contribute
character bigrams. IDF comes from a reference corpus (ordinary news plus the statements), so
words every article uses weigh little.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from bot.matching.guard import fold

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


@lru_cache(maxsize=2048)  # a passage and its sentences are scored once per narrative set
def terms(text: str) -> tuple[str, ...]:
    """Folded words (≥ 3 letters) and, for Chinese runs, character bigrams."""
    folded = fold(text)
    out = [w for w in _WORD.findall(_HAN.sub(" ", folded)) if len(w) >= 3]
    for run in _HAN.findall(folded):
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return tuple(out)


class LexicalIndex:
    """TF-IDF vectors of a fixed set of statements; cosine to any text in [0, 1].

    Only the statements' own terms can add to a cosine, so they alone are indexed: a text
    costs a lookup per distinct word and one small weighted sum, never a dense matrix (which
    would also wake the BLAS threads the embedding model needs)."""

    def __init__(self, statements: Sequence[str], reference: Iterable[str] = ()) -> None:
        documents = [set(terms(t)) for t in (*reference, *statements)]
        frequency = Counter(term for doc in documents for term in doc)
        total = len(documents)
        self._idf = {t: math.log((total + 1) / (n + 1)) + 1.0 for t, n in frequency.items()}
        self._default_idf = math.log(total + 1) + 1.0
        own = sorted(set().union(*documents[len(documents) - len(statements):]))
        self._column = {t: i for i, t in enumerate(own)}
        by_term = np.zeros((len(own), len(statements)), dtype=np.float32)
        for row, text in enumerate(statements):
            for term, weight in self._vector(text).items():
                by_term[self._column[term], row] = weight
        self._by_term = by_term  # term × statement weights

    def _vector(self, text: str) -> dict[str, float]:
        counts = Counter(terms(text))
        weights = {t: (1 + math.log(n)) * self._idf.get(t, self._default_idf)
                   for t, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {t: w / norm for t, w in weights.items()}

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """(texts × statements) TF-IDF cosine; terms unknown to the statements add nothing."""
        out = np.zeros((len(texts), self._by_term.shape[1]), dtype=np.float32)
        if not self._by_term.size:
            return out
        for row, text in enumerate(texts):
            columns, weights, norm = self._shared_weights(text)
            if columns:
                out[row] = (np.asarray(weights, dtype=np.float32) / norm) @ self._by_term[columns]
        return out

    def _shared_weights(self, text: str) -> tuple[list[int], list[float], float]:
        """The statements' columns of the text's terms, their raw weights, and the norm over
        all its terms: `_vector` restricted to the statements, in one pass (the hot path)."""
        idf, default, column_of = self._idf.get, self._default_idf, self._column.get
        columns: list[int] = []
        weights: list[float] = []
        squares = 0.0
        for term, n in Counter(terms(text)).items():
            weight = (1 + math.log(n)) * idf(term, default)
            squares += weight * weight
            if (column := column_of(term)) is not None:
                columns.append(column)
                weights.append(weight)
        return columns, weights, math.sqrt(squares) or 1.0
