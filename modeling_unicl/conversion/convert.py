"""Conversion of original UniCL checkpoints (microsoft/UniCL) to the transformers-native `UniCLModel`.

The original model is `UniCLModel` of microsoft/UniCL: `image_encoder` (its own Swin Transformer, or its FocalNet
class), `text_encoder` (CLIP-style causal transformer), `image_projection` / `text_projection` (`[in, out]` matrices)
and `logit_scale`. This module maps every tensor of such a checkpoint onto `UniCLModel` (SwinModel / FocalNetModel +
CLIPTextModel + two bias-free `nn.Linear`), checks that nothing is left over or left uninitialised, and writes a
complete, loadable folder (weights, config with `auto_map`, remote code, processor, model card) atomically.

Public API:

- `convert_unicl_checkpoint(checkpoint, config, output_dir, *, card_name=None, repo_id=None, overwrite=False)`:
  the whole conversion, as the script `scripts/convert_unicl_original_to_hf.py` runs it.
- `load_original_config(config)`: a preset name (`PRESETS`), an original (yacs) YAML file or a dict -> the `MODEL`
  node, merged over the original defaults and validated.
- `load_original_checkpoint(path)`: the state dict of a checkpoint file, read with `weights_only=True`, in any layout
  the original code reads (`{"model": ...}`, bare, old `visual.`/`text.` names, `module.` prefixes).
- `normalize_original_state_dict(obj)`: the same for an object already in memory.
- `check_config_against_weights(model_node, state_dict)`: hyper-parameters revealed by the weights vs. the config.
- `build_unicl_config(model_node, state_dict=None)`: the `UniCLConfig` reproducing the original model.
- `convert_original_state_dict(state_dict, model_node, reference=None)`: original names -> `UniCLModel` names.
- `convert_original_model(state_dict, model_node)`: a `UniCLModel` holding the converted weights (strict load).
- `build_processor(model_node)`: the matching `UniCLProcessor`.

Every failure caused by the input is a `ConversionError` (a `ValueError`) with a message naming the culprit.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
import os
import pickle
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ..configuration_unicl import UniCLConfig
from ..modeling_unicl import UniCLModel
from ..processing_unicl import UniCLImageProcessor, UniCLProcessor, build_clip_tokenizer

logger = logging.getLogger(__name__)

CLIP_VOCAB_SIZE = 49408
CLIP_BOS_TOKEN_ID = 49406
CLIP_EOS_TOKEN_ID = 49407
DEFAULT_LOGIT_SCALE_MAX = 100.0

__all__ = [
    "ConversionError",
    "PRESETS",
    "build_processor",
    "build_unicl_config",
    "check_config_against_weights",
    "convert_original_model",
    "convert_original_state_dict",
    "convert_unicl_checkpoint",
    "expected_original_keys",
    "infer_hyperparameters",
    "load_original_checkpoint",
    "load_original_config",
    "normalize_original_state_dict",
    "swin_attention_mask",
    "swin_relative_position_index",
]


class ConversionError(ValueError):
    """The input (checkpoint, config, output folder) cannot be converted; the message says why."""


# ----------------------------------------------------------------------------------------------------------- config
# The MODEL node defaults of the original `config.py` (the values a YAML file does not set).
ORIGINAL_MODEL_DEFAULTS: dict[str, Any] = {
    "NAME": "",
    "DIM_PROJECTION": 512,
    "IMAGE_ENCODER": {
        "TYPE": "swin",
        "IMG_SIZE": 224,
        "DROP_RATE": 0.0,
        "DROP_PATH_RATE": 0.1,
        "SWIN": {
            "PATCH_SIZE": 4,
            "IN_CHANS": 3,
            "EMBED_DIM": 96,
            "DEPTHS": [2, 2, 6, 2],
            "NUM_HEADS": [3, 6, 12, 24],
            "WINDOW_SIZE": 7,
            "MLP_RATIO": 4.0,
            "QKV_BIAS": True,
            "QK_SCALE": None,
            "APE": False,
            "PATCH_NORM": True,
        },
        "FOCAL": {
            "PATCH_SIZE": 4,
            "IN_CHANS": 3,
            "EMBED_DIM": 96,
            "DEPTHS": [2, 2, 6, 2],
            "MLP_RATIO": 4.0,
            "PATCH_NORM": True,
            "FOCAL_LEVELS": [2, 2, 2, 2],
            "FOCAL_WINDOWS": [3, 3, 3, 3],
            "FOCAL_FACTORS": [2, 2, 2, 2],
            "USE_CONV_EMBED": False,
            "USE_LAYERSCALE": False,
            "USE_POSTLN": False,
        },
    },
    "TEXT_ENCODER": {
        "NAME": "transformer",
        "TOKENIZER": "clip",
        "CONTEXT_LENGTH": 77,
        "WIDTH": 1024,
        "HEADS": 16,
        "LAYERS": 12,
        "AUTOGRESSIVE": True,
    },
}

# Fields a config file must set itself (the released configs all do; the defaults above are not UniCL's models).
_REQUIRED_COMMON = (
    "DIM_PROJECTION",
    "IMAGE_ENCODER.TYPE",
    "TEXT_ENCODER.WIDTH",
    "TEXT_ENCODER.HEADS",
    "TEXT_ENCODER.LAYERS",
)
_REQUIRED_SWIN = (
    "IMAGE_ENCODER.SWIN.EMBED_DIM",
    "IMAGE_ENCODER.SWIN.DEPTHS",
    "IMAGE_ENCODER.SWIN.NUM_HEADS",
    "IMAGE_ENCODER.SWIN.WINDOW_SIZE",
)
_REQUIRED_FOCAL = (
    "IMAGE_ENCODER.FOCAL.EMBED_DIM",
    "IMAGE_ENCODER.FOCAL.DEPTHS",
    "IMAGE_ENCODER.FOCAL.FOCAL_LEVELS",
    "IMAGE_ENCODER.FOCAL.FOCAL_WINDOWS",
)


def _preset(name: str, embed_dim: int, depths: list[int], num_heads: list[int], drop_path_rate: float) -> dict:
    return {
        "NAME": f"unicl_{name.replace('-', '_')}",
        "DIM_PROJECTION": 512,
        "IMAGE_ENCODER": {
            "TYPE": "swin",
            "IMG_SIZE": 224,
            "DROP_PATH_RATE": drop_path_rate,
            "SWIN": {"EMBED_DIM": embed_dim, "DEPTHS": depths, "NUM_HEADS": num_heads, "WINDOW_SIZE": 7},
        },
        "TEXT_ENCODER": {"NAME": "transformer", "WIDTH": 512, "HEADS": 8, "LAYERS": 12, "CONTEXT_LENGTH": 77},
    }


# The original `configs/unicl_swin_tiny.yaml` and `configs/unicl_swin_base.yaml`.
PRESETS: dict[str, dict] = {
    "swin-tiny": _preset("swin-tiny", 96, [2, 2, 6, 2], [3, 6, 12, 24], 0.2),
    "swin-base": _preset("swin-base", 128, [2, 2, 18, 2], [4, 8, 16, 32], 0.5),
}


def _deep_merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _get(node: Mapping, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _read_yaml_model_node(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The MODEL node of an original YAML file, with its `BASE` files merged underneath (as the original does)."""
    path = path.resolve()
    if path in seen:
        raise ConversionError(f"--config {path}: BASE files include each other ({' -> '.join(map(str, seen))}).")
    if not path.is_file():
        raise ConversionError(f"--config {path}: no such file.")
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConversionError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]}).") from e
    if not isinstance(data, Mapping):
        raise ConversionError(f"--config {path}: expected a YAML mapping with a MODEL node, got {type(data).__name__}.")
    merged: dict = {}
    for base in data.get("BASE") or []:
        if base:
            merged = _deep_merge(merged, _read_yaml_model_node(path.parent / base, seen + (path,)))
    if "MODEL" in data:
        node = data["MODEL"]
    elif "IMAGE_ENCODER" in data or "TEXT_ENCODER" in data:  # a bare MODEL node
        node = data
    elif merged:
        return merged
    else:
        raise ConversionError(f"--config {path}: no MODEL node (top-level keys: {sorted(map(str, data))}).")
    if not isinstance(node, Mapping):
        raise ConversionError(f"--config {path}: MODEL must be a mapping, got {type(node).__name__}.")
    return _deep_merge(merged, node)


