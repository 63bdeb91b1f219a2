"""The vectors of a narrative's own texts, embedded once per model and kept.

Building an index embeds every statement, example and counter-example (hundreds of texts per
narrative) and the ordinary news its classifiers learn from. They rarely change, so their
vectors are kept in memory for the life of the process (a reload, a 👎, the tests) and, given
a keeper (bot.storage's machine-wide vector file), across restarts; only texts never seen are
embedded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from bot.embedding import Embedder


class VectorKeeper(Protocol):
    """Where vectors outlive the process (bot.storage.vectors.VectorFile)."""

    def cached_vectors(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]: ...

    def keep_vectors(self, model: str, texts: Sequence[str], vectors: np.ndarray) -> None: ...


# One memo per model name: a model loaded twice in one process (a reload, the tests) embeds
# each text once.
_MEMOS: dict[str, dict[str, np.ndarray]] = {}
_LOCK = threading.Lock()


class TextVectors:
    """An Embedder for narrative texts: memo first, then the keeper, then the model."""

    def __init__(self, embedder: Embedder, keeper: VectorKeeper | None = None) -> None:
        self.embedder = embedder
        self.keeper = keeper
        # a model without a name (a test's encoder) gets a memo of its own
        self.name = getattr(embedder, "name", "") or f"unnamed:{id(embedder)}"
        self.dim = getattr(embedder, "dim", 0)
        with _LOCK:
            self._memo = _MEMOS.setdefault(self.name, {})

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if missing and self.keeper is not None:
            self._memo.update(self.keeper.cached_vectors(self.name, missing))
            missing = [t for t in missing if t not in self._memo]
        if missing:
            vectors = self.embedder.encode(missing)
            self._memo.update(zip(missing, vectors, strict=True))
            if self.keeper is not None:
                self.keeper.keep_vectors(self.name, missing, vectors)
        if not texts:
            return self.embedder.encode([])
        return np.stack([self._memo[t] for t in texts]).astype(np.float32)
