"""UniCL model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Tower families UniCL knows how to pool (see `modeling_unicl._pool_image` / `_pool_text`).
SUPPORTED_VISION_MODEL_TYPES = ("swin", "focalnet", "resnet", "vit")
SUPPORTED_TEXT_MODEL_TYPES = ("clip_text_model", "bert", "roberta", "xlm-roberta")

# The paper's main image tower: Swin-T at 224 px (the original `configs/unicl_swin_tiny.yaml`).
UNICL_SWIN_TINY_VISION_CONFIG = {
    "model_type": "swin",
    "image_size": 224,
    "patch_size": 4,
    "num_channels": 3,
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "hidden_act": "gelu",
    "use_absolute_embeddings": False,
    "drop_path_rate": 0.2,  # the original YAML's DROP_PATH_RATE (its config.py default, 0.1, is overridden there)
    "layer_norm_eps": 1e-5,
}

# The original text tower: CLIP's causal transformer on CLIP BPE, with UniCL's LayerNorm eps of 1e-12
# (with CLIP's 1e-5 the text embeddings of converted checkpoints move by ~1e-3).
UNICL_TEXT_CONFIG = {
    "model_type": "clip_text_model",
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-12,
    "bos_token_id": 49406,
    "eos_token_id": 49407,  # CLIPTextModel pools at the first eos_token_id (unless it is 2)
    "pad_token_id": 49407,  # CLIP's tokenizer pads with <|endoftext|>
}


def _with_unicl_defaults(sub_config, defaults: dict):
    """Fill a partial dict for the default tower family with UniCL's values instead of the library's."""
    if isinstance(sub_config, dict) and sub_config.get("model_type", defaults["model_type"]) == defaults["model_type"]:
        return {**defaults, **sub_config}
    return sub_config


@strict
class UniCLConfig(PreTrainedConfig):
    r"""
    Configuration of a [`UniCLModel`]: an image tower, a text tower, two bias-free projections into a shared
    `projection_dim` space and a learnable temperature.

    Args:
        vision_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of the image tower: any of Swin, FocalNet, ResNet or ViT. Defaults to the paper's Swin-T
            (embed 96, depths [2, 2, 6, 2], heads [3, 6, 12, 24], window 7, 224 px).
        text_config (`PreTrainedConfig` or `dict`, *optional*):
            Config of the text tower: CLIP's text transformer (default: vocab 49408, context 77, width 512,
            8 heads, 12 layers, QuickGELU, LayerNorm eps 1e-12) or a BERT/RoBERTa-like encoder.
        projection_dim (`int`, *optional*, defaults to 512):
            Dimension of the shared image-text embedding space.
        logit_scale_init_value (`float`, *optional*, defaults to 2.6592):
            Initial value of the log temperature multiplier (`log(1 / 0.07)`, as CLIP).
        text_embedding_cache_size (`int`, *optional*, defaults to 32):
            How many token batches `UniCLModel` keeps the text features of during inference (no gradients), so that
            the zero-shot pipeline encodes its candidate labels once; 0 disables. Entries are tied to the exact
            text-tower weights that computed them.
        trim_text_padding (`bool`, *optional*, defaults to `True`):
            Whether `UniCLModel.forward` cuts trailing token positions that cannot change any pooled text feature
            before running the text tower (CLIP's tower: everything after the batch's last end-of-text token, which
            a causal mask hides from it; BERT-like towers: columns the attention mask hides in every row). The
            features and the loss are unchanged up to float rounding; `text_model_output.last_hidden_state` is then
            shorter than `input_ids`. Texts padded to 77 tokens then cost what texts padded to the longest one do.
        logit_scale_max (`float`, *optional*, defaults to 100.0):
            Upper bound of `exp(logit_scale)`. CLIP's bound: larger multipliers make the softmax so sharp that
            training becomes unstable.

    Example:

    ```python
    >>> from modeling_unicl import UniCLConfig, UniCLModel
    >>> model = UniCLModel(UniCLConfig())  # Swin-T + CLIP text tower, random weights
    ```"""

    model_type = "unicl"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="swin", init_kwargs=dict(UNICL_SWIN_TINY_VISION_CONFIG)
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig, model_type="clip_text_model", init_kwargs=dict(UNICL_TEXT_CONFIG)
        ),
    }

    vision_config: PreTrainedConfig | dict | None = None
    text_config: PreTrainedConfig | dict | None = None
    projection_dim: int = 512
    logit_scale_init_value: float | int = 2.6592
    logit_scale_max: float | int = 100.0
    initializer_factor: float | int = 1.0
    text_embedding_cache_size: int = 32
    trim_text_padding: bool = True

    def __post_init__(self, **kwargs):
        self.vision_config = _with_unicl_defaults(self.vision_config, UNICL_SWIN_TINY_VISION_CONFIG)
        self.text_config = _with_unicl_defaults(self.text_config, UNICL_TEXT_CONFIG)
        if isinstance(self.projection_dim, bool) or not isinstance(self.projection_dim, int) or self.projection_dim <= 0:
            raise ValueError(f"UniCLConfig.projection_dim must be a positive integer, got {self.projection_dim!r}.")
        if self.text_embedding_cache_size < 0:
            raise ValueError(
                f"UniCLConfig.text_embedding_cache_size must be >= 0, got {self.text_embedding_cache_size!r}."
            )
        if self.logit_scale_max <= 1.0:
            raise ValueError(f"UniCLConfig.logit_scale_max must be > 1, got {self.logit_scale_max!r}.")
        for name, supported in (
            ("vision_config", SUPPORTED_VISION_MODEL_TYPES),
            ("text_config", SUPPORTED_TEXT_MODEL_TYPES),
        ):
            sub_config = getattr(self, name)
            model_type = sub_config.get("model_type") if isinstance(sub_config, dict) else getattr(sub_config, "model_type", None)
            if model_type is not None and model_type not in supported:
                raise ValueError(
                    f"UniCLConfig.{name} has model_type={model_type!r}; expected one of {list(supported)}."
                )
        super().__post_init__(**kwargs)


__all__ = ["UniCLConfig"]
