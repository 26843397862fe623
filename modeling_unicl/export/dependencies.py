"""onnx and onnxruntime are optional (the `export` extra): imported only when an export or a session is made, with
an error that says how to install them."""

from __future__ import annotations

import importlib

INSTALL_HINT = 'pip install "unicl[export]"  (onnx and onnxruntime)'


def require(module: str):
    """Imports `module` (e.g. "onnxruntime", "onnxruntime.quantization"); an ImportError says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is needed for the ONNX export and the ONNX Runtime backend: {INSTALL_HINT}") from error
