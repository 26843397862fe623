"""Masked attention without denormal numbers: one rewrite of an exported graph.

transformers' Swin (and the original UniCL Swin) masks the shifted-window attention by adding -100 to the masked
scores before the softmax. The masked weights, exp(-100) ~ 4e-44, are denormal floats, and x86 CPUs multiply
denormals about a hundred times slower than normal numbers: in ONNX Runtime the attention MatMul of every shifted
block took 5-8x as long as that of its unshifted twin, a fifth of the int8 graph's time (Swin-T, batch 16).
ONNX Runtime's `session.set_denormal_as_zero` avoids it, but it also switches the calling thread to flush
denormals for the rest of the process (measured: torch then flushes too), which is not ours to change. So the
export writes the fill as the float32 minimum, as transformers' other masks do: the masked weights are then exactly
0 instead of 4e-44, and the outputs equal the PyTorch model's to fp32 precision (the export's parity check holds).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from .dependencies import require

__all__ = ["MASK_FILL", "zero_masked_attention_weights"]

MASK_FILL = float(np.finfo(np.float32).min)
# A fill at or below this is a mask (the softmax weight it leaves, exp(-50) ~ 2e-22, is already negligible).
_MASK_THRESHOLD = -50.0
# Ops a mask passes through between its Where and the softmax (Swin: Where -> Where -> ... -> Expand -> Reshape ->
# Add -> Add -> Softmax); the search stops at any other op.
_MASK_PATH_OPS = {"Where", "Expand", "Reshape", "Unsqueeze", "Squeeze", "Add", "Cast", "Transpose", "Tile",
                  "Concat", "Slice", "Gather", "Mul", "Identity"}
_MAX_HOPS = 16


def _scalar_constants(graph) -> dict[str, object]:
    """Output name -> Constant node, for the float scalar Constant nodes of `graph`."""
    numpy_helper = require("onnx").numpy_helper
    found = {}
    for node in graph.node:
        if node.op_type != "Constant":
            continue
        for attribute in node.attribute:
            if attribute.name == "value" and attribute.t.data_type == 1:  # FLOAT
                value = numpy_helper.to_array(attribute.t)
                if value.size == 1:
                    found[node.output[0]] = node
    return found


def _reaches_softmax(start, consumers: dict[str, list]) -> bool:
    """Whether an output of node `start` flows into a Softmax through mask-like ops only."""
    queue, seen = deque([(start, 0)]), set()
    while queue:
        node, hops = queue.popleft()
        for output in node.output:
            for consumer in consumers.get(output, []):
                if consumer.op_type == "Softmax":
                    return True
                if consumer.op_type in _MASK_PATH_OPS and hops < _MAX_HOPS and id(consumer) not in seen:
                    seen.add(id(consumer))
                    queue.append((consumer, hops + 1))
    return False


def zero_masked_attention_weights(path: Path) -> int:
    """Rewrites the graph at `path` in place: every large negative finite fill that a `Where` writes into scores on
    their way to a Softmax (an attention mask) becomes `MASK_FILL` (-inf fills, as in CLIP's causal mask, leave
    exact zeros already and stay). Returns how many fills were rewritten (0: nothing written)."""
    onnx = require("onnx")
    model = onnx.load(str(path))
    graph = model.graph
    constants = _scalar_constants(graph)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = set()
    for node in graph.node:
        if node.op_type != "Where":
            continue
        for name in node.input[1:]:
            constant = constants.get(name)
            if constant is None or name in rewritten:
                continue
            value = onnx.numpy_helper.to_array(constant.attribute[0].t)
            fill = float(value.reshape(-1)[0])
            if np.isfinite(fill) and fill != MASK_FILL and fill <= _MASK_THRESHOLD and _reaches_softmax(node, consumers):
                constant.attribute[0].t.CopyFrom(
                    onnx.numpy_helper.from_array(np.full(value.shape, MASK_FILL, dtype=np.float32)))
                rewritten.add(name)
    if rewritten:
        onnx.save(model, str(path))
    return len(rewritten)
