"""The shared embedding queue and its vector cache: one model, many concurrent callers.

`AsyncEmbedder` runs a blocking `Embedder` off the event loop in its own thread and shares its
batches between callers; `VectorCache` keeps recent texts' vectors so a text seen again (a
re-polled feed, a syndicated copy) is not encoded twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bot.embedding.base import Embedder

log = logging.getLogger(__name__)

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
        self.observe: Callable[[float], None] | None = None  # each request's wait, in s

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
        started = time.perf_counter()
        try:
            return await request.future
        finally:
            if self.observe is not None:
                self.observe(time.perf_counter() - started)

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
