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

    def _weights(self, text: str) -> tuple[dict[str, float], float]:
        """Each term's TF-IDF weight in `text`, and their norm."""
        idf, default = self._idf.get, self._default_idf
        weights = {t: (1 + math.log(n)) * idf(t, default) for t, n in Counter(terms(text)).items()}
        return weights, math.sqrt(sum(w * w for w in weights.values())) or 1.0

    def _vector(self, text: str) -> dict[str, float]:
        weights, norm = self._weights(text)
        return {t: w / norm for t, w in weights.items()}

    def similarity(self, texts: Sequence[str]) -> np.ndarray:
        """(texts × statements) TF-IDF cosine; terms unknown to the statements add nothing."""
        out = np.zeros((len(texts), self._by_term.shape[1]), dtype=np.float32)
        if not self._by_term.size:
            return out
        column_of = self._column.get
        for row, text in enumerate(texts):
            weights, norm = self._weights(text)
            # only the statements' own terms can add to the cosine (the norm counts them all)
            shared = [(column, w) for t, w in weights.items()
                      if (column := column_of(t)) is not None]
            if shared:
                columns, values = zip(*shared, strict=True)
                out[row] = (np.asarray(values, dtype=np.float32) / norm) @ self._by_term[
                    list(columns)]
        return out
