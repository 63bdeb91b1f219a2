"""Syndicated copies: the same story re-published by other outlets, in the same or another language.

A matching article is a *copy* of an earlier alerted article (its *origin*) when both carry a
common narrative, the origin was seen within the window, and their passages align one to one:
enough of the shorter article's passages have a mutual best partner in the other at
translation-level similarity. Different articles that push the same narrative share a passage
or two, not most of them. A copy is recorded like any article but alerts nobody on its own;
delivery lists it under its origin ("also in: …").

Vectors are the passages' raw embeddings (not centered: translation pairs are judged in the
model's own space), kept for matched articles only, by the store (bot/storage/stories.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from bot.embedding import normalise

STORY_PASSAGES = 12  # passages per article kept for alignment (title + lead + body start)
ALIGNED_SIMILARITY = 0.84  # raw cosine of a passage and its translation (NTREX: p10 ≈ 0.84)
ALIGNED_SHARE = 0.6  # of the shorter article's passages
MAX_LENGTH_RATIO = 2.0


class Origin(Protocol):
    """A stored story that copies nothing (bot.storage.OriginStory)."""

    @property
    def article_key(self) -> str: ...

    @property
    def vectors(self) -> np.ndarray: ...


class StoryStore(Protocol):
    """Where stories are kept (bot.storage.Store)."""

    def story_origins(self, since: datetime,
                      narrative_ids: Collection[str]) -> Sequence[Origin]: ...


def story_vectors(passage_vectors: np.ndarray) -> np.ndarray:
    """The rows kept for alignment: the first passages, L2-normalised."""
    return normalise(passage_vectors[:STORY_PASSAGES])


def is_copy(new: np.ndarray, origin: np.ndarray) -> bool:
    """Most passages of the shorter article have a mutual best partner at translation level."""
    if not len(new) or not len(origin):
        return False
    shorter, longer = sorted((len(new), len(origin)))
    if longer > MAX_LENGTH_RATIO * shorter + 1:
        return False
    sims = new @ origin.T
    best_in_origin = sims.argmax(axis=1)
    mutual = sims.argmax(axis=0)[best_in_origin] == np.arange(len(new))
    aligned = mutual & (sims.max(axis=1) >= ALIGNED_SIMILARITY)
    return int(aligned.sum()) >= max(1, int(np.ceil(ALIGNED_SHARE * shorter)))


class Stories:
    """Finds the origin of a new matching article among the stories of the last `window`."""

    def __init__(self, store: StoryStore, window: timedelta) -> None:
        self.store = store
        self.window = window

    def find_origin(self, narrative_ids: Sequence[str], vectors: np.ndarray,
                    now: datetime) -> str | None:
        """The earliest origin in the window that shares a narrative and aligns with `vectors`."""
        for origin in self.store.story_origins(now - self.window, narrative_ids):
            if origin.vectors.shape[1] == vectors.shape[1] and is_copy(vectors, origin.vectors):
                return origin.article_key
        return None
