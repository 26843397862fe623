"""The deterministic buffers of the original Swin (relative position index, shifted-window attention mask).

They are not converted: transformers' Swin computes its own. The stored ones are checked against the formulas for
the config instead, so that a checkpoint trained with another geometry cannot pass unnoticed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..modeling_unicl import UniCLModel
from .errors import ConversionError

__all__ = [
    "SwinStage",
    "check_transformers_relative_position_index",
    "swin_attention_mask",
    "swin_relative_position_index",
    "swin_stages",
    "verify_swin_buffers",
]

_BUFFER_KEY = re.compile(r"image_encoder\.layers\.(\d+)\.blocks\.\d+\.(attn\.relative_position_index|attn_mask)$")


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """`index[i, j] = (dy + w - 1) * (2w - 1) + (dx + w - 1)` for tokens i, j of a w x w window (row-major)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(1)
    relative = coords[:, :, None] - coords[:, None, :]
    return (relative[0] + window_size - 1) * (2 * window_size - 1) + (relative[1] + window_size - 1)


def swin_attention_mask(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    """The shifted-window mask of the original Swin block: -100 between tokens of different regions, else 0."""
    img_mask = torch.zeros((1, height, width, 1))
    slices = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    count = 0
    for h in slices:
        for w in slices:
            img_mask[:, h, w, :] = count
            count += 1
    windows = img_mask.view(1, height // window_size, window_size, width // window_size, window_size, 1)
    windows = windows.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


@dataclass(frozen=True)
class SwinStage:
    """One stage of the original Swin: its token grid side, and the window and shift its blocks use."""

    resolution: int
    window: int
    shift: int


def swin_stages(node: dict) -> list[SwinStage]:
    """Per stage, as the original `SwinTransformerBlock` sets them: a stage no larger than the window gets one window
    of its own size and no shift."""
    enc, swin = node["IMAGE_ENCODER"], node["IMAGE_ENCODER"]["SWIN"]
    grid = enc["IMG_SIZE"] // swin["PATCH_SIZE"]
    window = swin["WINDOW_SIZE"]
    stages = []
    for s in range(len(swin["DEPTHS"])):
        res = grid // (2**s)
        stages.append(SwinStage(res, res, 0) if res <= window else SwinStage(res, window, window // 2))
    return stages


def verify_swin_buffers(state_dict: Mapping[str, torch.Tensor], node: dict) -> list[str]:
    """Problems of the stored relative_position_index / attn_mask buffers against their formulas for this config."""
    problems = []
    stages = swin_stages(node)
    cache: dict[tuple, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = _BUFFER_KEY.match(key)
        if not m:
            continue
        s = int(m.group(1))
        if s >= len(stages):
            continue  # reported as an unknown key
        g = stages[s]
        if m.group(2) == "attn.relative_position_index":
            expected = cache.setdefault(("index", g.window), swin_relative_position_index(g.window))
        else:
            expected = cache.setdefault(
                ("mask", g.resolution, g.window, g.shift),
                swin_attention_mask(g.resolution, g.resolution, g.window, g.shift),
            )
        if tuple(value.shape) != tuple(expected.shape):
            img, window = node["IMAGE_ENCODER"]["IMG_SIZE"], node["IMAGE_ENCODER"]["SWIN"]["WINDOW_SIZE"]
            problems.append(
                f"{key}: shape {tuple(value.shape)}, but MODEL.IMAGE_ENCODER.IMG_SIZE={img} and WINDOW_SIZE={window} "
                f"give {tuple(expected.shape)}"
            )
        elif not torch.equal(value.to(expected.dtype), expected):
            problems.append(f"{key}: differs from the value the Swin formula gives for this config")
    return problems


def check_transformers_relative_position_index(model: UniCLModel, node: dict) -> None:
    """transformers' Swin recomputes its relative_position_index; it must equal the original formula."""
    if node["IMAGE_ENCODER"]["TYPE"] != "swin":
        return
    expected = swin_relative_position_index(node["IMAGE_ENCODER"]["SWIN"]["WINDOW_SIZE"]).reshape(-1)
    for name, buffer in model.named_buffers():
        if name.startswith("vision_model.") and name.endswith("relative_position_index"):
            if not torch.equal(buffer.reshape(-1).to(expected.dtype), expected):
                raise ConversionError(f"transformers' {name} differs from the original Swin formula; cannot convert.")