def load_original_config(config: str | os.PathLike | Mapping) -> dict:
    """The original `MODEL` config node: from a preset name (see `PRESETS`), an original YAML file (`MODEL:` at the
    top level, or a bare MODEL node; `BASE` files are merged) or a dict, merged over the original defaults.

    Raises `ConversionError` for an unknown preset, an unreadable file, missing required fields or wrong types."""
    source: str
    if isinstance(config, Mapping):
        node = dict(config.get("MODEL", config))
        source = "config dict"
    else:
        text = os.fspath(config)
        if text in PRESETS:
            node, source = copy.deepcopy(PRESETS[text]), f"preset {text!r}"
        elif Path(text).suffix.lower() in (".yaml", ".yml") or Path(text).exists() or os.sep in text:
            node, source = _read_yaml_model_node(Path(text)), f"--config {text}"
        else:
            raise ConversionError(
                f"--config {text!r}: neither a YAML file nor a known preset (known presets: {', '.join(PRESETS)})."
            )
    image_type = str(_get(node, "IMAGE_ENCODER.TYPE", "")).lower()
    required = list(_REQUIRED_COMMON)
    if "focal" in image_type:
        required += _REQUIRED_FOCAL
    elif "swin" in image_type:
        required += _REQUIRED_SWIN
    missing = [f"MODEL.{field}" for field in required if _get(node, field) is None]
    if missing:
        raise ConversionError(f"{source}: missing required field(s) {', '.join(missing)}.")
    if "focal" in image_type:
        image_type = "focal"
    elif "swin" in image_type:
        image_type = "swin"
    else:
        raise ConversionError(
            f"{source}: MODEL.IMAGE_ENCODER.TYPE={_get(node, 'IMAGE_ENCODER.TYPE')!r} is not supported "
            "(supported: swin, focal)."
        )
    merged = _deep_merge(ORIGINAL_MODEL_DEFAULTS, node)
    merged["IMAGE_ENCODER"]["TYPE"] = image_type
    _validate_model_node(merged, source)
    return merged


def _validate_model_node(node: dict, source: str) -> None:
    problems = []

    def want_int(field: str, positive: bool = True) -> None:
        value = _get(node, field)
        if isinstance(value, bool) or not isinstance(value, int) or (positive and value <= 0):
            problems.append(f"MODEL.{field} must be a positive integer, got {value!r}")

    def want_int_list(field: str, length: int | None = None) -> None:
        value = _get(node, field)
        if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        ):
            problems.append(f"MODEL.{field} must be a non-empty list of positive integers, got {value!r}")
        elif length is not None and len(value) < length:
            problems.append(f"MODEL.{field} has {len(value)} entries, DEPTHS has {length} stages")

    def want_number(field: str) -> None:
        value = _get(node, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"MODEL.{field} must be a number, got {value!r}")

    want_int("DIM_PROJECTION")
    want_int("IMAGE_ENCODER.IMG_SIZE")
    want_number("IMAGE_ENCODER.DROP_PATH_RATE")
    want_number("IMAGE_ENCODER.DROP_RATE")
    for field in ("WIDTH", "HEADS", "LAYERS", "CONTEXT_LENGTH"):
        want_int(f"TEXT_ENCODER.{field}")
    kind = "SWIN" if node["IMAGE_ENCODER"]["TYPE"] == "swin" else "FOCAL"
    for field in ("PATCH_SIZE", "IN_CHANS", "EMBED_DIM"):
        want_int(f"IMAGE_ENCODER.{kind}.{field}")
    want_number(f"IMAGE_ENCODER.{kind}.MLP_RATIO")
    want_int_list(f"IMAGE_ENCODER.{kind}.DEPTHS")
    depths = _get(node, f"IMAGE_ENCODER.{kind}.DEPTHS")
    n_stages = len(depths) if isinstance(depths, (list, tuple)) else None
    if kind == "SWIN":
        want_int("IMAGE_ENCODER.SWIN.WINDOW_SIZE")
        want_int_list("IMAGE_ENCODER.SWIN.NUM_HEADS", n_stages)
    else:
        want_int_list("IMAGE_ENCODER.FOCAL.FOCAL_LEVELS", n_stages)
        want_int_list("IMAGE_ENCODER.FOCAL.FOCAL_WINDOWS", n_stages)
    if problems:
        raise ConversionError(f"{source}: " + "; ".join(problems) + ".")

    # Settings the original supports but transformers' towers cannot reproduce.
    text = node["TEXT_ENCODER"]
    unsupported = []
    if str(text.get("TOKENIZER", "clip")).lower() != "clip":
        unsupported.append(f"MODEL.TEXT_ENCODER.TOKENIZER={text.get('TOKENIZER')!r} (only the CLIP tokenizer is supported)")
    if not text.get("AUTOGRESSIVE", True):
        unsupported.append("MODEL.TEXT_ENCODER.AUTOGRESSIVE=False (CLIPTextModel is always causal)")
    if str(text.get("NAME", "transformer")) != "transformer":
        unsupported.append(f"MODEL.TEXT_ENCODER.NAME={text.get('NAME')!r} (only 'transformer' is supported)")
    if text["WIDTH"] % text["HEADS"]:
        unsupported.append(f"MODEL.TEXT_ENCODER.WIDTH={text['WIDTH']} is not divisible by HEADS={text['HEADS']}")
    if kind == "SWIN":
        swin = node["IMAGE_ENCODER"]["SWIN"]
        if swin.get("APE"):
            unsupported.append("MODEL.IMAGE_ENCODER.SWIN.APE=True (absolute position embedding)")
        if not swin.get("PATCH_NORM", True):
            unsupported.append("MODEL.IMAGE_ENCODER.SWIN.PATCH_NORM=False")
        if swin.get("QK_SCALE") is not None:
            unsupported.append(f"MODEL.IMAGE_ENCODER.SWIN.QK_SCALE={swin['QK_SCALE']!r} (only head_dim ** -0.5)")
    elif not node["IMAGE_ENCODER"]["FOCAL"].get("PATCH_NORM", True):
        unsupported.append("MODEL.IMAGE_ENCODER.FOCAL.PATCH_NORM=False")
    if unsupported:
        raise ConversionError(f"{source}: not supported by the transformers towers: " + "; ".join(unsupported) + ".")


# ------------------------------------------------------------------------------------------------------- checkpoint
_UNSAFE_PICKLE_HINT = (
    "it holds pickled Python objects besides tensors ({name}; e.g. a training checkpoint whose 'config' entry is a "
    "yacs CfgNode), so it cannot be read with torch.load(weights_only=True), and the converter never unpickles "
    "arbitrary objects. Extract the weights in an environment you "
    "trust: torch.save({{'model': torch.load({path!r}, map_location='cpu', weights_only=False)['model']}}, "
    "'model_only.pth'), and convert model_only.pth."
)


