"""int8 graphs: ONNX Runtime's dynamic quantization (weights to int8 once, activations quantized per call from their
observed range), which needs no calibration data. `export_onnx(..., int8=True)` applies it to the image tower only
(`folder.INT8_TOWERS`)."""

from __future__ import annotations

import logging
from pathlib import Path

from .dependencies import require

__all__ = ["INT8_OPTIONS", "count_quantized_layers", "quantize_graph"]

# The linear layers (MatMul with a constant weight) become int8, with one scale per output channel (Gather would
# quantize a token embedding: the text tower is not quantized, see `folder.INT8_TOWERS`); Swin's patch embedding (a 4x4 Conv, <1% of the FLOPs) stays fp32, and so do the two projections
# (`keep_fp32`: nodes whose name contains one of these), one small matmul per embedding whose error lands directly on
# the cosine. Measured against per-tensor scales and all projections quantized (README, Deployment): the image
# embeddings' largest cosine distance to fp32 fell from 7.6e-4 to 2.8e-4 on Swin-T and from 2.4e-4 to 8e-5 on the
# main job's model, at the same speed.
INT8_OPTIONS = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False,
                "op_types_to_quantize": ["MatMul"], "keep_fp32": ["projection/MatMul"]}


def _nodes_named(path: Path, patterns: list[str]) -> list[str]:
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if any(pattern in node.name for pattern in patterns)]


def quantize_graph(source: Path, target: Path, options: dict | None = None) -> dict:
    """Writes the dynamically quantized int8 version of the graph `source` to `target`; returns the options used
    (`INT8_OPTIONS` by default)."""
    quantization = require("onnxruntime.quantization")
    options = dict(INT8_OPTIONS if options is None else options)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint at WARNING on the root logger, every call
    try:
        quantization.quantize_dynamic(
            model_input=str(source),
            model_output=str(target),
            weight_type=getattr(quantization.QuantType, options["weight_type"]),
            per_channel=options["per_channel"],
            reduce_range=options["reduce_range"],
            op_types_to_quantize=options["op_types_to_quantize"],
            nodes_to_exclude=_nodes_named(Path(source), options["keep_fp32"]),
        )
    finally:
        root.setLevel(level)
    return {**options, "quantized_layers": count_quantized_layers(Path(target))}


# the integer kernels that dynamic quantization puts in place of a float MatMul / Conv
QUANTIZED_OP_TYPES = ("MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger")


def count_quantized_layers(path: Path) -> int:
    """How many layers of the graph at `path` compute in int8. Zero for a tower without linear layers (a ResNet is
    convolutions + one projection, which stays fp32): its int8 graph computes what the fp32 graph does."""
    onnx = require("onnx")
    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(node.op_type in QUANTIZED_OP_TYPES for node in graph.node)
