"""Original key names -> `UniCLModel` key names.

The mapping is a table of regular expressions (full match on the original key) and `re.Match.expand` templates,
as transformers' newer `convert_*_to_hf.py` converters write it; the few tensors whose value changes (the fused
query/key/value split, the transposed projections) are handled by the small functions below the tables."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .buffers import swin_stages
from .errors import ConversionError

__all__ = ["COMMON_KEYS", "FOCAL_KEYS", "SWIN_KEYS", "TEXT_KEYS", "expected_original_keys", "map_original_key"]

# A target containing "{qkv}" receives a fused query/key/value tensor: its rows are split into thirds (query, key,
# value, in this order in both the original attention and CLIP's), "{qkv}" becoming q, k and v.
COMMON_KEYS = {
    r"logit_scale": "logit_scale",
    r"image_projection": "visual_projection.weight",
    r"text_projection": "text_projection.weight",
}

_TEXT_LAYER, _HF_TEXT_LAYER = r"text_encoder\.resblocks\.(\d+)\.", r"text_model.encoder.layers.\1."
TEXT_KEYS = {
    r"text_encoder\.token_embedding\.weight": "text_model.embeddings.token_embedding.weight",
    r"text_encoder\.positional_embedding": "text_model.embeddings.position_embedding.weight",
    r"text_encoder\.ln_final\.(weight|bias)": r"text_model.final_layer_norm.\1",
    _TEXT_LAYER + r"attn\.in_proj_(weight|bias)": _HF_TEXT_LAYER + r"self_attn.{qkv}_proj.\2",
    _TEXT_LAYER + r"attn\.out_proj\.(weight|bias)": _HF_TEXT_LAYER + r"self_attn.out_proj.\2",
    _TEXT_LAYER + r"ln_([12])\.(weight|bias)": _HF_TEXT_LAYER + r"layer_norm\2.\3",
    _TEXT_LAYER + r"mlp\.c_fc\.(weight|bias)": _HF_TEXT_LAYER + r"mlp.fc1.\2",
    _TEXT_LAYER + r"mlp\.c_proj\.(weight|bias)": _HF_TEXT_LAYER + r"mlp.fc2.\2",
}

# Patch embedding and final LayerNorm: the same names in the original Swin and FocalNet, and in transformers'.
_IMAGE_STEM_KEYS = {
    r"image_encoder\.patch_embed\.proj\.(weight|bias)": r"vision_model.embeddings.patch_embeddings.projection.\1",
    r"image_encoder\.patch_embed\.norm\.(weight|bias)": r"vision_model.embeddings.norm.\1",
    r"image_encoder\.norm\.(weight|bias)": r"vision_model.layernorm.\1",
}

_BLOCK = r"image_encoder\.layers\.(\d+)\.blocks\.(\d+)\."
_HF_SWIN_BLOCK = r"vision_model.encoder.layers.\1.blocks.\2."
SWIN_KEYS = {
    **_IMAGE_STEM_KEYS,
    r"image_encoder\.layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)":
        r"vision_model.encoder.layers.\1.downsample.\2",
    _BLOCK + r"attn\.qkv\.(weight|bias)": _HF_SWIN_BLOCK + r"attention.{qkv}_proj.\3",
    _BLOCK + r"attn\.proj\.(weight|bias)": _HF_SWIN_BLOCK + r"attention.o_proj.\3",
    _BLOCK + r"attn\.relative_position_bias_table":
        _HF_SWIN_BLOCK + "attention.relative_position_bias.relative_position_bias_table",
    _BLOCK + r"norm1\.(weight|bias)": _HF_SWIN_BLOCK + r"layernorm_before.\3",
    _BLOCK + r"norm2\.(weight|bias)": _HF_SWIN_BLOCK + r"layernorm_after.\3",
    _BLOCK + r"mlp\.(fc[12])\.(weight|bias)": _HF_SWIN_BLOCK + r"mlp.\3.\4",
}

_HF_FOCAL_BLOCK = r"vision_model.encoder.stages.\1.layers.\2."
FOCAL_KEYS = {
    **_IMAGE_STEM_KEYS,
    r"image_encoder\.layers\.(\d+)\.downsample\.proj\.(weight|bias)":
        r"vision_model.encoder.stages.\1.downsample.projection.\2",
    r"image_encoder\.layers\.(\d+)\.downsample\.norm\.(weight|bias)":
        r"vision_model.encoder.stages.\1.downsample.norm.\2",
    _BLOCK + r"(gamma_[12])": _HF_FOCAL_BLOCK + r"\3",
    _BLOCK + r"(norm[12]|mlp\.fc[12])\.(weight|bias)": _HF_FOCAL_BLOCK + r"\3.\4",
    _BLOCK + r"modulation\.focal_layers\.(\d+)\.0\.weight": _HF_FOCAL_BLOCK + r"modulation.focal_layers.\3.0.weight",
    _BLOCK + r"modulation\.f\.(weight|bias)": _HF_FOCAL_BLOCK + r"modulation.projection_in.\3",
    _BLOCK + r"modulation\.h\.(weight|bias)": _HF_FOCAL_BLOCK + r"modulation.projection_context.\3",
    _BLOCK + r"modulation\.proj\.(weight|bias)": _HF_FOCAL_BLOCK + r"modulation.projection_out.\3",
    _BLOCK + r"modulation\.ln\.(weight|bias)": _HF_FOCAL_BLOCK + r"modulation.layernorm.\3",
}

_TABLES = {
    image_type: [(re.compile(pattern), template) for pattern, template in {**COMMON_KEYS, **TEXT_KEYS, **keys}.items()]
    for image_type, keys in (("swin", SWIN_KEYS), ("focal", FOCAL_KEYS))
}

# Original keys whose value changes, not only its name.
_VALUE_CONVERSIONS = {
    "logit_scale": lambda value: value.reshape(()),  # a 0-d parameter in UniCLModel
    # the original projections are [in, out] matrices applied as `x @ W`: the transpose of an nn.Linear weight
    "image_projection": torch.Tensor.t,
    "text_projection": torch.Tensor.t,
}

# Names of the table -> the name of the same tensor in other transformers 5.x releases (Swin's attention and MLP
# modules were renamed; a CLIPTextModel wraps its transformer in `text_model`), used when the model has no tensor
# of the table's name.
_OTHER_TRANSFORMERS_NAMES = (
    ("text_model.", "text_model.text_model."),
    (".attention.q_proj.", ".attention.self.query."),
    (".attention.k_proj.", ".attention.self.key."),
    (".attention.v_proj.", ".attention.self.value."),
    (".attention.o_proj.", ".attention.output.dense."),
    (".attention.relative_position_bias.relative_position_bias_table", ".attention.self.relative_position_bias_table"),
    (".mlp.fc1.", ".intermediate.dense."),
    (".mlp.fc2.", ".output.dense."),
)


def _resolve(target: str, reference: Mapping[str, torch.Tensor]) -> str:
    if target in reference:
        return target
    for name, other in _OTHER_TRANSFORMERS_NAMES:
        candidate = target.replace(name, other, 1)
        if candidate != target and candidate in reference:
            return candidate
    return target


def map_original_key(
    key: str, value: torch.Tensor, image_type: str, reference: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor] | None:
    """The `UniCLModel` tensors (name -> value) of one original tensor, or None when no table row matches `key`.

    `image_type` is "swin" or "focal"; `reference` is the target model's `state_dict()` (for the names that differ
    between transformers releases). Raises `ConversionError` for a fused query/key/value tensor that cannot be split
    into thirds."""
    for pattern, template in _TABLES[image_type]:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        target = match.expand(template)
        value = _VALUE_CONVERSIONS.get(key, lambda v: v)(value)
        if "{qkv}" not in target:
            return {_resolve(target, reference): value}
        if value.shape[0] % 3:
            shape = tuple(value.shape)
            raise ConversionError(f"fused query/key/value tensor of shape {shape}: rows not a multiple of 3")
        parts = value.chunk(3, dim=0)
        return {_resolve(target.replace("{qkv}", name), reference): part for name, part in zip("qkv", parts)}
    return None


def expected_original_keys(node: dict) -> tuple[set[str], set[str]]:
    """(required, optional) key sets of the original `UniCLModel.state_dict()` for this config. The optional keys
    are the deterministic Swin buffers (`relative_position_index`, `attn_mask`)."""
    wb = ("weight", "bias")
    required = {"logit_scale", "image_projection", "text_projection"}
    required |= {"text_encoder.token_embedding.weight", "text_encoder.positional_embedding"}
    required |= {f"text_encoder.ln_final.{x}" for x in wb}
    for i in range(node["TEXT_ENCODER"]["LAYERS"]):
        p = f"text_encoder.resblocks.{i}."
        required |= {p + "attn.in_proj_weight", p + "attn.in_proj_bias"}
        required |= {f"{p}{m}.{x}" for m in ("attn.out_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj") for x in wb}
    required |= {f"image_encoder.patch_embed.{m}.{x}" for m in ("proj", "norm") for x in wb}
    required |= {f"image_encoder.norm.{x}" for x in wb}
    image_keys = _expected_swin_keys if node["IMAGE_ENCODER"]["TYPE"] == "swin" else _expected_focal_keys
    image_required, optional = image_keys(node)
    return required | image_required, optional


def _expected_swin_keys(node: dict) -> tuple[set[str], set[str]]:
    swin, wb = node["IMAGE_ENCODER"]["SWIN"], ("weight", "bias")
    required: set[str] = set()
    optional: set[str] = set()
    stages = swin_stages(node)
    for s, depth in enumerate(swin["DEPTHS"]):
        for b in range(depth):
            p = f"image_encoder.layers.{s}.blocks.{b}."
            required |= {p + "attn.relative_position_bias_table", p + "attn.qkv.weight"}
            if swin["QKV_BIAS"]:
                required.add(p + "attn.qkv.bias")
            required |= {f"{p}{name}.{x}" for name in ("norm1", "norm2", "attn.proj", "mlp.fc1", "mlp.fc2") for x in wb}
            optional.add(p + "attn.relative_position_index")
            if b % 2 == 1 and stages[s].shift > 0:
                optional.add(p + "attn_mask")
        if s < len(swin["DEPTHS"]) - 1:
            p = f"image_encoder.layers.{s}.downsample."
            required |= {p + "reduction.weight", p + "norm.weight", p + "norm.bias"}
    return required, optional


def _expected_focal_keys(node: dict) -> tuple[set[str], set[str]]:
    focal, wb = node["IMAGE_ENCODER"]["FOCAL"], ("weight", "bias")
    modules = ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "modulation.f", "modulation.h", "modulation.proj")
    if focal["USE_POSTLN"]:
        modules += ("modulation.ln",)
    required: set[str] = set()
    for s, depth in enumerate(focal["DEPTHS"]):
        for b in range(depth):
            p = f"image_encoder.layers.{s}.blocks.{b}."
            required |= {f"{p}{name}.{x}" for name in modules for x in wb}
            required |= {f"{p}modulation.focal_layers.{level}.0.weight" for level in range(focal["FOCAL_LEVELS"][s])}
            if focal["USE_LAYERSCALE"]:
                required |= {p + "gamma_1", p + "gamma_2"}
        if s < len(focal["DEPTHS"]) - 1:
            p = f"image_encoder.layers.{s}.downsample."
            required |= {f"{p}{m}.{x}" for m in ("proj", "norm") for x in wb}
    return required, set()  # FocalNet has no deterministic buffers
