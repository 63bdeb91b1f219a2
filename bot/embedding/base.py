"""The contract every embedding backend keeps, and the helpers they share.

`Embedder.encode(texts) -> float32 (n, dim)`, each row L2-normalised; a model that cannot be
loaded or used raises `EmbedderError` with a reason worded for the operator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class EmbedderError(RuntimeError):
    """The configured model cannot be loaded or used."""


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32, each row (or the one vector) scaled to unit length; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def encode_batched(run: Callable[[list[str]], np.ndarray], texts: Sequence[str], dim: int,
                   batch_size: int) -> np.ndarray:
    """`run` over `texts` in batches of `batch_size`; rows stacked in order and normalised."""
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    parts = [np.asarray(run(list(texts[i:i + batch_size])), dtype=np.float32).reshape(-1, dim)
             for i in range(0, len(texts), batch_size)]
    return normalise(np.vstack(parts))
