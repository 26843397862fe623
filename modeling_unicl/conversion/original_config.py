"""The original (yacs) `MODEL` config node: from a YAML file, a dict or a preset of `modeling_unicl.presets`, merged
over the original defaults and validated."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..presets import MODEL_PRESETS, ModelPreset
from .errors import ConversionError

__all__ = ["ORIGINAL_MODEL_DEFAULTS", "PRESETS", "get_field", "load_original_config", "original_node_from_preset"]

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
    "DIM_PROJECTION", "IMAGE_ENCODER.TYPE", "TEXT_ENCODER.WIDTH", "TEXT_ENCODER.HEADS", "TEXT_ENCODER.LAYERS"
)
_REQUIRED_BY_TYPE = {
    "swin": tuple(f"IMAGE_ENCODER.SWIN.{f}" for f in ("EMBED_DIM", "DEPTHS", "NUM_HEADS", "WINDOW_SIZE")),
    "focal": tuple(f"IMAGE_ENCODER.FOCAL.{f}" for f in ("EMBED_DIM", "DEPTHS", "FOCAL_LEVELS", "FOCAL_WINDOWS")),
}


def get_field(node: Mapping, dotted: str, default: Any = None) -> Any:
    """`node["A"]["B"]` for `"A.B"`, or `default` when a level is missing."""
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _deep_merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------------------------------------------------- presets
def original_node_from_preset(preset: ModelPreset) -> dict:
    """The MODEL node of the original YAML file a preset of `modeling_unicl.presets` reproduces (the fields that
    file sets; `load_original_config` fills in the original defaults)."""
    config = preset.config()
    vision, text = config.vision_config, config.text_config
    if preset.original_config_file is None or vision.model_type != "swin" or text.model_type != "clip_text_model":
        raise ConversionError(
            f"config {preset.name!r}: the preset reproduces no original config (original_config_file="
            f"{preset.original_config_file!r}, towers {vision.model_type!r} + {text.model_type!r}); expected a Swin + "
            "CLIP-text preset with an original_config_file.",
            argument="config",
        )
    return {
        "NAME": Path(preset.original_config_file).stem,
        "DIM_PROJECTION": config.projection_dim,
        "IMAGE_ENCODER": {
            "TYPE": "swin",
            "IMG_SIZE": vision.image_size,
            "DROP_PATH_RATE": vision.drop_path_rate,
            "SWIN": {
                "EMBED_DIM": vision.embed_dim,
                "DEPTHS": list(vision.depths),
                "NUM_HEADS": list(vision.num_heads),
                "WINDOW_SIZE": vision.window_size,
            },
        },
        "TEXT_ENCODER": {
            "NAME": "transformer",
            "WIDTH": text.hidden_size,
            "HEADS": text.num_attention_heads,
            "LAYERS": text.num_hidden_layers,
            "CONTEXT_LENGTH": text.max_position_embeddings,
        },
    }


# The presets that can stand in for an original YAML file (those with an `original_config_file`), as MODEL nodes.
PRESETS: Mapping[str, dict] = MappingProxyType(
    {name: original_node_from_preset(p) for name, p in MODEL_PRESETS.items() if p.original_config_file}
)


# ------------------------------------------------------------------------------------------------------------- YAML
def _read_yaml_model_node(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The MODEL node of an original YAML file, with its `BASE` files merged underneath (as the original does)."""
    path = path.resolve()
    if path in seen:
        cycle = " -> ".join(map(str, seen))
        raise ConversionError(f"config {path}: BASE files include each other ({cycle}).", "config")
    if not path.is_file():
        raise ConversionError(f"config {path}: no such file.", "config")
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConversionError(f"config {path}: not valid YAML ({str(e).splitlines()[0]}).", "config") from e
    if not isinstance(data, Mapping):
        raise ConversionError(
            f"config {path}: expected a YAML mapping with a MODEL node, got {type(data).__name__}.", "config"
        )
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
        raise ConversionError(f"config {path}: no MODEL node (top-level keys: {sorted(map(str, data))}).", "config")
    if not isinstance(node, Mapping):
        raise ConversionError(f"config {path}: MODEL must be a mapping, got {type(node).__name__}.", "config")
    return _deep_merge(merged, node)


def _read_node(config: str | os.PathLike | Mapping) -> tuple[dict, str, str | None]:
    """(the MODEL node as given, the name of its source for messages, the `ConversionError.argument` to blame)."""
    if isinstance(config, Mapping):
        return dict(config.get("MODEL", config)), "config dict", None
    text = os.fspath(config)
    if text in PRESETS:
        return copy.deepcopy(PRESETS[text]), f"config {text!r}", "config"
    if Path(text).suffix.lower() in (".yaml", ".yml") or Path(text).exists() or os.sep in text:
        return _read_yaml_model_node(Path(text)), f"config {text}", "config"
    what = "a preset that reproduces no original config" if text in MODEL_PRESETS else (
        "neither a YAML file nor a known preset"
    )
    raise ConversionError(f"config {text!r}: {what} (known presets: {', '.join(PRESETS)}).", "config")


