"""The export writes Swin's attention-mask fill (-100) as the float32 minimum, so that the masked softmax weights are
exactly 0 rather than denormal numbers (exp(-100) ~ 4e-44), which x86 multiplies ~100x slower
(modeling_unicl/export/masked_attention.py)."""

import numpy as np
import pytest
import torch
from conftest import TINY_CLIP_TEXT, tiny_config, tiny_processor

onnx = pytest.importorskip("onnx", reason="the export extra (onnx, onnxruntime) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

from onnx import TensorProto, helper  # noqa: E402

from modeling_unicl import UniCLModel  # noqa: E402
from modeling_unicl.export import export_onnx, graph_file  # noqa: E402
from modeling_unicl.export.masked_attention import MASK_FILL, zero_masked_attention_weights  # noqa: E402
from modeling_unicl.export.onnx_export import _export_graphs  # noqa: E402

# One stage of two blocks over 8x8 patches in 4x4 windows: the second block attends in shifted windows, with a mask.
SHIFTED_SWIN = dict(model_type="swin", image_size=32, patch_size=4, embed_dim=16, depths=[2], num_heads=[2],
                    window_size=4, drop_path_rate=0.0)


@pytest.fixture(scope="module")
def shifted_model():
    torch.manual_seed(0)
    return UniCLModel(tiny_config(vision=dict(SHIFTED_SWIN), text=dict(TINY_CLIP_TEXT))).eval()


def _softmax_outputs(path, pixel_values: np.ndarray) -> list[np.ndarray]:
    """Every Softmax output of the image graph at `path` on `pixel_values` (made graph outputs for the run)."""
    model = onnx.load(str(path))
    softmaxes = [node.output[0] for node in model.graph.node if node.op_type == "Softmax"]
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in softmaxes)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(softmaxes, {"pixel_values": pixel_values})


def _denormal_count(arrays) -> int:
    tiny = np.finfo(np.float32).tiny
    return int(sum(((a != 0) & (np.abs(a) < tiny)).sum() for a in arrays))


def test_masked_softmax_weights_are_zero_not_denormal(shifted_model, tmp_path):
    pixel_values = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    _export_graphs(shifted_model, tiny_processor().tokenizer, tmp_path, opset=17)
    image_graph = tmp_path / graph_file("image")
    assert _denormal_count(_softmax_outputs(image_graph, pixel_values)) > 0  # as traced: exp(-100) weights

    assert zero_masked_attention_weights(image_graph) == 1  # the shifted block's mask
    weights = _softmax_outputs(image_graph, pixel_values)
    assert _denormal_count(weights) == 0
    assert sum(int((w == 0).sum()) for w in weights) > 0  # the masked pairs: exactly 0
    assert zero_masked_attention_weights(image_graph) == 0  # already rewritten: nothing to do, nothing written


def test_export_records_the_rewrite_and_keeps_parity(shifted_model, tmp_path):
    config = export_onnx(shifted_model, tiny_processor(), tmp_path / "onnx", int8=True)
    assert config.attention_mask_fills_rewritten == {"image": 1, "text": 0}  # CLIP's masks fill -inf: exact zeros
    assert max(config.parity_max_abs_diff.values()) <= 1e-5
    assert _denormal_count(_softmax_outputs(tmp_path / "onnx" / graph_file("image", int8=True),
                                            np.ones((1, 3, 32, 32), np.float32))) == 0


def _graph(fill: float, to_softmax: bool):
    """scores -> Where(mask, fill, scores) -> Add(bias) -> Softmax (or Relu)."""
    nodes = [
        helper.make_node("Constant", [], ["fill"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [fill])),
        helper.make_node("Where", ["mask", "fill", "scores"], ["masked"]),
        helper.make_node("Add", ["masked", "scores"], ["biased"]),
        helper.make_node("Softmax" if to_softmax else "Relu", ["biased"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]),
                     helper.make_tensor_value_info("scores", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _fill_of(path) -> float:
    node = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "Constant")
    return float(onnx.numpy_helper.to_array(node.attribute[0].t))


@pytest.mark.parametrize("fill, to_softmax, rewritten", [
    (-100.0, True, True),  # Swin's mask
    (-1e9, True, True),
    (-100.0, False, False),  # not on the way to a softmax: not a mask
    (-1.0, True, False),  # too small to be a mask fill
    (float("-inf"), True, False),  # leaves exact zeros already
    (0.0, True, False),
])
def test_only_mask_fills_on_the_way_to_a_softmax_are_rewritten(tmp_path, fill, to_softmax, rewritten):
    path = tmp_path / "g.onnx"
    onnx.save(_graph(fill, to_softmax), str(path))
    assert zero_masked_attention_weights(path) == int(rewritten)
    assert _fill_of(path) == (MASK_FILL if rewritten else np.float32(fill))
