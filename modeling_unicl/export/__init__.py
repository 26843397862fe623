"""Deployment: the two towers exported to ONNX (normalised embeddings, dynamic batch), their int8 versions
(ONNX Runtime's dynamic quantization), and `OnnxUniCLModel`, which runs an exported folder in ONNX Runtime wherever
the evaluation code takes a `UniCLModel`.

onnx and onnxruntime are the `export` extra (`pip install "unicl[export]"`); they are imported only when a graph is
exported or a session is opened, and `import modeling_unicl` never imports this room."""

from .folder import EXPORT_CONFIG_FILE, ExportConfig, check_export_folder, graph_file, read_export_config
from .loading import BACKENDS, check_inference_model, load_model_for_inference
from .onnx_export import DEFAULT_OPSET, PARITY_TOLERANCE, export_onnx, export_pretrained
from .onnxruntime_backend import OnnxUniCLModel
from .quantize import INT8_OPTIONS, quantize_graph

__all__ = [
    "BACKENDS",
    "DEFAULT_OPSET",
    "EXPORT_CONFIG_FILE",
    "INT8_OPTIONS",
    "PARITY_TOLERANCE",
    "ExportConfig",
    "OnnxUniCLModel",
    "check_export_folder",
    "check_inference_model",
    "export_onnx",
    "export_pretrained",
    "graph_file",
    "load_model_for_inference",
    "quantize_graph",
    "read_export_config",
]
