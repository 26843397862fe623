"""The `UniCLConfig` and `UniCLProcessor` that reproduce an original model, built from its MODEL node.

The fixed settings of the original towers (activations, LayerNorm eps, CLIP's vocabulary and special tokens) are
those of `UniCLConfig`'s defaults (`configuration_unicl`), which describe the original model: they are taken from
there, not restated here."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import torch

from ..configuration_unicl import UNICL_SWIN_TINY_VISION_CONFIG, UNICL_TEXT_CONFIG, UniCLConfig
from ..processing_unicl import UniCLImageProcessor, UniCLProcessor, build_clip_tokenizer

__all__ = ["build_processor", "build_unicl_config"]

logger = logging.getLogger(__name__)

DEFAULT_LOGIT_SCALE_MAX = float(UniCLConfig.logit_scale_max)  # the class default (CLIP's bound)
# The original Swin and FocalNet use the same activation and LayerNorm eps.
_ORIGINAL_IMAGE_TOWER = {key: UNICL_SWIN_TINY_VISION_CONFIG[key] for key in ("hidden_act", "layer_norm_eps")}


def _swin_config(enc: dict) -> dict:
    swin = enc["SWIN"]
    return {
        **UNICL_SWIN_TINY_VISION_CONFIG,
        "image_size": enc["IMG_SIZE"],
        "patch_size": swin["PATCH_SIZE"],
        "num_channels": swin["IN_CHANS"],
        "embed_dim": swin["EMBED_DIM"],
        "depths": list(swin["DEPTHS"]),
        "num_heads": list(swin["NUM_HEADS"])[: len(swin["DEPTHS"])],
        "window_size": swin["WINDOW_SIZE"],
        "mlp_ratio": float(swin["MLP_RATIO"]),
        "qkv_bias": bool(swin["QKV_BIAS"]),
        "hidden_dropout_prob": float(enc["DROP_RATE"]),
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": float(enc["DROP_PATH_RATE"]),
    }


def _focalnet_config(enc: dict) -> dict:
    focal = enc["FOCAL"]
    n = len(focal["DEPTHS"])
    dims = [focal["EMBED_DIM"] * 2**i for i in range(n)]
    return {
        **_ORIGINAL_IMAGE_TOWER,
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
        "hidden_dropout_prob": float(enc["DROP_RATE"]),
        "drop_path_rate": float(enc["DROP_PATH_RATE"]),
    }


def _text_config(text: dict, state_dict: Mapping[str, torch.Tensor] | None) -> dict:
    c_fc = None if state_dict is None else state_dict.get("text_encoder.resblocks.0.mlp.c_fc.weight")
    return {
        **UNICL_TEXT_CONFIG,
        "hidden_size": text["WIDTH"],
        "intermediate_size": 4 * text["WIDTH"] if c_fc is None else int(c_fc.shape[0]),
        "num_hidden_layers": text["LAYERS"],
        "num_attention_heads": text["HEADS"],
        "max_position_embeddings": text["CONTEXT_LENGTH"],
    }


def _logit_scale_max(state_dict: Mapping[str, torch.Tensor] | None) -> float:
    """The default bound, or one just above the stored multiplier when the default would clamp it (the clamp is an
    upper bound only: a multiplier below 1 is reproduced as it is)."""
    if state_dict is None or "logit_scale" not in state_dict:
        return DEFAULT_LOGIT_SCALE_MAX
    stored = float(state_dict["logit_scale"].float().reshape(-1)[0])
    if math.exp(stored) <= DEFAULT_LOGIT_SCALE_MAX:
        return DEFAULT_LOGIT_SCALE_MAX
    bound = float(math.ceil(math.exp(stored) * 1.001))
    logger.info(
        "logit_scale: exp(%.6f) = %.4f exceeds the default clamp of %g; setting logit_scale_max = %g so that "
        "converted logits are unchanged.",
        stored, math.exp(stored), DEFAULT_LOGIT_SCALE_MAX, bound,
    )
    return bound


def build_unicl_config(node: dict, state_dict: Mapping[str, torch.Tensor] | None = None) -> UniCLConfig:
    """The `UniCLConfig` that reproduces the original model described by `node` (a `load_original_config` result).
    With `state_dict`, the MLP width of the text tower and the logit-scale bound are taken from the weights."""
    enc = node["IMAGE_ENCODER"]
    return UniCLConfig(
        vision_config=_swin_config(enc) if enc["TYPE"] == "swin" else _focalnet_config(enc),
        text_config=_text_config(node["TEXT_ENCODER"], state_dict),
        projection_dim=node["DIM_PROJECTION"],
        logit_scale_max=_logit_scale_max(state_dict),
    )


def build_processor(node: dict) -> UniCLProcessor:
    """`UniCLProcessor` with the original evaluation preprocessing for this image size (resize the short side to
    IMG_SIZE * 256 / 224, center crop IMG_SIZE) and the CLIP tokenizer with the config's context length."""
    return UniCLProcessor(
        image_processor=UniCLImageProcessor.for_crop_size(node["IMAGE_ENCODER"]["IMG_SIZE"]),
        tokenizer=build_clip_tokenizer(model_max_length=node["TEXT_ENCODER"]["CONTEXT_LENGTH"]),
    )