def load_original_config(config: str | os.PathLike | Mapping) -> dict:
    """The original `MODEL` config node: from a preset name (see `PRESETS`), an original YAML file (`MODEL:` at the
    top level, or a bare MODEL node; `BASE` files are merged) or a dict, merged over the original defaults.

    Raises `ConversionError` for an unknown preset, an unreadable file, missing required fields or wrong types."""
    node, source, argument = _read_node(config)
    image_type = str(get_field(node, "IMAGE_ENCODER.TYPE", "")).lower()
    image_type = "focal" if "focal" in image_type else "swin" if "swin" in image_type else image_type
    required = _REQUIRED_COMMON + _REQUIRED_BY_TYPE.get(image_type, ())
    missing = [f"MODEL.{field}" for field in required if get_field(node, field) is None]
    if missing:
        raise ConversionError(f"{source}: missing required field(s) {', '.join(missing)}.", argument)
    if image_type not in ("swin", "focal"):
        raise ConversionError(
            f"{source}: MODEL.IMAGE_ENCODER.TYPE={get_field(node, 'IMAGE_ENCODER.TYPE')!r} is not supported "
            "(supported: swin, focal).",
            argument,
        )
    merged = _deep_merge(ORIGINAL_MODEL_DEFAULTS, node)
    merged["IMAGE_ENCODER"]["TYPE"] = image_type
    for check, prefix in ((_type_problems, ""), (_unsupported_settings, "not supported by the transformers towers: ")):
        problems = check(merged)
        if problems:
            raise ConversionError(f"{source}: {prefix}" + "; ".join(problems) + ".", argument)
    return merged


# ------------------------------------------------------------------------------------------------------- validation
def _type_problems(node: dict) -> list[str]:
    """Every field of a merged node whose value has the wrong type (the original would fail or misbehave later)."""
    problems = []

    def want_int(field: str) -> None:
        value = get_field(node, field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append(f"MODEL.{field} must be a positive integer, got {value!r}")

    def want_int_list(field: str, length: int | None = None) -> None:
        value = get_field(node, field)
        if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        ):
            problems.append(f"MODEL.{field} must be a non-empty list of positive integers, got {value!r}")
        elif length is not None and len(value) < length:
            problems.append(f"MODEL.{field} has {len(value)} entries, DEPTHS has {length} stages")

    def want_number(field: str) -> None:
        value = get_field(node, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"MODEL.{field} must be a number, got {value!r}")

    for field in ("DIM_PROJECTION", "IMAGE_ENCODER.IMG_SIZE", "TEXT_ENCODER.WIDTH", "TEXT_ENCODER.HEADS",
                  "TEXT_ENCODER.LAYERS", "TEXT_ENCODER.CONTEXT_LENGTH"):
        want_int(field)
    want_number("IMAGE_ENCODER.DROP_PATH_RATE")
    want_number("IMAGE_ENCODER.DROP_RATE")
    tower = "IMAGE_ENCODER." + ("SWIN" if node["IMAGE_ENCODER"]["TYPE"] == "swin" else "FOCAL")
    for field in ("PATCH_SIZE", "IN_CHANS", "EMBED_DIM"):
        want_int(f"{tower}.{field}")
    want_number(f"{tower}.MLP_RATIO")
    want_int_list(f"{tower}.DEPTHS")
    depths = get_field(node, f"{tower}.DEPTHS")
    n_stages = len(depths) if isinstance(depths, (list, tuple)) else None
    if tower.endswith("SWIN"):
        want_int(f"{tower}.WINDOW_SIZE")
        want_int_list(f"{tower}.NUM_HEADS", n_stages)
    else:
        want_int_list(f"{tower}.FOCAL_LEVELS", n_stages)
        want_int_list(f"{tower}.FOCAL_WINDOWS", n_stages)
    return problems


def _unsupported_settings(node: dict) -> list[str]:
    """Settings the original supports but transformers' towers cannot reproduce."""
    text = node["TEXT_ENCODER"]
    unsupported = []
    if str(text.get("TOKENIZER", "clip")).lower() != "clip":
        unsupported.append(f"MODEL.TEXT_ENCODER.TOKENIZER={text.get('TOKENIZER')!r} (only the CLIP tokenizer)")
    if not text.get("AUTOGRESSIVE", True):
        unsupported.append("MODEL.TEXT_ENCODER.AUTOGRESSIVE=False (CLIPTextModel is always causal)")
    if str(text.get("NAME", "transformer")) != "transformer":
        unsupported.append(f"MODEL.TEXT_ENCODER.NAME={text.get('NAME')!r} (only 'transformer' is supported)")
    if text["WIDTH"] % text["HEADS"]:
        unsupported.append(f"MODEL.TEXT_ENCODER.WIDTH={text['WIDTH']} is not divisible by HEADS={text['HEADS']}")
    if node["IMAGE_ENCODER"]["TYPE"] == "swin":
        swin = node["IMAGE_ENCODER"]["SWIN"]
        if swin.get("APE"):
            unsupported.append("MODEL.IMAGE_ENCODER.SWIN.APE=True (absolute position embedding)")
        if not swin.get("PATCH_NORM", True):
            unsupported.append("MODEL.IMAGE_ENCODER.SWIN.PATCH_NORM=False")
        if swin.get("QK_SCALE") is not None:
            unsupported.append(f"MODEL.IMAGE_ENCODER.SWIN.QK_SCALE={swin['QK_SCALE']!r} (only head_dim ** -0.5)")
    elif not node["IMAGE_ENCODER"]["FOCAL"].get("PATCH_NORM", True):
        unsupported.append("MODEL.IMAGE_ENCODER.FOCAL.PATCH_NORM=False")
    return unsupported
