"""The hyper-parameters an original state dict reveals, and their comparison with the config node.

The config is the user's claim; the weights are the facts. Every field they disagree on is reported in one error,
with the tensor that shows the checkpoint's value, before anything is built."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..configuration_unicl import UNICL_TEXT_CONFIG
from .buffers import swin_stages
from .errors import ConversionError
from .original_config import get_field

__all__ = ["Finding", "WeightHyperparameters", "check_config_against_weights", "infer_hyperparameters"]

_BLOCK = re.compile(r"image_encoder\.layers\.(\d+)\.blocks\.(\d+)\.")
_ATTN_MASK = re.compile(r"image_encoder\.layers\.(\d+)\.blocks\.\d+\.attn_mask$")
_TEXT_LAYER = re.compile(r"text_encoder\.resblocks\.(\d+)\.")


@dataclass(frozen=True)
class Finding:
    """A value read from the weights, and the tensor(s) that show it (for error messages)."""

    value: Any
    evidence: str


@dataclass
class WeightHyperparameters:
    """What `infer_hyperparameters` reads from an original state dict.

    Attributes:
        image_type: `"swin"` or `"focal"`.
        fields: original config fields (dotted, without `MODEL.`) -> their value in the weights; only the fields the
            state dict has evidence for. `check_config_against_weights` compares each one with the config.
        swin_stage_windows: per-stage window side from the relative_position_bias_table sizes ((2w - 1)^2 rows).
        focal_kernels: per-stage kernel sizes of the modulation's focal layers.
        vocab_size: rows of the token embedding.
        absolute_position_embedding: present when the Swin has one (APE), which transformers' Swin cannot hold.
    """

    image_type: Finding
    fields: dict[str, Finding] = field(default_factory=dict)
    swin_stage_windows: Finding | None = None
    focal_kernels: Finding | None = None
    vocab_size: Finding | None = None
    absolute_position_embedding: Finding | None = None


def _shape(key: str, tensor: torch.Tensor) -> str:
    return f"{key} {tuple(tensor.shape)}"


def infer_hyperparameters(state_dict: Mapping[str, torch.Tensor]) -> WeightHyperparameters:
    """The hyper-parameters the weights of an original state dict (original key names) reveal."""
    is_focal = any(".modulation." in k for k in state_dict if k.startswith("image_encoder."))
    found = WeightHyperparameters(
        Finding("focal", "modulation weights") if is_focal else Finding("swin", "attention weights")
    )
    tower = "IMAGE_ENCODER.FOCAL" if is_focal else "IMAGE_ENCODER.SWIN"
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        if m := _BLOCK.match(key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))

    stem = state_dict.get("image_encoder.patch_embed.proj.weight")
    if stem is not None and stem.ndim == 4:
        evidence = _shape("image_encoder.patch_embed.proj.weight", stem)
        found.fields[f"{tower}.EMBED_DIM"] = Finding(int(stem.shape[0]), evidence)
        found.fields[f"{tower}.IN_CHANS"] = Finding(int(stem.shape[1]), evidence)
        if not is_focal:
            found.fields[f"{tower}.PATCH_SIZE"] = Finding(int(stem.shape[-1]), evidence)
    if blocks:
        depths = [len(blocks[s]) for s in sorted(blocks)]
        found.fields[f"{tower}.DEPTHS"] = Finding(depths, "number of image_encoder.layers.<s>.blocks.<b> per stage")
    fc1 = state_dict.get("image_encoder.layers.0.blocks.0.mlp.fc1.weight")
    if fc1 is not None and fc1.ndim == 2 and fc1.shape[1]:
        evidence = _shape("image_encoder.layers.0.blocks.0.mlp.fc1.weight", fc1)
        found.fields[f"{tower}.MLP_RATIO"] = Finding(fc1.shape[0] / fc1.shape[1], evidence)
    (_infer_focal if is_focal else _infer_swin)(state_dict, blocks, stem, found)
    _infer_text(state_dict, found)
    return found


def _infer_swin(
    sd: Mapping[str, torch.Tensor], blocks: dict[int, set[int]], stem: torch.Tensor | None, found: WeightHyperparameters
) -> None:
    heads, windows = [], []
    for s in sorted(blocks):
        tables = [f"image_encoder.layers.{s}.blocks.{b}.attn.relative_position_bias_table" for b in sorted(blocks[s])]
        table = next((sd[k] for k in tables if k in sd), None)
        if table is None:
            heads = windows = []
            break
        heads.append(int(table.shape[1]) if table.ndim == 2 else -1)
        side = math.isqrt(int(table.shape[0]))
        windows.append((side + 1) // 2 if side * side == table.shape[0] and side % 2 == 1 else -1)
    if heads:
        found.fields["IMAGE_ENCODER.SWIN.NUM_HEADS"] = Finding(heads, "relative_position_bias_table.shape[1] per stage")
        evidence = f"relative_position_bias_table rows = (2w-1)^2 (per stage: {windows})"
        found.fields["IMAGE_ENCODER.SWIN.WINDOW_SIZE"] = Finding(max(windows), evidence)
        found.swin_stage_windows = Finding(windows, "relative_position_bias_table rows = (2w-1)^2 per stage")
    layer_keys = [k for k in sd if k.startswith("image_encoder.layers.")]
    if any(k.endswith(".attn.qkv.weight") for k in layer_keys):
        has_bias = any(k.endswith(".attn.qkv.bias") for k in layer_keys)
        found.fields["IMAGE_ENCODER.SWIN.QKV_BIAS"] = Finding(has_bias, "presence of attn.qkv.bias")
    # the shifted-window mask reveals the resolution: (H / w)^2 windows of w*w tokens
    for key, value in sd.items():
        m = _ATTN_MASK.match(key)
        if m and value.ndim == 3 and stem is not None:
            s = int(m.group(1))
            w = math.isqrt(int(value.shape[1]))
            per_side = math.isqrt(int(value.shape[0]))
            evidence = f"{_shape(key, value)}: {per_side}x{per_side} windows of {w}x{w} at stage {s}"
            found.fields["IMAGE_ENCODER.IMG_SIZE"] = Finding(per_side * w * (2**s) * int(stem.shape[-1]), evidence)
            break
    if any(k.startswith("image_encoder.absolute_pos_embed") for k in sd):
        found.absolute_position_embedding = Finding(True, "image_encoder.absolute_pos_embed")


def _infer_focal(
    sd: Mapping[str, torch.Tensor], blocks: dict[int, set[int]], stem: torch.Tensor | None, found: WeightHyperparameters
) -> None:
    levels, windows, kernels = [], [], []
    for s in sorted(blocks):
        prefix = f"image_encoder.layers.{s}.blocks.{min(blocks[s])}.modulation.focal_layers."
        ks = sorted({int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)})
        levels.append(len(ks))
        stage_kernels = [int(sd[f"{prefix}{l}.0.weight"].shape[-1]) for l in ks if f"{prefix}{l}.0.weight" in sd]
        kernels.append(stage_kernels)
        windows.append(stage_kernels[0] if stage_kernels else -1)
    if levels:
        found.fields["IMAGE_ENCODER.FOCAL.FOCAL_LEVELS"] = Finding(levels, "number of modulation.focal_layers per stage")
        evidence = "kernel size of modulation.focal_layers.0 per stage"
        found.fields["IMAGE_ENCODER.FOCAL.FOCAL_WINDOWS"] = Finding(windows, evidence)
        found.focal_kernels = Finding(kernels, "kernel sizes of modulation.focal_layers per stage")
    if any(k.startswith("image_encoder.layers.") for k in sd):
        has_gamma = any(k.endswith(".gamma_1") for k in sd)
        found.fields["IMAGE_ENCODER.FOCAL.USE_LAYERSCALE"] = Finding(has_gamma, "presence of blocks.<b>.gamma_1")
        has_ln = any(".modulation.ln." in k for k in sd)
        found.fields["IMAGE_ENCODER.FOCAL.USE_POSTLN"] = Finding(has_ln, "presence of modulation.ln")
    if stem is not None:
        downsample_kernels = {int(sd[k].shape[-1]) for k in sd if k.endswith(".downsample.proj.weight")}
        # USE_CONV_EMBED: 7x7 stem (stride 4) and 3x3 downsampling convs instead of patch-sized ones
        conv_embed = stem.shape[-1] == 7 and (not downsample_kernels or downsample_kernels == {3})
        evidence = f"kernel of {_shape('image_encoder.patch_embed.proj.weight', stem)}"
        found.fields["IMAGE_ENCODER.FOCAL.USE_CONV_EMBED"] = Finding(bool(conv_embed), evidence)
        if not conv_embed:
            evidence = _shape("image_encoder.patch_embed.proj.weight", stem)
            found.fields["IMAGE_ENCODER.FOCAL.PATCH_SIZE"] = Finding(int(stem.shape[-1]), evidence)


def _infer_text(sd: Mapping[str, torch.Tensor], found: WeightHyperparameters) -> None:
    tok = sd.get("text_encoder.token_embedding.weight")
    if tok is not None and tok.ndim == 2:
        evidence = _shape("text_encoder.token_embedding.weight", tok)
        found.fields["TEXT_ENCODER.WIDTH"] = Finding(int(tok.shape[1]), evidence)
        found.vocab_size = Finding(int(tok.shape[0]), evidence)
    pos = sd.get("text_encoder.positional_embedding")
    if pos is not None and pos.ndim == 2:
        evidence = _shape("text_encoder.positional_embedding", pos)
        found.fields["TEXT_ENCODER.CONTEXT_LENGTH"] = Finding(int(pos.shape[0]), evidence)
    layers = {int(m.group(1)) for k in sd if (m := _TEXT_LAYER.match(k))}
    if layers:
        found.fields["TEXT_ENCODER.LAYERS"] = Finding(len(layers), "number of text_encoder.resblocks")
    for name in ("text_projection", "image_projection"):
        proj = sd.get(name)
        if proj is not None and proj.ndim == 2:
            found.fields["DIM_PROJECTION"] = Finding(int(proj.shape[1]), _shape(name, proj))
            break


# ------------------------------------------------------------------------------------------------------ comparison
def _same(field_name: str, config_value: Any, checkpoint_value: Any) -> bool:
    if isinstance(config_value, float) or isinstance(checkpoint_value, float):
        return math.isclose(float(config_value), float(checkpoint_value), rel_tol=1e-6)
    if isinstance(config_value, (list, tuple)):
        if field_name.endswith("DEPTHS"):
            return list(config_value) == list(checkpoint_value)
        # per-stage lists may be longer than the number of stages (the original uses the first ones)
        return len(config_value) >= len(checkpoint_value) and list(config_value)[: len(checkpoint_value)] == list(
            checkpoint_value
        )
    return config_value == checkpoint_value


def check_config_against_weights(node: dict, state_dict: Mapping[str, torch.Tensor], context: str = "") -> None:
    """Raises one `ConversionError` listing every config field that disagrees with the weights (field, config value,
    checkpoint value and the evidence). The text tower's HEADS cannot be read from the weights and is not checked.
    `context` (e.g. "checkpoint X with config Y") starts the message."""
    where = f"{context}: " if context else ""
    found = infer_hyperparameters(state_dict)
    image_type = node["IMAGE_ENCODER"]["TYPE"]
    if any(k.startswith("image_encoder.") for k in state_dict) and image_type != found.image_type.value:
        raise ConversionError(
            f"{where}config field MODEL.IMAGE_ENCODER.TYPE: config value {image_type!r}, checkpoint value "
            f"{found.image_type.value!r} (the checkpoint's image encoder has {found.image_type.evidence})."
        )
    problems = [
        f"config field MODEL.{name}: config value {get_field(node, name)!r}, checkpoint value {f.value!r} "
        f"({f.evidence})"
        for name, f in found.fields.items()
        if not _same(name, get_field(node, name), f.value)
    ]
    problems += _vocabulary_and_projection_problems(node, state_dict, found)
    if image_type == "swin" and not problems:
        problems += _swin_window_problems(node, found)
    if image_type == "focal":
        problems += _focal_kernel_problems(found)
    if found.absolute_position_embedding is not None:
        problems.append("the checkpoint has an absolute position embedding (APE), which is not supported")
    if problems:
        subject = f"{where}the config" if where else "The config"
        raise ConversionError(f"{subject} does not match the checkpoint's weights:\n  " + "\n  ".join(problems))
    if image_type == "swin":
        _check_windows_fit(node, where)


def _vocabulary_and_projection_problems(
    node: dict, sd: Mapping[str, torch.Tensor], found: WeightHyperparameters
) -> list[str]:
    problems = []
    vocab_size = UNICL_TEXT_CONFIG["vocab_size"]
    if found.vocab_size is not None and found.vocab_size.value != vocab_size:
        problems.append(
            f"config field MODEL.TEXT_ENCODER.TOKENIZER: config value 'clip' ({vocab_size} tokens), checkpoint "
            f"vocabulary {found.vocab_size.value} ({found.vocab_size.evidence})"
        )
    # the image feature width and the text width must match the projections
    image_type = node["IMAGE_ENCODER"]["TYPE"]
    proj = sd.get("image_projection")
    if proj is not None and proj.ndim == 2 and image_type == found.image_type.value:
        tower = "SWIN" if image_type == "swin" else "FOCAL"
        sub = node["IMAGE_ENCODER"][tower]
        dim_out = sub["EMBED_DIM"] * 2 ** (len(sub["DEPTHS"]) - 1)
        if proj.shape[0] != dim_out:
            problems.append(
                f"config fields MODEL.IMAGE_ENCODER.{tower}.EMBED_DIM/DEPTHS give an image feature width of {dim_out}, "
                f"checkpoint value {int(proj.shape[0])} ({_shape('image_projection', proj)})"
            )
    proj = sd.get("text_projection")
    width = node["TEXT_ENCODER"]["WIDTH"]
    if proj is not None and proj.ndim == 2 and proj.shape[0] != width and "TEXT_ENCODER.WIDTH" not in found.fields:
        problems.append(
            f"config field MODEL.TEXT_ENCODER.WIDTH: config value {width}, checkpoint value {int(proj.shape[0])} "
            f"({_shape('text_projection', proj)})"
        )
    a, b = sd.get("image_projection"), sd.get("text_projection")
    if a is not None and b is not None and a.ndim == 2 and b.ndim == 2 and a.shape[1] != b.shape[1]:
        problems.append(
            f"image_projection {tuple(a.shape)} and text_projection {tuple(b.shape)} disagree on the projection dim"
        )
    return problems


def _swin_window_problems(node: dict, found: WeightHyperparameters) -> list[str]:
    """The per-stage windows (after the original's clamp to the stage resolution) against the tables' sizes."""
    if found.image_type.value != "swin" or found.swin_stage_windows is None:
        return []
    expected = [stage.window for stage in swin_stages(node)]
    table_windows = found.swin_stage_windows.value
    if table_windows == expected[: len(table_windows)]:
        return []
    return [
        f"config field MODEL.IMAGE_ENCODER.IMG_SIZE: config value {node['IMAGE_ENCODER']['IMG_SIZE']} gives "
        f"per-stage windows {expected}, the checkpoint's relative_position_bias_table sizes give {table_windows}"
    ]


def _focal_kernel_problems(found: WeightHyperparameters) -> list[str]:
    if found.focal_kernels is None:
        return []
    return [
        f"stage {s}: focal kernel sizes {kernels} are not 2 * level + FOCAL_WINDOWS (focal factor 2, the only "
        "one the original FocalNet and transformers' FocalNet build)"
        for s, kernels in enumerate(found.focal_kernels.value)
        if kernels and kernels != [2 * level + kernels[0] for level in range(len(kernels))]
    ]


def _check_windows_fit(node: dict, where: str) -> None:
    window = node["IMAGE_ENCODER"]["SWIN"]["WINDOW_SIZE"]
    for s, stage in enumerate(swin_stages(node)):
        if stage.window < window:
            raise ConversionError(
                f"{where}Swin stage {s} has resolution {stage.resolution} < MODEL.IMAGE_ENCODER.SWIN.WINDOW_SIZE="
                f"{window}: the original shrinks the window (and its relative position table) to the resolution, "
                "transformers' SwinModel does not; such a model cannot be converted."
            )
