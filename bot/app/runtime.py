"""Assemble the running parts from a config file: settings, store, embedder, narrative index.

The CLI and the tests build the bot the same way through `Runtime.open`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Config, Narrative, load_config, load_narratives
from bot.embedding.embedder import AsyncEmbedder, Embedder, load_embedder
from bot.feeds.text import make_passages
from bot.matching.index import Centering, NarrativeIndex, PassageScore, probe_texts
from bot.models import Passage
from bot.storage.store import Store

log = logging.getLogger(__name__)


def load_settings(config_path: Path) -> tuple[Config, list[Narrative]]:
    """Validate config.toml and every narrative file; raises ConfigError, touches nothing."""
    config = load_config(config_path)
    return config, load_narratives(config.narratives_dir)


def models_dir(config: Config) -> Path:
    """Where converted models live: $NARRATIVE_BOT_MODELS, else the user's cache (one
    conversion serves every config and state file on the machine)."""
    configured = os.environ.get("NARRATIVE_BOT_MODELS", "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "narrative-bot"


def background_sentences(path: Path | None) -> list[str]:
    if path is None:
        text = resources.files("bot").joinpath("data/background.txt").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def background_centering(config: Config, embedder: Embedder, store: Store) -> Centering:
    """The mean embedding of ordinary news, computed once per model and background and cached."""
    if not config.matching.centering:
        return Centering()
    sentences = background_sentences(config.matching.background_file)
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:16]
    key = f"background_mean:{embedder.name}:{digest}"
    cached = store.get_meta(key)
    if cached is not None:
        return Centering(np.asarray(json.loads(cached), dtype=np.float32))
    log.info("computing the background mean over %d sentences (once per model)", len(sentences))
    mean = embedder.encode(sentences).mean(axis=0)
    store.set_meta(key, json.dumps([round(float(x), 7) for x in mean]))
    return Centering(mean.astype(np.float32))


def build_index(config: Config, narratives: Sequence[Narrative], embedder: Embedder,
                centering: Centering, learned: Mapping[str, Sequence[str]]) -> NarrativeIndex:
    with_feedback = [n.model_copy(update={"counter_examples": [
        *n.counter_examples, *learned.get(n.id, ())]}) for n in narratives]
    return NarrativeIndex(with_feedback, embedder, **index_options(config, centering))


def index_options(config: Config, centering: Centering) -> dict[str, Any]:
    """NarrativeIndex settings from `[matching]`, shared by the bot and the eval."""
    matching = config.matching
    return {"default_threshold": matching.threshold, "counter_margin": matching.counter_margin,
            "exclusive": matching.exclusive, "centering": centering,
            "lexical_weight": matching.lexical_weight,
            "reference_texts": background_sentences(matching.background_file)}


@dataclass
class Runtime:
    config: Config
    narratives: list[Narrative]
    store: Store
    embedder: AsyncEmbedder
    index: NarrativeIndex

    @classmethod
    def open(cls, config: Config, narratives: list[Narrative], store: Store | None = None,
             embedder: Embedder | None = None,
             learned: Mapping[str, Sequence[str]] | None = None) -> Runtime:
        """`learned`: counter-examples taken from feedback, by narrative id."""
        store = store or Store(config.state.path)
        embedder = embedder or load_embedder(config.model, models_dir=models_dir(config))
        centering = background_centering(config, embedder, store)
        index = build_index(config, narratives, embedder, centering, learned or {})
        queue = AsyncEmbedder(embedder, cache_entries=config.model.cache_entries)
        return cls(config, narratives, store, queue, index)

    def reload(self, learned: Mapping[str, Sequence[str]]) -> list[Narrative]:
        """Read narratives_dir again and swap the index; on ConfigError the old set stays."""
        narratives = load_narratives(self.config.narratives_dir)
        self.index = build_index(self.config, narratives, self.embedder.embedder,
                                 self.index.centering, learned)
        self.narratives = narratives
        return narratives

    def learn_counter_example(self, narrative_id: str, text: str) -> None:
        """Use `text` as a counter-example of the narrative from now on (no reload needed)."""
        self.index.add_counter_examples(narrative_id, self.embedder.encode_blocking([text]))

    def score(self, title: str, text: str) -> tuple[list[Passage], list[PassageScore]]:
        """Passages of a document and each narrative's best score: how analysts tune seeds."""
        passages = self.passages(title, text)
        vectors = self.embedder.encode_blocking(probe_texts(passages))
        return passages, self.index.score(passages, vectors)

    def passages(self, title: str, text: str) -> list[Passage]:
        matching = self.config.matching
        return make_passages(title, text, max_chars=matching.passage_chars,
                             max_passages=matching.max_passages)

    def eligible_scores(self, title: str, text: str) -> dict[str, float | None]:
        """Each narrative's score as the threshold sees it (None: another rule says no)."""
        passages = self.passages(title, text)
        vectors = self.embedder.encode_blocking(probe_texts(passages))
        return self.index.eligible_scores(passages, vectors)

    def close(self) -> None:
        self.store.close()