def load_original_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads an original checkpoint with `torch.load(weights_only=True)` (never unpickling arbitrary objects) and
    returns its state dict with original key names (see `normalize_original_state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"--checkpoint {path}: no such file.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if unsafe:
            raise ConversionError(
                f"--checkpoint {path}: " + _UNSAFE_PICKLE_HINT.format(path=str(path), name=unsafe.group(1))
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
        reason = detail.group(1).strip() if detail else (message.splitlines() or ["unpickling failed"])[0]
        raise ConversionError(f"--checkpoint {path}: not a readable torch checkpoint ({reason}).") from None
    except Exception as e:  # noqa: BLE001 - corrupt / foreign files fail in many ways inside torch.load
        reason = (str(e).splitlines() or [""])[0] or type(e).__name__
        raise ConversionError(f"--checkpoint {path}: not a readable torch checkpoint ({reason}).") from None
    return normalize_original_state_dict(obj, source=f"--checkpoint {path}")


def _is_tensor_mapping(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def normalize_original_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict of an original checkpoint object, with the names of the original `UniCLModel`.

    Accepts `{"model": state_dict, ...}` (what the original evaluation reads; other entries such as optimizer state
    are ignored) and a bare state dict. Renames like the original `_convert_old_weights` (`visual.` ->
    `image_encoder.`, `text.` -> `text_encoder.`, `vision_projection` -> `image_projection`), treats `lang_encoder.`
    as an alias of `text_encoder.` and strips `module.` prefixes left by DistributedDataParallel."""
    if isinstance(obj, Mapping) and "model" in obj and not isinstance(obj["model"], torch.Tensor):
        extra = sorted(str(k) for k in obj if k != "model")
        if extra:
            logger.info("%s: using its 'model' entry; ignoring %s", source, ", ".join(extra))
        obj = obj["model"]
    if not _is_tensor_mapping(obj):
        if isinstance(obj, Mapping):
            bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)][:10]
            raise ConversionError(
                f"{source}: not a UniCL state dict: expected {{'model': state_dict}} or a mapping of names to tensors; "
                f"entries that are not tensors: {bad or 'none (empty mapping)'}."
            )
        raise ConversionError(f"{source}: not a UniCL state dict (got a {type(obj).__name__}).")

    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        new = key
        while new.startswith("module."):
            new = new[len("module.") :]
        if new.startswith("visual."):
            new = "image_encoder." + new[len("visual.") :]
        elif new.startswith("text."):
            new = "text_encoder." + new[len("text.") :]
        elif new.startswith("lang_encoder."):
            new = "text_encoder." + new[len("lang_encoder.") :]
        elif new == "vision_projection":
            new = "image_projection"
        if new in out:
            raise ConversionError(f"{source}: keys {key!r} and another key both map to {new!r}.")
        out[new] = value
    return out


# ------------------------------------------------------------------------------------------- deterministic buffers
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


def _swin_stage_geometry(node: dict) -> list[dict]:
    """Per stage: resolution, effective window and shift, as the original `SwinTransformerBlock` sets them."""
    enc, swin = node["IMAGE_ENCODER"], node["IMAGE_ENCODER"]["SWIN"]
    grid = enc["IMG_SIZE"] // swin["PATCH_SIZE"]
    window = swin["WINDOW_SIZE"]
    stages = []
    for s in range(len(swin["DEPTHS"])):
        res = grid // (2**s)
        if res <= window:
            stages.append({"resolution": res, "window": res, "shift": 0})
        else:
            stages.append({"resolution": res, "window": window, "shift": window // 2})
    return stages


# ---------------------------------------------------------------------------------------- hyper-parameter checking
def _block_indices(state_dict: Mapping, pattern: str) -> dict[int, set[int]]:
    regex = re.compile(pattern)
    found: dict[int, set[int]] = {}
    for key in state_dict:
        m = regex.match(key)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return found


def _depths_from(found: dict[int, set[int]]) -> list[int]:
    return [len(found[s]) for s in sorted(found)]


def infer_hyperparameters(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Hyper-parameters the weights reveal, keyed by the original config field (without `MODEL.`); each value is
    `(value, evidence)`. Fields whose evidence is absent from the state dict are left out."""
    sd = state_dict
    found: dict[str, Any] = {}
    is_focal = any(".modulation." in k for k in sd if k.startswith("image_encoder."))
    kind = "FOCAL" if is_focal else "SWIN"
    enc = f"IMAGE_ENCODER.{kind}"
    found["IMAGE_ENCODER.TYPE"] = ("focal" if is_focal else "swin", "modulation weights" if is_focal else "attention weights")

    stem = sd.get("image_encoder.patch_embed.proj.weight")
    if stem is not None and stem.ndim == 4:
        found[f"{enc}.EMBED_DIM"] = (int(stem.shape[0]), f"image_encoder.patch_embed.proj.weight {tuple(stem.shape)}")
        found[f"{enc}.IN_CHANS"] = (int(stem.shape[1]), f"image_encoder.patch_embed.proj.weight {tuple(stem.shape)}")
        if not is_focal:
            found[f"{enc}.PATCH_SIZE"] = (int(stem.shape[-1]), f"image_encoder.patch_embed.proj.weight {tuple(stem.shape)}")
    blocks = _block_indices(sd, r"image_encoder\.layers\.(\d+)\.blocks\.(\d+)\.")
    if blocks:
        found[f"{enc}.DEPTHS"] = (_depths_from(blocks), "number of image_encoder.layers.<s>.blocks.<b> per stage")
    # MLP ratio from the first block
    fc1 = sd.get("image_encoder.layers.0.blocks.0.mlp.fc1.weight")
    if fc1 is not None and fc1.ndim == 2 and fc1.shape[1]:
        evidence = f"image_encoder.layers.0.blocks.0.mlp.fc1.weight {tuple(fc1.shape)}"
        found[f"{enc}.MLP_RATIO"] = (fc1.shape[0] / fc1.shape[1], evidence)

    if not is_focal:
        heads, windows = [], []
        for s in sorted(blocks):
            key = next(
                (f"image_encoder.layers.{s}.blocks.{b}.attn.relative_position_bias_table" for b in sorted(blocks[s])
                 if f"image_encoder.layers.{s}.blocks.{b}.attn.relative_position_bias_table" in sd),
                None,
            )
            if key is None:
                heads, windows = None, None
                break
            table = sd[key]
            heads.append(int(table.shape[1]) if table.ndim == 2 else -1)
            side = math.isqrt(int(table.shape[0]))
            windows.append((side + 1) // 2 if side * side == table.shape[0] and side % 2 == 1 else -1)
        if heads:
            found[f"{enc}.NUM_HEADS"] = (heads, "relative_position_bias_table.shape[1] per stage")
            found["_SWIN_TABLE_WINDOWS"] = (windows, "relative_position_bias_table rows = (2w-1)^2 per stage")
            found[f"{enc}.WINDOW_SIZE"] = (
                max(windows),
                f"relative_position_bias_table rows = (2w-1)^2 (per stage: {windows})",
            )
        qkv_bias = [k for k in sd if k.startswith("image_encoder.layers.") and k.endswith(".attn.qkv.bias")]
        qkv_weight = [k for k in sd if k.startswith("image_encoder.layers.") and k.endswith(".attn.qkv.weight")]
        if qkv_weight:
            found[f"{enc}.QKV_BIAS"] = (bool(qkv_bias), "presence of attn.qkv.bias")
        # the shifted-window mask reveals the resolution: (H / w)^2 windows of w*w tokens
        for key, value in sd.items():
            m = re.match(r"image_encoder\.layers\.(\d+)\.blocks\.\d+\.attn_mask$", key)
            if m and value.ndim == 3 and stem is not None:
                s = int(m.group(1))
                w = math.isqrt(int(value.shape[1]))
                per_side = math.isqrt(int(value.shape[0]))
                img = per_side * w * (2**s) * int(stem.shape[-1])
                evidence = f"{key} {tuple(value.shape)}: {per_side}x{per_side} windows of {w}x{w} at stage {s}"
                found["IMAGE_ENCODER.IMG_SIZE"] = (img, evidence)
                break
        if any(k.startswith("image_encoder.absolute_pos_embed") for k in sd):
            found[f"{enc}.APE"] = (True, "image_encoder.absolute_pos_embed")
    else:
        levels, windows, kernels = [], [], []
        for s in sorted(blocks):
            b = min(blocks[s])
            prefix = f"image_encoder.layers.{s}.blocks.{b}.modulation.focal_layers."
            ks = sorted({int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)})
            levels.append(len(ks))
            stage_kernels = [int(sd[f"{prefix}{l}.0.weight"].shape[-1]) for l in ks if f"{prefix}{l}.0.weight" in sd]
            kernels.append(stage_kernels)
            windows.append(stage_kernels[0] if stage_kernels else -1)
        if levels:
            found[f"{enc}.FOCAL_LEVELS"] = (levels, "number of modulation.focal_layers per stage")
            found[f"{enc}.FOCAL_WINDOWS"] = (windows, "kernel size of modulation.focal_layers.0 per stage")
            found["_FOCAL_KERNELS"] = (kernels, "kernel sizes of modulation.focal_layers per stage")
        has_blocks = any(k.startswith("image_encoder.layers.") for k in sd)
        if has_blocks:
            found[f"{enc}.USE_LAYERSCALE"] = (any(k.endswith(".gamma_1") for k in sd), "presence of blocks.<b>.gamma_1")
            found[f"{enc}.USE_POSTLN"] = (any(".modulation.ln." in k for k in sd), "presence of modulation.ln")
        if stem is not None:
            downsample_kernels = {int(sd[k].shape[-1]) for k in sd if k.endswith(".downsample.proj.weight")}
            # USE_CONV_EMBED: 7x7 stem (stride 4) and 3x3 downsampling convs instead of patch-sized ones
            conv_embed = stem.shape[-1] == 7 and (not downsample_kernels or downsample_kernels == {3})
            evidence = f"kernel of image_encoder.patch_embed.proj.weight {tuple(stem.shape)}"
            found[f"{enc}.USE_CONV_EMBED"] = (bool(conv_embed), evidence)
            if not conv_embed:
                found[f"{enc}.PATCH_SIZE"] = (int(stem.shape[-1]), f"image_encoder.patch_embed.proj.weight {tuple(stem.shape)}")

    tok = sd.get("text_encoder.token_embedding.weight")
    if tok is not None and tok.ndim == 2:
        found["TEXT_ENCODER.WIDTH"] = (int(tok.shape[1]), f"text_encoder.token_embedding.weight {tuple(tok.shape)}")
        found["_VOCAB_SIZE"] = (int(tok.shape[0]), f"text_encoder.token_embedding.weight {tuple(tok.shape)}")
    pos = sd.get("text_encoder.positional_embedding")
    if pos is not None and pos.ndim == 2:
        found["TEXT_ENCODER.CONTEXT_LENGTH"] = (int(pos.shape[0]), f"text_encoder.positional_embedding {tuple(pos.shape)}")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"text_encoder\.resblocks\.(\d+)\.", k))}
    if layers:
        found["TEXT_ENCODER.LAYERS"] = (len(layers), "number of text_encoder.resblocks")
    for name in ("text_projection", "image_projection"):
        proj = sd.get(name)
        if proj is not None and proj.ndim == 2:
            found["DIM_PROJECTION"] = (int(proj.shape[1]), f"{name} {tuple(proj.shape)}")
            break
    return found


def check_config_against_weights(node: dict, state_dict: Mapping[str, torch.Tensor], context: str = "") -> None:
    """Raises one `ConversionError` listing every config field that disagrees with the weights (field, config value,
    checkpoint value and the evidence). The text tower's HEADS cannot be read from the weights and is not checked.
    `context` (e.g. "--config X, --checkpoint Y") starts the message."""
    where = f"{context}: " if context else ""
    found = infer_hyperparameters(state_dict)
    kind_cfg = node["IMAGE_ENCODER"]["TYPE"]
    kind_ckpt = found["IMAGE_ENCODER.TYPE"][0]
    if any(k.startswith("image_encoder.") for k in state_dict) and kind_cfg != kind_ckpt:
        raise ConversionError(
            f"{where}config field MODEL.IMAGE_ENCODER.TYPE: config value {kind_cfg!r}, checkpoint value {kind_ckpt!r} "
            f"(the checkpoint's image encoder has {found['IMAGE_ENCODER.TYPE'][1]})."
        )
    problems = []

    def compare(field: str, config_value: Any, checkpoint_value: Any, evidence: str) -> None:
        if isinstance(config_value, float) or isinstance(checkpoint_value, float):
            same = math.isclose(float(config_value), float(checkpoint_value), rel_tol=1e-6)
        elif isinstance(config_value, (list, tuple)):
            if field.endswith("DEPTHS"):
                same = list(config_value) == list(checkpoint_value)
            else:  # per-stage lists may be longer than the number of stages (the original uses the first ones)
                same = list(config_value)[: len(checkpoint_value)] == list(checkpoint_value)
                same = same and len(config_value) >= len(checkpoint_value)
        else:
            same = config_value == checkpoint_value
        if not same:
            problems.append(
                f"config field MODEL.{field}: config value {config_value!r}, checkpoint value {checkpoint_value!r} "
                f"({evidence})"
            )

    for field, (value, evidence) in found.items():
        if field.startswith("_") or field == "IMAGE_ENCODER.TYPE":
            continue
        config_value = _get(node, field)
        if field == "IMAGE_ENCODER.SWIN.APE":
            continue  # reported as unsupported below
        compare(field, config_value, value, evidence)

    if "_VOCAB_SIZE" in found and found["_VOCAB_SIZE"][0] != CLIP_VOCAB_SIZE:
        problems.append(
            f"config field MODEL.TEXT_ENCODER.TOKENIZER: config value 'clip' ({CLIP_VOCAB_SIZE} tokens), checkpoint "
            f"vocabulary {found['_VOCAB_SIZE'][0]} ({found['_VOCAB_SIZE'][1]})"
        )
    # the image feature width and the text width must match the projections
    proj = state_dict.get("image_projection")
    if proj is not None and proj.ndim == 2 and kind_cfg == kind_ckpt:
        sub = node["IMAGE_ENCODER"]["SWIN" if kind_cfg == "swin" else "FOCAL"]
        dim_out = sub["EMBED_DIM"] * 2 ** (len(sub["DEPTHS"]) - 1)
        if proj.shape[0] != dim_out:
            problems.append(
                f"config fields MODEL.IMAGE_ENCODER.{'SWIN' if kind_cfg == 'swin' else 'FOCAL'}.EMBED_DIM/DEPTHS give an "
                f"image feature width of {dim_out}, checkpoint value {int(proj.shape[0])} (image_projection {tuple(proj.shape)})"
            )
    proj = state_dict.get("text_projection")
    if (
        proj is not None and proj.ndim == 2 and proj.shape[0] != node["TEXT_ENCODER"]["WIDTH"]
        and "TEXT_ENCODER.WIDTH" not in found
    ):
        problems.append(
            f"config field MODEL.TEXT_ENCODER.WIDTH: config value {node['TEXT_ENCODER']['WIDTH']}, checkpoint value "
            f"{int(proj.shape[0])} (text_projection {tuple(proj.shape)})"
        )
    if state_dict.get("image_projection") is not None and state_dict.get("text_projection") is not None:
        a, b = state_dict["image_projection"], state_dict["text_projection"]
        if a.ndim == 2 and b.ndim == 2 and a.shape[1] != b.shape[1]:
            problems.append(
                f"image_projection {tuple(a.shape)} and text_projection {tuple(b.shape)} disagree on the projection dim"
            )

    if kind_cfg == "swin" and kind_cfg == kind_ckpt and "_SWIN_TABLE_WINDOWS" in found and not problems:
        # per-stage window after the original's clamp to the stage resolution
        geometry = _swin_stage_geometry(node)
        table_windows = found["_SWIN_TABLE_WINDOWS"][0]
        expected = [g["window"] for g in geometry]
        if table_windows != expected[: len(table_windows)]:
            problems.append(
                f"config field MODEL.IMAGE_ENCODER.IMG_SIZE: config value {node['IMAGE_ENCODER']['IMG_SIZE']} gives "
                f"per-stage windows {expected}, the checkpoint's relative_position_bias_table sizes give {table_windows}"
            )
    if kind_cfg == "focal" and "_FOCAL_KERNELS" in found:
        for s, kernels in enumerate(found["_FOCAL_KERNELS"][0]):
            if kernels and kernels != [2 * l + kernels[0] for l in range(len(kernels))]:
                problems.append(
                    f"stage {s}: focal kernel sizes {kernels} are not 2 * level + FOCAL_WINDOWS (focal factor 2, the only "
                    "one the original FocalNet and transformers' FocalNet build)"
                )
    if found.get("IMAGE_ENCODER.SWIN.APE", (False,))[0]:
        problems.append("the checkpoint has an absolute position embedding (APE), which is not supported")
    if problems:
        header = f"{where}the config does not match the checkpoint's weights:"
        raise ConversionError(header[0].upper() + header[1:] + "\n  " + "\n  ".join(problems))

    if kind_cfg == "swin":
        window = node["IMAGE_ENCODER"]["SWIN"]["WINDOW_SIZE"]
        for s, g in enumerate(_swin_stage_geometry(node)):
            if g["window"] < window:
                raise ConversionError(
                    f"{where}Swin stage {s} has resolution {g['resolution']} < MODEL.IMAGE_ENCODER.SWIN.WINDOW_SIZE={window}: the "
                    "original shrinks the window (and its relative position table) to the resolution, transformers' "
                    "SwinModel does not; such a model cannot be converted."
                )


# ------------------------------------------------------------------------------------------------- UniCLConfig
def _round_up_logit_scale_max(logit_scale: float) -> float:
    return float(math.ceil(math.exp(logit_scale) * 1.001))


def build_unicl_config(node: dict, state_dict: Mapping[str, torch.Tensor] | None = None) -> UniCLConfig:
    """The `UniCLConfig` that reproduces the original model described by `node` (a `load_original_config` result).
    With `state_dict`, the MLP width of the text tower and the logit-scale bound are taken from the weights."""
    enc, text = node["IMAGE_ENCODER"], node["TEXT_ENCODER"]
    if enc["TYPE"] == "swin":
        swin = enc["SWIN"]
        vision_config = {
            "model_type": "swin",
            "image_size": enc["IMG_SIZE"],
            "patch_size": swin["PATCH_SIZE"],
            "num_channels": swin["IN_CHANS"],
            "embed_dim": swin["EMBED_DIM"],
            "depths": list(swin["DEPTHS"]),
            "num_heads": list(swin["NUM_HEADS"])[: len(swin["DEPTHS"])],
            "window_size": swin["WINDOW_SIZE"],
            "mlp_ratio": float(swin["MLP_RATIO"]),
            "qkv_bias": bool(swin["QKV_BIAS"]),
            "hidden_act": "gelu",
            "use_absolute_embeddings": False,
            "layer_norm_eps": 1e-5,
            "hidden_dropout_prob": float(enc["DROP_RATE"]),
            "attention_probs_dropout_prob": 0.0,
            "drop_path_rate": float(enc["DROP_PATH_RATE"]),
        }
    else:
        focal = enc["FOCAL"]
        n = len(focal["DEPTHS"])
        dims = [focal["EMBED_DIM"] * 2**i for i in range(n)]
        vision_config = {
            "model_type": "focalnet",
            "image_size": enc["IMG_SIZE"],
            "patch_size": focal["PATCH_SIZE"],
            "num_channels": focal["IN_CHANS"],
            "embed_dim": focal["EMBED_DIM"],
            # output width of each stage (after its downsampling), as transformers' FocalNet checkpoints define it;
            # hidden_sizes[-1] is the pooled feature width (embed_dim * 2 ** (num_stages - 1))
            "hidden_sizes": dims[1:] + [dims[-1]],
            "depths": list(focal["DEPTHS"]),
            "focal_levels": list(focal["FOCAL_LEVELS"])[:n],
            "focal_windows": list(focal["FOCAL_WINDOWS"])[:n],
            "mlp_ratio": float(focal["MLP_RATIO"]),
            "use_conv_embed": bool(focal["USE_CONV_EMBED"]),
            "use_layerscale": bool(focal["USE_LAYERSCALE"]),
            "layerscale_value": 1e-4,
            # the original's USE_POSTLN is a LayerNorm inside the modulation (before `proj`), never a post-norm block
            "use_post_layernorm": False,
            "use_post_layernorm_in_modulation": bool(focal["USE_POSTLN"]),
            "normalize_modulator": False,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-5,
            "hidden_dropout_prob": float(enc["DROP_RATE"]),
            "drop_path_rate": float(enc["DROP_PATH_RATE"]),
        }
    width = text["WIDTH"]
    intermediate = 4 * width
    if state_dict is not None and "text_encoder.resblocks.0.mlp.c_fc.weight" in state_dict:
        intermediate = int(state_dict["text_encoder.resblocks.0.mlp.c_fc.weight"].shape[0])
    text_config = {
        "model_type": "clip_text_model",
        "vocab_size": CLIP_VOCAB_SIZE,
        "hidden_size": width,
        "intermediate_size": intermediate,
        "num_hidden_layers": text["LAYERS"],
        "num_attention_heads": text["HEADS"],
        "max_position_embeddings": text["CONTEXT_LENGTH"],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-12,
        "bos_token_id": CLIP_BOS_TOKEN_ID,
        "eos_token_id": CLIP_EOS_TOKEN_ID,
        "pad_token_id": CLIP_EOS_TOKEN_ID,
    }
    logit_scale_max = DEFAULT_LOGIT_SCALE_MAX
    if state_dict is not None and "logit_scale" in state_dict:
        stored = float(state_dict["logit_scale"].float().reshape(-1)[0])
        if math.exp(stored) > DEFAULT_LOGIT_SCALE_MAX:
            logit_scale_max = _round_up_logit_scale_max(stored)
            logger.info(
                "logit_scale: exp(%.6f) = %.4f exceeds the default clamp of %g; setting logit_scale_max = %g so that "
                "converted logits are unchanged.",
                stored, math.exp(stored), DEFAULT_LOGIT_SCALE_MAX, logit_scale_max,
            )
        elif stored < 0:
            logger.warning(
                "logit_scale: exp(%.6f) = %.4f is below 1; UniCLModel clamps the multiplier to >= 1, so converted logits "
                "differ from the original ones by that factor (embeddings are unaffected).",
                stored, math.exp(stored),
            )
    return UniCLConfig(
        vision_config=vision_config,
        text_config=text_config,
        projection_dim=node["DIM_PROJECTION"],
        logit_scale_max=logit_scale_max,
    )


# -------------------------------------------------------------------------------------------- expected original keys
def expected_original_keys(node: dict) -> tuple[set[str], set[str]]:
    """(required, optional) key sets of the original `UniCLModel.state_dict()` for this config. The optional keys
    are the deterministic Swin buffers (`relative_position_index`, `attn_mask`)."""
    required = {"logit_scale", "image_projection", "text_projection"}
    optional: set[str] = set()
    text = node["TEXT_ENCODER"]
    required |= {"text_encoder.token_embedding.weight", "text_encoder.positional_embedding"}
    required |= {f"text_encoder.ln_final.{p}" for p in ("weight", "bias")}
    for i in range(text["LAYERS"]):
        p = f"text_encoder.resblocks.{i}."
        required |= {p + "attn.in_proj_weight", p + "attn.in_proj_bias", p + "attn.out_proj.weight", p + "attn.out_proj.bias"}
        for name in ("ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            required |= {f"{p}{name}.weight", f"{p}{name}.bias"}

    enc = node["IMAGE_ENCODER"]
    wb = ("weight", "bias")
    required |= {f"image_encoder.patch_embed.{m}.{p}" for m in ("proj", "norm") for p in wb}
    required |= {f"image_encoder.norm.{p}" for p in wb}
    if enc["TYPE"] == "swin":
        swin = enc["SWIN"]
        geometry = _swin_stage_geometry(node)
        n = len(swin["DEPTHS"])
        for s, depth in enumerate(swin["DEPTHS"]):
            for b in range(depth):
                p = f"image_encoder.layers.{s}.blocks.{b}."
                required |= {p + "attn.relative_position_bias_table", p + "attn.qkv.weight"}
                if swin["QKV_BIAS"]:
                    required.add(p + "attn.qkv.bias")
                for name in ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2"):
                    required |= {f"{p}{name}.{x}" for x in wb}
                optional.add(p + "attn.relative_position_index")
                if b % 2 == 1 and geometry[s]["shift"] > 0:
                    optional.add(p + "attn_mask")
            if s < n - 1:
                p = f"image_encoder.layers.{s}.downsample."
                required |= {p + "reduction.weight", p + "norm.weight", p + "norm.bias"}
    else:
        focal = enc["FOCAL"]
        n = len(focal["DEPTHS"])
        for s, depth in enumerate(focal["DEPTHS"]):
            for b in range(depth):
                p = f"image_encoder.layers.{s}.blocks.{b}."
                for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "modulation.f", "modulation.h", "modulation.proj"):
                    required |= {f"{p}{name}.{x}" for x in wb}
                required |= {f"{p}modulation.focal_layers.{l}.0.weight" for l in range(focal["FOCAL_LEVELS"][s])}
                if focal["USE_POSTLN"]:
                    required |= {f"{p}modulation.ln.{x}" for x in wb}
                if focal["USE_LAYERSCALE"]:
                    required |= {p + "gamma_1", p + "gamma_2"}
            if s < n - 1:
                p = f"image_encoder.layers.{s}.downsample."
                required |= {f"{p}{m}.{x}" for m in ("proj", "norm") for x in wb}
    return required, optional


# ----------------------------------------------------------------------------------------------------- key mapping
def _first_present(reference: Mapping[str, Any], prefix: str, candidates: tuple[str, ...], suffix: str = ".weight") -> str:
    """The first candidate module name under `prefix` that exists in `reference` (transformers renames modules
    between versions, e.g. Swin's `attention.self.query` -> `attention.q_proj`)."""
    for candidate in candidates:
        if f"{prefix}{candidate}{suffix}" in reference:
            return candidate
    return candidates[0]


def _text_prefix(reference: Mapping[str, Any]) -> str:
    for prefix in ("text_model.", "text_model.text_model."):
        if f"{prefix}embeddings.token_embedding.weight" in reference:
            return prefix
    return "text_model."


_SWIN_BLOCK = re.compile(r"image_encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_STAGE_DOWNSAMPLE = re.compile(r"image_encoder\.layers\.(\d+)\.downsample\.(.+)$")
_TEXT_BLOCK = re.compile(r"text_encoder\.resblocks\.(\d+)\.(.+)$")


def _map_text(key: str, value: torch.Tensor, reference: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    tp = _text_prefix(reference)
    simple = {
        "text_encoder.token_embedding.weight": "embeddings.token_embedding.weight",
        "text_encoder.positional_embedding": "embeddings.position_embedding.weight",
        "text_encoder.ln_final.weight": "final_layer_norm.weight",
        "text_encoder.ln_final.bias": "final_layer_norm.bias",
    }
    if key in simple:
        return {tp + simple[key]: value}
    m = _TEXT_BLOCK.match(key)
    if not m:
        return None
    i, rest = m.group(1), m.group(2)
    p = f"{tp}encoder.layers.{i}."
    if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
        if value.shape[0] % 3:
            return {f"{p}self_attn.in_proj ({rest}: first dim {value.shape[0]} not divisible by 3)": value}
        q, k, v = value.chunk(3, dim=0)
        kind = "weight" if rest.endswith("weight") else "bias"
        return {f"{p}self_attn.q_proj.{kind}": q, f"{p}self_attn.k_proj.{kind}": k, f"{p}self_attn.v_proj.{kind}": v}
    renames = {"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.",
               "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}
    for old, new in renames.items():
        if rest.startswith(old) and rest[len(old) :] in ("weight", "bias"):
            return {p + new + rest[len(old) :]: value}
    return None


# Patch embedding and final LayerNorm: the same names in the original Swin and FocalNet, and in HF's.
_IMAGE_STEM_AND_FINAL_NORM = {
    "image_encoder.patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "image_encoder.patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "image_encoder.patch_embed.norm.weight": "embeddings.norm.weight",
    "image_encoder.patch_embed.norm.bias": "embeddings.norm.bias",
    "image_encoder.norm.weight": "layernorm.weight",
    "image_encoder.norm.bias": "layernorm.bias",
}


def _map_swin(key: str, value: torch.Tensor, reference: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    vp = "vision_model."
    if key in _IMAGE_STEM_AND_FINAL_NORM:
        return {vp + _IMAGE_STEM_AND_FINAL_NORM[key]: value}
    m = _STAGE_DOWNSAMPLE.match(key)
    if m:
        s, rest = m.groups()
        if rest in ("reduction.weight", "norm.weight", "norm.bias"):
            return {f"{vp}encoder.layers.{s}.downsample.{rest}": value}
        return None
    m = _SWIN_BLOCK.match(key)
    if not m:
        return None
    s, b, rest = m.groups()
    p = f"{vp}encoder.layers.{s}.blocks.{b}."
    q_name = _first_present(reference, p, ("attention.q_proj", "attention.self.query"))
    k_name = _first_present(reference, p, ("attention.k_proj", "attention.self.key"))
    v_name = _first_present(reference, p, ("attention.v_proj", "attention.self.value"))
    o_name = _first_present(reference, p, ("attention.o_proj", "attention.output.dense"))
    table = _first_present(
        reference, p,
        ("attention.relative_position_bias.relative_position_bias_table", "attention.self.relative_position_bias_table"),
        suffix="",
    )
    fc1 = _first_present(reference, p, ("mlp.fc1", "intermediate.dense"))
    fc2 = _first_present(reference, p, ("mlp.fc2", "output.dense"))
    if rest in ("attn.qkv.weight", "attn.qkv.bias"):
        if value.shape[0] % 3:
            return {f"{p}attention.qkv ({rest}: first dim {value.shape[0]} not divisible by 3)": value}
        q, k, v = value.chunk(3, dim=0)  # rows [0, C) query, [C, 2C) key, [2C, 3C) value
        kind = rest.rsplit(".", 1)[1]
        return {f"{p}{q_name}.{kind}": q, f"{p}{k_name}.{kind}": k, f"{p}{v_name}.{kind}": v}
    if rest == "attn.relative_position_bias_table":
        return {p + table: value}
    renames = {"norm1.": "layernorm_before.", "norm2.": "layernorm_after.", "attn.proj.": o_name + ".",
               "mlp.fc1.": fc1 + ".", "mlp.fc2.": fc2 + "."}
    for old, new in renames.items():
        if rest.startswith(old) and rest[len(old) :] in ("weight", "bias"):
            return {p + new + rest[len(old) :]: value}
    return None


def _map_focal(key: str, value: torch.Tensor, reference: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    vp = "vision_model."
    if key in _IMAGE_STEM_AND_FINAL_NORM:
        return {vp + _IMAGE_STEM_AND_FINAL_NORM[key]: value}
    m = _STAGE_DOWNSAMPLE.match(key)
    if m:
        s, rest = m.groups()
        renames = {"proj.weight": "projection.weight", "proj.bias": "projection.bias",
                   "norm.weight": "norm.weight", "norm.bias": "norm.bias"}
        return {f"{vp}encoder.stages.{s}.downsample.{renames[rest]}": value} if rest in renames else None
    m = _SWIN_BLOCK.match(key)
    if not m:
        return None
    s, b, rest = m.groups()
    p = f"{vp}encoder.stages.{s}.layers.{b}."
    if rest in ("gamma_1", "gamma_2"):
        return {p + rest: value}
    fl = re.match(r"modulation\.focal_layers\.(\d+)\.0\.weight$", rest)
    if fl:
        return {f"{p}modulation.focal_layers.{fl.group(1)}.0.weight": value}
    renames = {"norm1.": "norm1.", "norm2.": "norm2.", "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2.",
               "modulation.f.": "modulation.projection_in.", "modulation.h.": "modulation.projection_context.",
               "modulation.proj.": "modulation.projection_out.", "modulation.ln.": "modulation.layernorm."}
    for old, new in renames.items():
        if rest.startswith(old) and rest[len(old) :] in ("weight", "bias"):
            return {p + new + rest[len(old) :]: value}
    return None


def _map_key(key: str, value: torch.Tensor, node: dict, reference: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    if key == "logit_scale":
        return {"logit_scale": value.reshape(())}
    if key == "image_projection":  # [dim_out, P] applied as x @ W: the transpose of an nn.Linear weight
        return {"visual_projection.weight": value.t()}
    if key == "text_projection":
        return {"text_projection.weight": value.t()}
    if key.startswith("text_encoder."):
        return _map_text(key, value, reference)
    if key.startswith("image_encoder."):
        mapper = _map_swin if node["IMAGE_ENCODER"]["TYPE"] == "swin" else _map_focal
        return mapper(key, value, reference)
    return None


def _verify_swin_buffers(state_dict: Mapping[str, torch.Tensor], node: dict) -> list[str]:
    """Checks the stored relative_position_index / attn_mask buffers against their formulas for this config."""
    problems = []
    geometry = _swin_stage_geometry(node)
    cache: dict[tuple, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = _SWIN_BLOCK.match(key)
        if not m or m.group(3) not in ("attn.relative_position_index", "attn_mask"):
            continue
        s = int(m.group(1))
        if s >= len(geometry):
            continue  # reported as an unknown key
        g = geometry[s]
        if m.group(3) == "attn.relative_position_index":
            expected = cache.setdefault(("index", g["window"]), swin_relative_position_index(g["window"]))
        else:
            expected = cache.setdefault(
                ("mask", g["resolution"], g["window"], g["shift"]),
                swin_attention_mask(g["resolution"], g["resolution"], g["window"], g["shift"]),
            )
        if tuple(value.shape) != tuple(expected.shape):
            problems.append(
                f"{key}: shape {tuple(value.shape)}, but MODEL.IMAGE_ENCODER.IMG_SIZE={node['IMAGE_ENCODER']['IMG_SIZE']} "
                f"and WINDOW_SIZE={node['IMAGE_ENCODER']['SWIN']['WINDOW_SIZE']} give {tuple(expected.shape)}"
            )
        elif not torch.equal(value.to(expected.dtype), expected):
            problems.append(f"{key}: differs from the value the Swin formula gives for this config")
    return problems


def convert_original_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    node: dict,
    reference: Mapping[str, torch.Tensor] | None = None,
    context: str = "",
) -> dict[str, torch.Tensor]:
    """Maps an original state dict (names as `normalize_original_state_dict` returns them) onto `UniCLModel` names.

    `reference` is the `state_dict()` of the target `UniCLModel` (built from `build_unicl_config` when omitted).
    Raises one `ConversionError` listing every key it cannot map, every expected key the checkpoint lacks, every shape
    mismatch, every wrong deterministic buffer and every target weight that would stay uninitialised."""
    check_config_against_weights(node, state_dict, context)
    if reference is None:
        reference = UniCLModel(build_unicl_config(node, state_dict)).state_dict()
    required, optional = expected_original_keys(node)
    present = set(state_dict)
    unknown = sorted(present - required - optional)
    missing = sorted(required - present)
    problems: list[str] = []
    if node["IMAGE_ENCODER"]["TYPE"] == "swin":
        problems += _verify_swin_buffers(state_dict, node)

    converted: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    unmappable = []
    for key in sorted(present & required):
        mapped = _map_key(key, state_dict[key], node, reference)
        if mapped is None:
            unmappable.append(key)
            continue
        for target, tensor in mapped.items():
            if target in converted:
                problems.append(f"{key} and {source_of[target]} both map to {target}")
            converted[target] = tensor.detach().clone().contiguous()
            source_of[target] = key

    shape_problems = []
    for target, tensor in converted.items():
        if target in reference and tuple(reference[target].shape) != tuple(tensor.shape):
            shape_problems.append(
                f"{source_of[target]} -> {target}: checkpoint shape {tuple(tensor.shape)}, model expects "
                f"{tuple(reference[target].shape)}"
            )
    unexpected_targets = sorted(t for t in converted if t not in reference)
    uninitialised = sorted(t for t in reference if t not in converted)

    sections = []
    if unknown or unmappable:
        sections.append(("keys the converter cannot map (not part of a UniCL model with this config)", unknown + unmappable))
    if missing:
        sections.append(("keys missing from the checkpoint", missing))
    if shape_problems:
        sections.append(("shape mismatches", shape_problems))
    if problems:
        sections.append(("other problems", problems))
    if unexpected_targets:
        sections.append(("converted names the model does not have", [f"{source_of[t]} -> {t}" for t in unexpected_targets]))
    if uninitialised:
        sections.append(("UniCLModel weights left uninitialised", uninitialised))
    if sections:
        lines = [f"{context}: cannot convert the checkpoint:" if context else "Cannot convert the checkpoint:"]
        for title, items in sections:
            lines.append(f"  {title} ({len(items)}):")
            lines += [f"    {item}" for item in items]
        raise ConversionError("\n".join(lines))
    return converted


def convert_original_model(state_dict: Mapping[str, torch.Tensor], node: dict, context: str = "") -> UniCLModel:
    """A `UniCLModel` (eval mode, fp32) holding the converted weights, loaded with strict checking."""
    check_config_against_weights(node, state_dict, context)
    config = build_unicl_config(node, state_dict)
    model = UniCLModel(config)
    reference = model.state_dict()
    converted = convert_original_state_dict(state_dict, node, reference=reference, context=context)
    _check_hf_relative_position_index(model, node)
    model.load_state_dict(converted, strict=True)
    model.eval()
    # the clamp of the forward pass must leave the stored multiplier as it is
    if "logit_scale" in state_dict:
        stored = state_dict["logit_scale"].float().reshape(())
        if stored >= 0 and not torch.equal(model.get_logit_scale().detach(), stored.exp()):
            raise ConversionError(
                f"logit_scale {float(stored):.6f}: exp = {float(stored.exp()):.4f} is changed by the clamp to "
                f"[1, {config.logit_scale_max}] of UniCLModel."
            )
    return model


def _check_hf_relative_position_index(model: UniCLModel, node: dict) -> None:
    """transformers' Swin recomputes its relative_position_index; it must equal the original formula."""
    if node["IMAGE_ENCODER"]["TYPE"] != "swin":
        return
    window = node["IMAGE_ENCODER"]["SWIN"]["WINDOW_SIZE"]
    expected = swin_relative_position_index(window).reshape(-1)
    for name, buffer in model.named_buffers():
        if name.startswith("vision_model.") and name.endswith("relative_position_index"):
            if not torch.equal(buffer.reshape(-1).to(expected.dtype), expected):
                raise ConversionError(f"transformers' {name} differs from the original Swin formula; cannot convert.")


def build_processor(node: dict) -> UniCLProcessor:
    """`UniCLProcessor` with the original evaluation preprocessing for this image size (resize the short side to
    IMG_SIZE * 256 / 224, center crop IMG_SIZE) and the CLIP tokenizer with the config's context length."""
    img = node["IMAGE_ENCODER"]["IMG_SIZE"]
    image_processor = UniCLImageProcessor(
        size={"shortest_edge": round(img * 256 / 224)}, crop_size={"height": img, "width": img}
    )
    tokenizer = build_clip_tokenizer(model_max_length=node["TEXT_ENCODER"]["CONTEXT_LENGTH"])
    return UniCLProcessor(image_processor=image_processor, tokenizer=tokenizer)


# ------------------------------------------------------------------------------------------------------ model card
_CARD_UTILS: Any = None


def _model_card_utils():
    """`scripts/model_card_utils.py` of this repository (or an importable `model_card_utils`), else None."""
    global _CARD_UTILS
    if _CARD_UTILS is not None:
        return _CARD_UTILS
    path = Path(__file__).resolve().parents[2] / "scripts" / "model_card_utils.py"
    module = None
    if path.is_file():
        existing = sys.modules.get("model_card_utils")
        if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == path:
            module = existing
        else:
            spec = importlib.util.spec_from_file_location("_unicl_model_card_utils", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    else:
        try:
            import model_card_utils as module  # noqa: PLC0415
        except ImportError:
            module = None
    _CARD_UTILS = module
    return module


def _config_summary(node: dict, config: UniCLConfig, checkpoint: str, config_arg: str, repo_id: str | None) -> dict:
    enc = node["IMAGE_ENCODER"]
    sub = enc["SWIN" if enc["TYPE"] == "swin" else "FOCAL"]
    vision = {"type": "swin" if enc["TYPE"] == "swin" else "focalnet", "image_size": enc["IMG_SIZE"]}
    for field in ("PATCH_SIZE", "EMBED_DIM", "DEPTHS", "NUM_HEADS", "WINDOW_SIZE", "FOCAL_LEVELS", "FOCAL_WINDOWS"):
        if field in sub and (enc["TYPE"] == "swin") == (field not in ("FOCAL_LEVELS", "FOCAL_WINDOWS")):
            vision[field.lower()] = sub[field]
    text = node["TEXT_ENCODER"]
    summary = {
        "checkpoint": checkpoint,
        "config": config_arg,
        "vision_config": vision,
        "text_config": {
            "width": text["WIDTH"], "heads": text["HEADS"], "layers": text["LAYERS"],
            "context_length": text["CONTEXT_LENGTH"], "tokenizer": "clip",
        },
        "projection_dim": node["DIM_PROJECTION"],
        "logit_scale_max": config.logit_scale_max,
    }
    if repo_id:
        summary["repo_id"] = repo_id
    return summary


def _make_model_card(card_name, checkpoint_path, node, config, config_arg, repo_id):
    utils = _model_card_utils()
    if utils is None:
        if card_name:
            raise ConversionError(f"--card {card_name}: scripts/model_card_utils.py is not available.")
        logger.warning("scripts/model_card_utils.py not found; writing a minimal README.md")
        return "---\nlibrary_name: transformers\ntags:\n- unicl\n- custom_code\n---\n\n# UniCL (converted checkpoint)\n"
    name = card_name or utils.card_name_for_checkpoint(checkpoint_path)
    if name:
        try:
            return utils.render_model_card(name, repo_id=repo_id)
        except ValueError as e:
            raise ConversionError(f"--card {name}: {e}") from None
    return utils.generic_model_card(_config_summary(node, config, str(checkpoint_path), config_arg, repo_id), repo_id=repo_id)


# --------------------------------------------------------------------------------------------------- whole pipeline
def _check_output_dir(out: Path, overwrite: bool) -> None:
    if out.is_symlink():
        raise ConversionError(f"--output-dir {out}: is a symbolic link; pass the folder it points to.")
    if out.exists():
        if not out.is_dir():
            raise ConversionError(f"--output-dir {out}: exists and is not a directory.")
        if any(out.iterdir()) and not overwrite:
            raise ConversionError(f"--output-dir {out}: exists and is not empty (pass --overwrite to replace it).")


def _apply_umask(folder: Path) -> None:
    """mkdtemp (and some writers) create owner-only entries; give the folder the permissions of a normal mkdir."""
    umask = None
    try:  # Linux: read it without changing it (os.umask is process-wide)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _verify_reloaded(folder: Path, model: UniCLModel) -> None:
    """Reloads the written folder and checks that every weight came back equal (catches a silently dropped key)."""
    reloaded, info = UniCLModel.from_pretrained(folder, output_loading_info=True)
    problems = [f"{kind}: {sorted(keys)}" for kind, keys in info.items() if keys and kind != "error_msgs"]
    problems += [str(e) for e in info.get("error_msgs", [])]
    original, again = model.state_dict(), reloaded.state_dict()
    if set(original) != set(again):
        problems.append(f"keys differ: {sorted(set(original) ^ set(again))}")
    problems += [f"{k} differs after reloading" for k in original if k in again and not torch.equal(original[k], again[k])]
    if problems:
        raise ConversionError(f"The written folder {folder} does not reload to the converted weights: " + "; ".join(problems))


def convert_unicl_checkpoint(
    checkpoint: str | os.PathLike,
    config: str | os.PathLike | Mapping,
    output_dir: str | os.PathLike,
    *,
    card_name: str | None = None,
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts an original UniCL checkpoint into a complete transformers folder at `output_dir`.

    The folder holds model.safetensors, config.json (with `auto_map`), the remote-code files, the processor files
    and README.md (`render_model_card(card_name)` when given or when the checkpoint's file name is a released
    checkpoint, else a generic card). It is written to a temporary folder next to `output_dir`, reloaded and
    compared, and only then renamed into place: a failed conversion leaves nothing at `output_dir`.

    Raises `ConversionError` on bad input; `output_dir` must be absent or empty unless `overwrite=True`."""
    out = Path(output_dir).absolute()
    _check_output_dir(out, overwrite)
    node = load_original_config(config)
    config_arg = config if isinstance(config, str) and config in PRESETS else (
        Path(os.fspath(config)).name if not isinstance(config, Mapping) else "dict"
    )
    utils = _model_card_utils()
    if card_name and utils is not None and card_name not in utils.known_checkpoints():
        raise ConversionError(f"--card {card_name!r}: unknown checkpoint name; known: {', '.join(utils.known_checkpoints())}.")

    state_dict = load_original_checkpoint(checkpoint)
    logger.info("read %d tensors from %s", len(state_dict), checkpoint)
    model = convert_original_model(state_dict, node, context=f"--checkpoint {checkpoint} with --config {config_arg}")
    del state_dict
    processor = build_processor(node)
    card = _make_model_card(card_name, Path(checkpoint), node, model.config, config_arg, repo_id)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    backup: Path | None = None
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
        _apply_umask(tmp)
        for required in ("model.safetensors", "config.json", "modeling_unicl.py", "configuration_unicl.py"):
            if not (tmp / required).is_file():
                raise ConversionError(f"save_pretrained did not write {required} into {tmp}")
        _verify_reloaded(tmp, model)
        _check_output_dir(out, overwrite)  # the folder may have appeared meanwhile
        if out.exists() and any(out.iterdir()):
            backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, backup / out.name)
        os.replace(tmp, out)  # atomic; replaces an empty directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if backup is not None and (backup / out.name).exists() and not out.exists():
            os.replace(backup / out.name, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    logger.info("wrote %s", out)
    return out
