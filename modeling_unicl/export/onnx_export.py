"""Export of a UniCL model's two towers to ONNX with `torch.onnx.export` (the TorchScript exporter, `dynamo=False`).

Why this exporter: optimum's exporters do not cover the model (optimum-onnx 0.1 requires transformers < 4.58 and
knows no "unicl" model type), and torch's dynamo exporter (torch 2.13, onnxscript 0.7) fails on transformers' Swin
with a dynamic batch axis (a `view` in the window attention: "Cannot view a tensor with shape [4*s, 16, 2, 8]"); it
exports the CLIP text tower. The
TorchScript exporter traces both towers with dynamic batch (and text length) axes; every export is checked against
the PyTorch model on inputs other than the traced ones (batch sizes 1 and 3, texts of different lengths, padded and
not) and refused beyond `tolerance`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .dependencies import require
from .folder import INT8_TOWERS, TOWERS, ExportConfig, graph_file
from .masked_attention import zero_masked_attention_weights
from .quantize import quantize_graph
from .towers import ImageEncoder, TextEncoder

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPSET", "PARITY_TOLERANCE", "export_onnx", "export_pretrained"]

DEFAULT_OPSET = 17  # LayerNormalization is one op from 17 on; the TorchScript exporter goes up to 20
MAX_OPSET = 20
PARITY_TOLERANCE = 1e-4  # max |diff| of the normalised fp32 embeddings against PyTorch
EXPORTER = "torch.onnx.export, TorchScript exporter (dynamo=False)"

# Texts of very different lengths: a batch of them is padded, and the text graph must pool every row at its own
# end-of-text token whatever the padding.
_PARITY_TEXTS = ["a photo of a cat.", "a dog", "an extremely detailed photograph of a small red bird sitting on a branch "
                 "in the rain next to a tall old tree.", "x"]


def _check_arguments(output_dir: Path, opset: int, overwrite: bool) -> None:
    if not isinstance(opset, int) or not DEFAULT_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be an integer from {DEFAULT_OPSET} to {MAX_OPSET} (the TorchScript exporter's "
                         f"range with one LayerNormalization op), got {opset!r}.")
    if output_dir.is_symlink() or (output_dir.exists() and not output_dir.is_dir()):
        raise ValueError(f"output folder {output_dir} exists and is not a directory.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"output folder {output_dir} exists and is not empty; pass overwrite=True to replace "
                         "it.")


def _check_model(model) -> None:
    dtypes = {parameter.dtype for parameter in model.parameters()}
    if dtypes != {torch.float32} or any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError(f"export_onnx exports an fp32 model on the CPU; got dtypes {sorted(map(str, dtypes))} on "
                         f"{sorted({p.device.type for p in model.parameters()})}: call model.float().cpu() first.")


def _text_inputs(tokenizer, texts, padding="longest", max_length=None) -> dict[str, torch.Tensor]:
    tokens = tokenizer(texts, padding=padding, max_length=max_length, truncation=True, return_tensors="pt")
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}


def _export_graphs(model, tokenizer, folder: Path, opset: int) -> None:
    vision = model.config.vision_config
    generator = torch.Generator().manual_seed(0)  # not the global RNG: exporting leaves the caller's draws alone
    pixel_values = torch.randn(2, vision.num_channels, vision.image_size, vision.image_size, generator=generator)
    text = _text_inputs(tokenizer, _PARITY_TEXTS[:2])  # padded: the traced graph keeps the padding-mask path
    with warnings.catch_warnings():
        # The towers' Python shape checks and Swin's window padding are traced as constants; they depend only on the
        # image size (fixed in the graph) and the checks passed, so torch's TracerWarnings about them are expected.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is chosen on purpose (module docstring); its deprecation notices say nothing new.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        # Its advice about negative indices does not apply: the indexed positions (CLIP's end-of-text token, Swin's
        # relative position table) are never negative.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
        torch.onnx.export(
            ImageEncoder(model), (pixel_values,), str(folder / graph_file("image")), dynamo=False,
            input_names=["pixel_values"], output_names=["image_embeds"], opset_version=opset,
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        )
        torch.onnx.export(
            TextEncoder(model), (text["input_ids"], text["attention_mask"]), str(folder / graph_file("text")),
            dynamo=False, input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
            opset_version=opset, dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                                "attention_mask": {0: "batch", 1: "sequence"},
                                                "text_embeds": {0: "batch"}},
        )


def parity_inputs(model, tokenizer, seed: int = 0) -> dict[str, list]:
    """Inputs other than the traced ones: images at batch sizes 1 and 3; texts one at a time, 4 padded to the
    longest, and 4 padded to the context length."""
    vision = model.config.vision_config
    generator = torch.Generator().manual_seed(seed)
    images = [torch.randn(n, vision.num_channels, vision.image_size, vision.image_size, generator=generator)
              for n in (1, 3)]
    context = int(model.config.text_config.max_position_embeddings)
    texts = [_text_inputs(tokenizer, _PARITY_TEXTS[2:3]), _text_inputs(tokenizer, _PARITY_TEXTS),
             _text_inputs(tokenizer, _PARITY_TEXTS, padding="max_length", max_length=context)]
    return {"image": images, "text": texts}


def embeddings_max_abs_diff(model, onnx_model, inputs: dict[str, list]) -> dict[str, float]:
    """Max |diff| of the normalised embeddings, PyTorch vs the ONNX Runtime stand-in, per tower."""
    image, text = ImageEncoder(model), TextEncoder(model)
    diffs = {"image": 0.0, "text": 0.0}
    with torch.inference_mode():
        for pixel_values in inputs["image"]:
            got = onnx_model.get_image_features(pixel_values).pooler_output
            diffs["image"] = max(diffs["image"], (image(pixel_values) - got).abs().max().item())
        for tokens in inputs["text"]:
            got = onnx_model.get_text_features(**tokens).pooler_output
            diffs["text"] = max(diffs["text"], (text(**tokens) - got).abs().max().item())
    return diffs


def _min_image_cosine(fp32_model, int8_model, inputs: dict[str, list]) -> float:
    """The lowest cosine similarity between an int8 and the fp32 image embedding of the same input."""
    cosines = []
    for pixel_values in inputs["image"]:
        pair = [m.get_image_features(pixel_values).pooler_output for m in (fp32_model, int8_model)]
        cosines.append((pair[0] * pair[1]).sum(-1).min().item())
    return float(np.min(cosines))


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": require("onnx").__version__, "onnxruntime": require("onnxruntime").__version__}


def _write_folder(model, processor, folder: Path, opset: int, int8: bool, tolerance: float) -> ExportConfig:
    from .onnxruntime_backend import OnnxUniCLModel

    tokenizer = processor.tokenizer
    _export_graphs(model, tokenizer, folder, opset)
    mask_fills = {tower: zero_masked_attention_weights(folder / graph_file(tower)) for tower in TOWERS}
    config = ExportConfig(
        logit_scale=float(model.get_logit_scale().item()), projection_dim=int(model.config.projection_dim),
        image_size=int(model.config.vision_config.image_size),
        num_channels=int(model.config.vision_config.num_channels),
        context_length=int(model.config.text_config.max_position_embeddings),
        text_inputs=["input_ids", "attention_mask"], opset=opset, exporter=EXPORTER, int8=int8, versions=_versions(),
        attention_mask_fills_rewritten=mask_fills)
    model.config.to_json_file(str(folder / "config.json"))
    processor.save_pretrained(folder)

    inputs = parity_inputs(model, tokenizer)
    fp32 = OnnxUniCLModel(folder, config, threads=1)
    config.parity_max_abs_diff = embeddings_max_abs_diff(model, fp32, inputs)
    worst = max(config.parity_max_abs_diff.values())
    if not worst <= tolerance:
        raise RuntimeError(f"the exported graphs differ from the PyTorch model by {worst:.3g} (max |diff| of the "
                           f"normalised embeddings: {config.parity_max_abs_diff}), more than {tolerance:g}; nothing "
                           "was written.")
    if int8:
        for tower in INT8_TOWERS:
            options = quantize_graph(folder / graph_file(tower), folder / graph_file(tower, int8=True))
            if options["quantized_layers"] == 0:
                logger.warning(
                    f"int8: the {tower} tower has no layer that dynamic quantization covers (it quantizes linear "
                    "layers; a convolutional tower such as a ResNet has none but its projection, which stays fp32), "
                    "so its int8 graph computes exactly what the fp32 graph does, at fp32 speed."
                )
        int8_model = OnnxUniCLModel(folder, config, int8=True, threads=1)
        config.int8_options = {**options, "towers": list(INT8_TOWERS),
                               "min_image_cosine_to_fp32_at_export": _min_image_cosine(fp32, int8_model, inputs)}
    config.write(folder)
    return config


def _replace_folder(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)  # empty, or overwriting was asked for (checked before anything was exported)
    os.replace(tmp, out)


def export_onnx(model, processor, output_dir: str | os.PathLike, *, opset: int = DEFAULT_OPSET, int8: bool = False,
                overwrite: bool = False, tolerance: float = PARITY_TOLERANCE) -> ExportConfig:
    """Exports `model` (a `UniCLModel`) and `processor` to `output_dir`: the two fp32 graphs (normalised embeddings,
    dynamic batch; dynamic text length), with `int8` also the image graph dynamically quantized, `export_config.json`
    (logit scale, sizes, the measured parity), `config.json` and the processor files.

    Written to a temporary folder beside `output_dir` and moved into place only when the graphs agree with the model
    within `tolerance`; `output_dir` must be absent or empty unless `overwrite`. Returns the written `ExportConfig`."""
    out = Path(output_dir).expanduser().absolute()
    _check_arguments(out, opset, overwrite)
    _check_model(model)
    require("onnx")
    require("onnxruntime")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            config = _write_folder(model, processor, tmp, opset, int8, tolerance)
        _check_arguments(out, opset, overwrite)  # the folder may have appeared meanwhile
        _replace_folder(tmp, out)
    finally:
        model.train(was_training)
        shutil.rmtree(tmp, ignore_errors=True)
    return config


def export_pretrained(model_path: str | os.PathLike, output_dir: str | os.PathLike, **kwargs) -> ExportConfig:
    """`export_onnx` of a saved UniCL folder (or Hub id): loads the model and its processor first."""
    from ..modeling_unicl import UniCLModel
    from ..processing_unicl import UniCLProcessor

    _check_arguments(Path(output_dir).expanduser().absolute(), kwargs.get("opset", DEFAULT_OPSET),
                     kwargs.get("overwrite", False))
    model = UniCLModel.from_pretrained(model_path)
    processor = UniCLProcessor.from_pretrained(model_path)
    return export_onnx(model, processor, output_dir, **kwargs)

