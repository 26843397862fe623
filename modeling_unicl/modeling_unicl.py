"""UniCL: an image tower and a text tower from transformers, projected into one space.

The towers are transformers' maintained models (SwinModel, FocalNetModel, ResNetModel, ViTModel, CLIPTextModel,
BertModel, RobertaModel); this file only adds UniCL's pooling rule per tower family, the two bias-free projections,
the clamped temperature and the unified contrastive loss.
"""

import difflib
import hashlib
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import is_offline_mode, try_to_load_from_cache
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils import logging as hf_logging

from .configuration_unicl import UniCLConfig
from .loss_unicl import clip_loss, unicl_loss

# Auto classes written into `config.auto_map` on save, so that a saved folder loads with `trust_remote_code=True`
# and works in `pipeline("zero-shot-image-classification")`.
_AUTO_MAP = {
    "AutoConfig": "configuration_unicl.UniCLConfig",
    "AutoModel": "modeling_unicl.UniCLModel",
    "AutoModelForZeroShotImageClassification": "modeling_unicl.UniCLModel",
    "AutoModelForImageClassification": "modeling_unicl.UniCLForImageClassification",
}

# Config fields that transformers itself may add to a saved config.json: `save_pretrained` writes `auto_map`, the
# Trainer sets `use_cache` from its arguments, quantization integrations write `quantization_config`.
_WRITTEN_BY_TRANSFORMERS = {"auto_map", "use_cache", "quantization_config"}

# Towers whose transformers pooler adds a dense+tanh layer that UniCL does not use: built without it.
_NO_POOLING_LAYER = ("vit", "bert", "roberta", "xlm-roberta")


