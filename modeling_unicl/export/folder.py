"""What an exported folder holds and how it is checked, without onnx or onnxruntime (the scripts check their
arguments with this before importing anything heavy).

    image_encoder.onnx        pixel_values (batch, 3, H, W) float32 -> image_embeds (batch, projection_dim), normalised
    text_encoder.onnx         input_ids, attention_mask (batch, length) int64 -> text_embeds (batch, projection_dim)
    image_encoder.int8.onnx   the image graph dynamically quantized to int8 (`--int8`); the text tower has no int8
                              graph: zero-shot runs it once per class set, and quantizing it cost most of the
                              int8 path's agreement with fp32 (README, Deployment)
    export_config.json        format, logit scale, input sizes, exporter, opset, the parity measured at export
    config.json               the UniCL config of the exported model, for reference (no weights beside it)
    processor files           `UniCLProcessor.save_pretrained`: the preprocessing and tokenizer the graphs expect
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["EXPORT_CONFIG_FILE", "FORMAT", "ExportConfig", "check_export_folder", "graph_file", "read_export_config"]

FORMAT = "unicl-onnx"
EXPORT_CONFIG_FILE = "export_config.json"
TOWERS = ("image", "text")
INT8_TOWERS = ("image",)  # what `--int8` quantizes (see the module docstring)


def graph_file(tower: str, int8: bool = False) -> str:
    """File name of the graph that runs `tower` (`image_encoder.onnx`, `image_encoder.int8.onnx`, ...); with `int8`,
    the int8 graph of a tower in `INT8_TOWERS`, the fp32 graph of the others."""
    if tower not in TOWERS:
        raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}.")
    return f"{tower}_encoder{'.int8' if int8 and tower in INT8_TOWERS else ''}.onnx"


@dataclass
class ExportConfig:
    """The contents of `export_config.json`: what a runtime needs besides the graphs."""

    logit_scale: float  # exp(logit_scale) after the model's clamp: the multiplier of the cosine similarities
    projection_dim: int
    image_size: int
    num_channels: int
    context_length: int  # the text tower's maximum number of tokens
    text_inputs: list[str]  # the inputs the text graph takes, in order
    opset: int
    exporter: str
    int8: bool
    parity_max_abs_diff: dict[str, float] = field(default_factory=dict)  # fp32 graph vs PyTorch, measured at export
    int8_options: dict | None = None
    # per tower, the attention-mask fills written as the float32 minimum (`masked_attention`: no denormal weights)
    attention_mask_fills_rewritten: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = 1

    def write(self, folder: Path) -> None:
        (folder / EXPORT_CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def read_export_config(folder: str | Path) -> ExportConfig:
    """`export_config.json` of an exported folder; `ValueError` naming the file when it is missing or not ours."""
    path = Path(folder) / EXPORT_CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{folder!s} has no {EXPORT_CONFIG_FILE}: it is not a folder written by export_onnx "
                         "(scripts/export_onnx.py MODEL OUT).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} describes format {found!r}, expected {FORMAT!r}.")
    try:
        return ExportConfig(**data)
    except TypeError as error:
        raise ValueError(f"{path}: unexpected or missing fields ({error}).") from error


def check_export_folder(folder: str | Path, int8: bool = False) -> ExportConfig:
    """Fails early, naming the missing piece, when `folder` is not a complete export (with the int8 image graph when
    `int8`); returns its `ExportConfig`."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise OSError(f"exported model folder {str(folder)!r} does not exist.")
    config = read_export_config(path)
    for tower in TOWERS:
        if not (path / graph_file(tower)).is_file():
            raise ValueError(f"{path} has no {graph_file(tower)}: the export is incomplete; export it again.")
        if int8 and not (path / graph_file(tower, int8=True)).is_file():
            raise ValueError(f"{path} has no {graph_file(tower, int8=True)}: it was exported without int8 "
                             "graphs; export it again with them, or load it without int8.")
    if not (path / "tokenizer.json").is_file():
        raise ValueError(f"{path} has no tokenizer.json: the processor files are missing; export it again.")
    return config
