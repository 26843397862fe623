"""One way for the evaluation scripts to get a model for inference, whichever runtime runs it: a saved UniCL folder
in PyTorch, or an exported folder in ONNX Runtime (fp32 or int8)."""

from __future__ import annotations

import os

from .folder import check_export_folder

__all__ = ["BACKENDS", "check_inference_model", "load_model_for_inference"]

BACKENDS = ("pytorch", "onnxruntime")


def check_inference_model(model_path: str | os.PathLike, backend: str = "pytorch", int8: bool = False) -> None:
    """Fails early (`ValueError` / `OSError` naming the problem) when `model_path` cannot run on `backend`: an
    unknown backend, int8 asked of PyTorch, a folder that is not a UniCL model (pytorch) or not a complete export
    (onnxruntime, with the int8 image graph when `int8`)."""
    from ..utils.checks import check_unicl_folder

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend == "pytorch":
        if int8:
            raise ValueError("int8 graphs run on the onnxruntime backend only, from a folder exported with them.")
        check_unicl_folder(os.fspath(model_path))
    else:
        check_export_folder(model_path, int8=int8)


def load_model_for_inference(model_path: str | os.PathLike, backend: str = "pytorch", int8: bool = False):
    """A `UniCLModel` in eval mode (pytorch), or an `OnnxUniCLModel` of an exported folder (onnxruntime; its int8
    graphs with `int8`). Both work in `ZeroShotClassifier`, `evaluate_zero_shot` and `extract_image_embeddings`;
    the processor of either is `UniCLProcessor.from_pretrained(model_path)`."""
    check_inference_model(model_path, backend, int8)
    if backend == "pytorch":
        from ..modeling_unicl import UniCLModel

        return UniCLModel.from_pretrained(model_path).eval()
    from .onnxruntime_backend import OnnxUniCLModel

    return OnnxUniCLModel.from_exported(model_path, int8=int8)
