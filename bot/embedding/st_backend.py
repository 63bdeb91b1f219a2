"""The `sentence-transformers` backend: any model name or local directory a deployment has.

Needs the `[st]` extra (torch); it never reaches a model hub unless `allow_download` says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bot.embedding.base import EmbedderError, encode_batched


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, loaded from a local directory or the local HF cache."""

    def __init__(self, model: str, *, prefix: str = "", batch_size: int = 32,
                 allow_download: bool = False) -> None:
        if not allow_download:
            # Never reach a model hub unless the deployment says so.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "backend 'sentence-transformers' needs the extra: pip install 'narrative-bot[st]'"
            ) from exc
        try:
            self._model = SentenceTransformer(model, device="cpu")
        except Exception as exc:
            raise EmbedderError(
                f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        self.name = f"sentence-transformers:{model}"
        dimension = (getattr(self._model, "get_embedding_dimension", None)
                     or self._model.get_sentence_embedding_dimension)
        dim = dimension()
        self.dim = int(dim) if dim else int(self._model.encode(["x"]).shape[1])
        self.prefix = prefix
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        def run(chunk: list[str]) -> np.ndarray:
            return self._model.encode([self.prefix + t for t in chunk], batch_size=len(chunk),
                                      convert_to_numpy=True, show_progress_bar=False)

        return encode_batched(run, texts, self.dim, self.batch_size)