@dataclass
class UniCLOutput(ModelOutput):
    r"""
    loss (`torch.Tensor` of shape `()`, *optional*, returned when `return_loss` is `True` or `labels` are given):
        The unified contrastive loss (CLIP's symmetric loss when no labels are given).
    logits_per_image (`torch.Tensor` of shape `(image_batch_size, text_batch_size)`):
        `exp(logit_scale) * image_embeds @ text_embeds.T`.
    logits_per_text (`torch.Tensor` of shape `(text_batch_size, image_batch_size)`):
        The transpose of `logits_per_image`.
    text_embeds (`torch.Tensor` of shape `(text_batch_size, projection_dim)`):
        L2-normalised projected text features.
    image_embeds (`torch.Tensor` of shape `(image_batch_size, projection_dim)`):
        L2-normalised projected image features.
    logit_scale (`torch.Tensor` of shape `()`):
        The temperature multiplier `exp(logit_scale)` after clamping.
    text_model_output (`BaseModelOutputWithPooling`):
        The text tower's output; `pooler_output` is the projected (unnormalised) text feature.
    vision_model_output (`BaseModelOutputWithPooling`):
        The image tower's output; `pooler_output` is the projected (unnormalised) image feature.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    logit_scale: torch.Tensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


def image_feature_dim(vision_config) -> int:
    """Width of the pooled image feature that `image_projection` maps from."""
    if vision_config.model_type in ("focalnet", "resnet"):
        return vision_config.hidden_sizes[-1]
    return vision_config.hidden_size  # swin sets hidden_size = embed_dim * 2 ** (num_stages - 1)


def _pool_image(model_type: str, outputs) -> torch.Tensor:
    if model_type in ("swin", "focalnet"):
        # final LayerNorm on every token of the last stage, then the mean over tokens (UniCL's image feature)
        return outputs.pooler_output
    if model_type == "resnet":
        # global average pool of the last stage, (B, C, 1, 1) -> (B, C); ResNet has no final norm
        return outputs.pooler_output.flatten(1)
    # vit: the [CLS] token after the final LayerNorm; ViT's pooler (dense + tanh) is not part of UniCL
    return outputs.last_hidden_state[:, 0]


def _pool_text(model_type: str, outputs) -> torch.Tensor:
    if model_type == "clip_text_model":
        # hidden state (after the final LayerNorm) at the first end-of-text token, as the original's
        # `input_ids.argmax(-1)`; causal attention keeps tokens after it from changing it, so any padding works
        return outputs.pooler_output
    # bert / roberta: the first token, as the original does with a non-CLIP tokenizer (no dense + tanh pooler)
    return outputs.last_hidden_state[:, 0]


def pooled_text_length(text_config, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> int:
    """How many leading token positions the pooled text feature of every row depends on; positions after it can be
    cut before the text tower without changing `pooler_output` (only `last_hidden_state` gets shorter).

    CLIP's text tower pools at the first end-of-text token (the largest id when `eos_token_id == 2`, as transformers
    does) behind a causal mask, so nothing after that token reaches it, whatever the padding or attention mask.
    BERT-like towers attend both ways, so only trailing columns that the attention mask hides in every row go."""
    length = input_ids.shape[1]
    if length == 0:
        return 0
    if text_config.model_type == "clip_text_model":
        if text_config.eos_token_id == 2:
            positions = input_ids.to(torch.int).argmax(dim=-1)
        else:
            positions = (input_ids == text_config.eos_token_id).int().argmax(dim=-1)
        return int(positions.max()) + 1
    if attention_mask is None:
        return length
    visible = attention_mask.bool().any(dim=0)
    return int(visible.nonzero().max()) + 1 if bool(visible.any()) else length


def _build_tower(sub_config) -> PreTrainedModel:
    kwargs = {"add_pooling_layer": False} if sub_config.model_type in _NO_POOLING_LAYER else {}
    tower = AutoModel.from_config(sub_config, **kwargs)
    tower.config = sub_config  # the tower reads the composite config's sub-config, so later edits reach it
    return tower


def _check_pixel_values(pixel_values, num_channels: int) -> None:
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
        raise ValueError(f"pixel_values must be a 4-D tensor (batch, {num_channels}, height, width), got {shape}.")
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[1]} channels (shape {tuple(pixel_values.shape)}); "
            f"the image tower expects {num_channels}. Convert images to RGB (the processor does)."
        )


class TextEmbeddingCache:
    """Projected text features of recently seen token batches, valid only for the exact text-tower weights that
    computed them.

    The zero-shot pipeline calls the model once per image batch with the same candidate-label prompts; this cache
    makes every call after the first cost no text forward. An entry's key holds every text-side parameter's storage
    pointer and in-place version counter, so an optimizer step, `load_state_dict`, `.to()` or a replaced module
    invalidates it: a stale entry can never be returned."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(parameters, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple:
        weights = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in parameters)
        tokens = hashlib.sha1(input_ids.detach().cpu().numpy().tobytes()).hexdigest()
        mask = None if attention_mask is None else hashlib.sha1(attention_mask.detach().cpu().numpy().tobytes()).hexdigest()
        return weights, tuple(input_ids.shape), str(input_ids.dtype), tokens, mask

    def get(self, key) -> torch.Tensor | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key, value: torch.Tensor) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def did_you_mean(name: str) -> str:
    """" (did you mean 'unicl-animals'?)" when a saved model folder beside `name` has a similar name, else ""."""
    parent, base = os.path.split(os.path.expanduser(name.rstrip("/\\")))
    try:
        folders = [f for f in os.listdir(parent or ".") if os.path.isfile(os.path.join(parent or ".", f, "config.json"))]
    except OSError:
        return ""
    close = difflib.get_close_matches(base, folders, n=1, cutoff=0.6)
    return f" (did you mean {os.path.join(os.path.dirname(name.rstrip('/')), close[0])!r}?)" if close else ""


def missing_folder_problem(name: str) -> str | None:
    """Why `name`, which is not a folder here, cannot load, when that is certain without asking the network: it can
    only be a local path (starts with '.', '/' or '~', or has more than one '/'), or offline mode is on and the Hub
    cache does not hold it. None when it may still be a Hub id."""
    if name.startswith((".", "/", "~", os.sep)) or name.count("/") > 1:
        return f"no folder {name!r} here{did_you_mean(name)}"
    if is_offline_mode():
        try:
            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - not a valid Hub id either
            cached = None
        if not isinstance(cached, str):
            return (
                f"no folder {name!r} here{did_you_mean(name)}; as a Hub id it cannot be fetched: offline mode is on "
                "(HF_HUB_OFFLINE) and the Hub cache does not hold it"
            )
    return None


