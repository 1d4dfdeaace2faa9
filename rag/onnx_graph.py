"""The bundled BERT (all-MiniLM-L6-v2) written out as an ONNX graph straight from its weights.

No torch: the graph is assembled with `onnx.helper` from the safetensors file, op by op as
transformers' eager BertModel computes it (embeddings + LayerNorm; per layer self-attention
with the additive padding mask, output projection + residual + LayerNorm, GELU feed-forward +
residual + LayerNorm), with the same inputs and output as a torch export: input_ids,
attention_mask, token_type_ids -> last_hidden_state. Building it takes about a second instead
of the ~10 s torch export, and torch stays an optional reference (`paperchat[reference]`).
tests/test_onnx_encoder.py checks its vectors against sentence-transformers on torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17  # LayerNormalization is a standard op from 17 on


def build_bert_graph(model_dir: Path, out: Path) -> None:
    """Write `model_dir`'s BertModel (no pooler) as ONNX to `out`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"{model_dir}: expected a BERT model with GELU, got {config}")
    weights = load_file(str(model_dir / "model.safetensors"))
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])

    nodes: list[Any] = []
    initializers: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def weight(key: str) -> str:
        return const(key, weights[key].astype(np.float32))

    def linear(x: str, prefix: str, name: str) -> str:
        # torch's Linear stores (out, in); MatMul wants (in, out).
        w = const(f"{prefix}.weight.T", weights[f"{prefix}.weight"].T.astype(np.float32))
        product = node("MatMul", [x, w], f"{name}/MatMul")
        return node("Add", [product, weight(f"{prefix}.bias")], f"{name}/Add")

    def layer_norm(x: str, prefix: str, name: str) -> str:
        return node(
            "LayerNormalization",
            [x, weight(f"{prefix}.weight"), weight(f"{prefix}.bias")],
            name,
            axis=-1,
            epsilon=eps,
        )

    # Embeddings: word + position (0..T-1) + token type, then LayerNorm.
    # Positions as the torch export has them: the first T of a constant 0..511 row (1, T).
    # (A Range over a scalar length here tripped ONNX Runtime's embedding fusion.)
    length = node("Shape", ["input_ids"], "seq_len", start=1, end=2)  # 1-D, [T]
    positions = node(
        "Slice",
        [const("position_ids", np.arange(config["max_position_embeddings"], dtype=np.int64)[None]),
         const("zero_1d", np.array([0], dtype=np.int64)), length,
         const("axis_1d", np.array([1], dtype=np.int64))],
        "positions",
    )  # fmt: skip
    summed = node(
        "Add",
        [
            node("Add", [
                node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"],
                     "word_emb"),
                node("Gather", [weight("embeddings.position_embeddings.weight"), positions],
                     "pos_emb"),
            ], "word_pos"),
            node("Gather", [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
                 "type_emb"),
        ],
        "emb_sum",
    )  # fmt: skip
    x = layer_norm(summed, "embeddings.LayerNorm", "emb_ln")

    # Padding mask as an additive bias (B, 1, 1, T): 0 where attended, float32 min elsewhere,
    # as transformers' eager attention does.
    mask = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inverted = node("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), mask], "mask_inv")
    bias = node(
        "Mul", [inverted, const("min_f", np.array(np.finfo(np.float32).min, np.float32))],
        "mask_bias_2d",
    )  # fmt: skip
    bias = node("Unsqueeze", [bias, const("axes12", np.array([1, 2], np.int64))], "mask_bias")

    split_shape = const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    one_f = "one_f"

    for i in range(int(config["num_hidden_layers"])):
        p, n = f"encoder.layer.{i}", f"/layer.{i}"

        def heads_of(kind: str, perm: list[int], x: str = x, p: str = p, n: str = n) -> str:
            projected = linear(x, f"{p}.attention.self.{kind}", f"{n}/{kind}")
            split = node("Reshape", [projected, split_shape], f"{n}/{kind}/split")
            return node("Transpose", [split], f"{n}/{kind}/heads", perm=perm)

        q = heads_of("query", [0, 2, 1, 3])  # B, H, T, D
        k = heads_of("key", [0, 2, 3, 1])  # B, H, D, T
        v = heads_of("value", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"{n}/qk"), scale], f"{n}/scaled")
        probs = node("Softmax", [node("Add", [scores, bias], f"{n}/masked")], f"{n}/probs",
                     axis=-1)  # fmt: skip
        context = node("MatMul", [probs, v], f"{n}/context")
        context = node("Transpose", [context], f"{n}/context_t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge_shape], f"{n}/context_merged")
        attended = linear(context, f"{p}.attention.output.dense", f"{n}/attn_out")
        x = layer_norm(
            node("Add", [attended, x], f"{n}/attn_residual"), f"{p}.attention.output.LayerNorm",
            f"{n}/attn_ln",
        )  # fmt: skip
        inner = linear(x, f"{p}.intermediate.dense", f"{n}/ffn_in")
        # GELU, exact (erf) form as BERT's "gelu": 0.5 * h * (1 + erf(h / sqrt 2)).
        erf = node("Erf", [node("Div", [inner, sqrt2], f"{n}/gelu_div")], f"{n}/gelu_erf")
        gelu = node(
            "Mul", [node("Mul", [inner, half], f"{n}/gelu_half"),
                    node("Add", [erf, one_f], f"{n}/gelu_add")], f"{n}/gelu",
        )  # fmt: skip
        projected = linear(gelu, f"{p}.output.dense", f"{n}/ffn_out")
        x = layer_norm(node("Add", [projected, x], f"{n}/ffn_residual"), f"{p}.output.LayerNorm",
                       f"{n}/ffn_ln")  # fmt: skip

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    dims = ["batch", "tokens"]
    graph = helper.make_graph(
        nodes,
        "bert",
        [helper.make_tensor_value_info(name, TensorProto.INT64, dims)
         for name in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       [*dims, hidden])],
        initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime this project supports
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