def _checked_local_folder(name_or_path, kwargs) -> Path | None:
    """The local folder `from_pretrained` reads (None for a Hub id), after checking its config.json: present, JSON,
    model_type "unicl", valid field types (unknown fields are only warned about). Errors name the file. A name that
    is no folder here and cannot be a reachable Hub id fails at once (no retries against the Hub)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return None
    if not os.path.isdir(name_or_path):
        problem = None if os.path.exists(name_or_path) else missing_folder_problem(os.fspath(name_or_path))
        if problem:
            raise OSError(problem[0].upper() + problem[1:] + ".")
        return None
    folder = Path(name_or_path, kwargs.get("subfolder") or "")
    config_file = folder / "config.json"
    if kwargs.get("config") is not None:
        return folder
    if not config_file.is_file():
        raise OSError(f"{config_file} does not exist: {folder} is not a saved model folder.")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise OSError(f"{config_file} is not valid JSON: {error}") from error
    model_type = data.get("model_type") if isinstance(data, dict) else type(data).__name__
    if model_type != "unicl":
        raise ValueError(f"{config_file} describes a {model_type!r} model, not a UniCL model (model_type 'unicl').")
    unknown = sorted(set(data) - set(UniCLConfig().to_dict()) - _WRITTEN_BY_TRANSFORMERS)
    if unknown:
        hf_logging.get_logger(__name__).warning(f"{config_file}: unknown fields {unknown} are kept but not used.")
    try:
        UniCLConfig.from_dict(data)
    except Exception as error:  # noqa: BLE001 - wrong types / values: the same error, with the file's name
        raise ValueError(f"{config_file}: invalid UniCL config: {error}") from error
    return folder


class UniCLPreTrainedModel(PreTrainedModel):
    config: UniCLConfig
    base_model_prefix = "unicl"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True

    def _init_weights(self, module):
        super()._init_weights(module)
        factor = self.config.initializer_factor
        if isinstance(module, (UniCLModel, UniCLForImageClassification)):
            init.normal_(module.visual_projection.weight, std=module.visual_projection.in_features**-0.5 * factor)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        if isinstance(module, UniCLModel):
            init.normal_(module.text_projection.weight, std=module.text_projection.in_features**-0.5 * factor)
        if isinstance(module, UniCLForImageClassification):
            init.normal_(module.classifier.weight, std=module.classifier.in_features**-0.5 * factor)
            init.zeros_(module.classifier.bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`; for a local folder, errors name the file: a missing, invalid or other
        architecture's config.json, a truncated or corrupt *.safetensors."""
        folder = _checked_local_folder(pretrained_model_name_or_path, kwargs)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as error:
            if folder is None or type(error).__name__ != "SafetensorError":
                raise
            from safetensors import safe_open

            def unreadable(path):
                try:
                    with safe_open(str(path), framework="pt"):
                        return False
                except Exception:  # noqa: BLE001
                    return True

            bad = [str(f) for f in sorted(folder.glob("*.safetensors")) if unreadable(f)] or [str(folder)]
            raise OSError(
                f"Cannot read the weights file {', '.join(bad)}: {error}. It is truncated or corrupt (an interrupted "
                "download or save?): download or save it again."
            ) from error

    def get_logit_scale(self) -> torch.Tensor:
        """`exp(logit_scale)`, clamped to at most `config.logit_scale_max` (CLIP's bound, 100).

        Above it the softmax is so sharp that training becomes unstable. There is no lower bound (the original has
        none, and a converted checkpoint's logits must not change). The clamp is in the forward pass, so the stored
        parameter keeps its exact value; past the bound it gets no gradient."""
        bound = self.config.logit_scale_max
        # clamp before exp (no overflow, no gradient past the bound) and after (exp(log(100)) rounds to 100.0000076)
        return self.logit_scale.clamp(max=math.log(bound)).exp().clamp(max=bound)

    def enable_input_require_grads(self):
        # transformers hooks every sub-model's input embeddings, but Swin's and FocalNet's patch embeddings return
        # tuples, which its hook cannot mark. Only the text tower's token embeddings (a tensor) need the hook: it lets
        # gradients flow through checkpointed layers when the embeddings are frozen (adapters, PEFT).
        def make_output_require_grads(module, inputs, output):
            output.requires_grad_(True)

        text_model = getattr(self, "text_model", None)
        embeddings = None if text_model is None else text_model.get_input_embeddings()
        hooks = [] if embeddings is None else [embeddings.register_forward_hook(make_output_require_grads)]
        self._require_grads_hooks = hooks
        if hooks:
            self._require_grads_hook = hooks[0]

    def save_pretrained(self, save_directory, *args, **kwargs):
        # `register_for_auto_class` records a single auto class per model class; the zero-shot pipeline loads
        # through AutoModelForZeroShotImageClassification, so every entry goes into `auto_map` explicitly.
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **_AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


class UniCLModel(UniCLPreTrainedModel):
    def __init__(self, config: UniCLConfig):
        super().__init__(config)
        vision_config, text_config = config.vision_config, config.text_config
        self.vision_model = _build_tower(vision_config)
        self.text_model = _build_tower(text_config)

        self.visual_projection = nn.Linear(image_feature_dim(vision_config), config.projection_dim, bias=False)
        self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.text_embedding_cache = TextEmbeddingCache(config.text_embedding_cache_size)
        self.post_init()

    # ----------------------------------------------------------------------------------------------- checks
    def _check_input_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids)
            raise ValueError(f"input_ids must be a 2-D tensor (batch, sequence_length), got {shape}.")
        max_length = getattr(self.config.text_config, "max_position_embeddings", None)
        if max_length is not None and input_ids.shape[1] > max_length:
            raise ValueError(
                f"input_ids has {input_ids.shape[1]} tokens per text; the text tower takes at most {max_length}. "
                "Tokenize with truncation=True."
            )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
                f"{tuple(input_ids.shape)}."
            )

    # --------------------------------------------------------------------------------------------- features
    def _text_features_maybe_cached(self, input_ids, attention_mask, **kwargs) -> BaseModelOutputWithPooling:
        """`get_text_features` for `forward`: with `config.trim_text_padding`, on the tokens up to the last one any
        pooled feature depends on (padding to 77 then costs what padding to the longest text does); served from
        `text_embedding_cache` when nothing needs gradients or tower internals (inference: the zero-shot pipeline,
        evaluation). A cached result has only `pooler_output`."""
        if kwargs:  # tower internals asked for (hidden states, attentions): the plain, uncut call
            return self.get_text_features(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        self._check_input_ids(input_ids, attention_mask)
        if self.config.trim_text_padding:
            length = pooled_text_length(self.config.text_config, input_ids, attention_mask)
            input_ids = input_ids[:, :length]
            attention_mask = None if attention_mask is None else attention_mask[:, :length]
        cache = self.text_embedding_cache
        if cache.max_entries <= 0 or torch.is_grad_enabled():
            return self.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        text_parameters = [*self.text_model.parameters(), *self.text_projection.parameters()]
        key = cache.key(text_parameters, input_ids, attention_mask)
        cached = cache.get(key)
        if cached is not None:
            return BaseModelOutputWithPooling(pooler_output=cached)
        outputs = self.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        cache.put(key, outputs.pooler_output.detach())
        return outputs

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        """Runs the image tower; `pooler_output` of the result is the projected, unnormalised image feature."""
        _check_pixel_values(pixel_values, self.config.vision_config.num_channels)
        outputs = self.vision_model(pixel_values=pixel_values, return_dict=True, **kwargs)
        pooled = _pool_image(self.config.vision_config.model_type, outputs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.visual_projection(pooled),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> BaseModelOutputWithPooling:
        """Runs the text tower; `pooler_output` of the result is the projected, unnormalised text feature."""
        self._check_input_ids(input_ids, attention_mask)
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        pooled = _pool_text(self.config.text_config.model_type, outputs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=self.text_projection(pooled),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        return_loss: bool | None = None,
        gather_distributed: bool = False,
        **kwargs,
    ) -> UniCLOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            One label per (image, text) pair: pairs that share a label are positives of each other in the unified
            loss. Class prompts carry their class id, image-caption pairs an id of their own. Given labels imply
            `return_loss=True`.
        return_loss (`bool`, *optional*):
            Whether to return the loss; without labels it is CLIP's symmetric loss (every pair its own label).
        gather_distributed (`bool`, *optional*, defaults to `False`):
            Whether the loss with `labels` all-gathers features and labels from every rank of the initialised process
            group, so that positives and negatives come from the global batch. A collective: every rank must then
            call the model. `UniCLTrainer` turns it on for training; off, a forward on one rank alone (evaluation
            on rank 0) never waits for the others.
        """
        if input_ids is None or pixel_values is None:
            raise ValueError("UniCLModel.forward needs both input_ids and pixel_values.")
        want_loss = bool(return_loss) or labels is not None
        if want_loss:
            if pixel_values.shape[0] != input_ids.shape[0]:
                raise ValueError(
                    f"The loss pairs image i with text i, but got {pixel_values.shape[0]} images and "
                    f"{input_ids.shape[0]} texts."
                )
            if labels is not None and (labels.ndim != 1 or labels.shape[0] != input_ids.shape[0]):
                raise ValueError(
                    f"labels must have shape ({input_ids.shape[0]},) (one per image-text pair), "
                    f"got {tuple(labels.shape)}."
                )

        vision_outputs = self.get_image_features(pixel_values=pixel_values, **kwargs)
        text_outputs = self._text_features_maybe_cached(input_ids, attention_mask, **kwargs)
        image_embeds = nn.functional.normalize(vision_outputs.pooler_output, dim=-1)
        text_embeds = nn.functional.normalize(text_outputs.pooler_output, dim=-1)

        logit_scale = self.get_logit_scale()
        logits_per_text = logit_scale * text_embeds @ image_embeds.t()
        logits_per_image = logits_per_text.t()

        loss = None
        if want_loss:
            if labels is None:
                loss = clip_loss(logits_per_text)
            else:
                loss = unicl_loss(image_embeds, text_embeds, labels, logit_scale, gather_distributed=gather_distributed)

        return UniCLOutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_text,
            text_embeds=text_embeds,
            image_embeds=image_embeds,
            logit_scale=logit_scale,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
        )


class UniCLForImageClassification(UniCLPreTrainedModel):
    """UniCL's image tower with a linear classifier on the normalised image embedding, for fine-tuning with the plain
    transformers `Trainer` and `pipeline("image-classification")`.

    `logits = exp(logit_scale) * normalize(image_embeds) @ classifier.weight.T + classifier.bias`: initialised from
    the class-name text embeddings (`from_unicl_model`), step 0 is exactly zero-shot classification."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: UniCLConfig):
        super().__init__(config)
        vision_config = config.vision_config
        if config.num_labels < 1:
            raise ValueError(f"UniCLForImageClassification needs num_labels >= 1, got {config.num_labels}.")
        self.num_labels = config.num_labels
        self.vision_model = _build_tower(vision_config)
        self.visual_projection = nn.Linear(image_feature_dim(vision_config), config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.classifier = nn.Linear(config.projection_dim, config.num_labels)
        self.post_init()

    @classmethod
    def from_unicl_model(
        cls, model: UniCLModel, class_embeddings: torch.Tensor, class_names: list[str]
    ) -> "UniCLForImageClassification":
        """Builds a classifier that shares `model`'s image tower (copied) and whose weights are the L2-normalised
        class embeddings (e.g. from `modeling_unicl.evaluation.build_class_embeddings`)."""
        if class_embeddings.ndim != 2 or class_embeddings.shape != (len(class_names), model.config.projection_dim):
            raise ValueError(
                f"class_embeddings must have shape ({len(class_names)}, {model.config.projection_dim}) "
                f"(one row per class name), got {tuple(class_embeddings.shape)}."
            )
        config = UniCLConfig.from_dict(model.config.to_dict())
        config.id2label = dict(enumerate(class_names))
        config.label2id = {name: i for i, name in enumerate(class_names)}
        classifier = cls(config)
        # strict: every image-side weight must come from the UniCL model, none stays randomly initialised
        image_side = {k: v for k, v in model.state_dict().items() if not k.startswith(("text_model.", "text_projection"))}
        image_side["classifier.weight"] = nn.functional.normalize(class_embeddings.detach().float(), dim=-1)
        image_side["classifier.bias"] = torch.zeros(len(class_names))
        classifier.load_state_dict(image_side, strict=True)
        return classifier.to(model.device)

    def forward(
        self, pixel_values: torch.FloatTensor | None = None, labels: torch.LongTensor | None = None, **kwargs
    ) -> ImageClassifierOutput:
        _check_pixel_values(pixel_values, self.config.vision_config.num_channels)
        outputs = self.vision_model(pixel_values=pixel_values, return_dict=True, **kwargs)
        image_embeds = self.visual_projection(_pool_image(self.config.vision_config.model_type, outputs))
        image_embeds = nn.functional.normalize(image_embeds, dim=-1)
        logits = self.classifier(self.get_logit_scale() * image_embeds)
        loss = None
        if labels is not None:
            if labels.ndim != 1 or labels.shape[0] != pixel_values.shape[0]:
                raise ValueError(
                    f"labels must have shape ({pixel_values.shape[0]},), got {tuple(labels.shape)}."
                )
            loss = nn.functional.cross_entropy(logits.float(), labels)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )


UniCLModel.register_for_auto_class("AutoModel")
UniCLForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = ["UniCLForImageClassification", "UniCLModel", "UniCLOutput", "UniCLPreTrainedModel"]
