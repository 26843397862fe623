"""What the benchmark measures: the run's sizes (`Settings`), the models (ours and the peers), their inputs (class
names, captions, images, collated batches) and one training step of each model."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Settings:
    mode: str
    num_classes: int  # zero-shot candidate labels
    num_templates: int  # prompt templates per class for our classifier (the pipeline takes one template)
    zero_shot_batch: int  # images per batch for our classifier
    zero_shot_reps: int
    pipeline_images: int  # images timed through the pipelines (one call per image)
    train_batch: int
    warmup_steps: int  # per variant, not timed
    train_steps: int  # timed steps per variant
    matmul_size: int
    matmul_reps: int
    data_path_images: int = 256  # JPEGs through the data path per variant and round
    data_path_image_size: tuple[int, int] = (1024, 768)  # (width, height)
    data_path_shard_size: int = 64  # images per tar shard
    data_path_batch: int = 32  # samples per collated batch
    data_path_rounds: int = 3  # timed passes per variant, round-robin
    onnx_runs_rounds: int = 10  # timed batches per ONNX Runtime run mode, round-robin (`--onnx_runs_only`)


FULL = Settings("full", 1000, 80, 32, 3, 2, 32, 1, 5, 4096, 5)
# At the full run's 1000 classes, so that its zero-shot ratios compare with the full run's (the pipeline's cost grows
# with the classes; ours does not), with a one-template class matrix (what per-image cost does not depend on).
QUICK = Settings("quick", 1000, 1, 16, 2, 1, 4, 1, 2, 2048, 3, data_path_images=64, data_path_rounds=2,
                 onnx_runs_rounds=4)


# ------------------------------------------------------------------------------------------------ models
def unicl_config():
    """The paper's Swin-T (224 px) + 12-layer 512-wide CLIP text tower (the `swin-tiny` preset) with drop path 0.1,
    the rate of every run before the preset took the original YAML's 0.2: drop path runs the same ops at any rate
    above 0, so the cost is the same either way, but the measured step stays exactly the earlier one."""
    from modeling_unicl.presets import MODEL_PRESETS

    config = MODEL_PRESETS["swin-tiny"].config()
    config.vision_config.drop_path_rate = 0.1
    return config


def clip_config(text_config: dict, image_size: int = 224, **vision_overrides):
    """A CLIP with ViT-B/32-sized vision and the given text tower (UniCL's by default)."""
    from transformers import CLIPConfig

    vision = {**dict(image_size=image_size, patch_size=32, hidden_size=768, intermediate_size=3072,
                     num_hidden_layers=12, num_attention_heads=12), **vision_overrides}
    return CLIPConfig(vision_config=vision, text_config=text_config, projection_dim=512)


def dual_encoder(config):
    """`VisionTextDualEncoderModel` built from the same tower configs as a UniCL config (same projection dim)."""
    from transformers import AutoConfig, VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    vision = AutoConfig.for_model(**config.vision_config.to_dict())
    text = AutoConfig.for_model(**config.text_config.to_dict())
    dual_config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=config.projection_dim)
    dual_config._attn_implementation = "sdpa"
    return VisionTextDualEncoderModel(config=dual_config)


def clip_pipeline(clip_cfg, device: str = "cpu"):
    """transformers' zero-shot pipeline on a randomly initialised `CLIPModel` of `clip_cfg` (CLIP's tokenizer, and
    CLIP's image preprocessing at the config's image size), on `device`."""
    from transformers import CLIPModel, pipeline
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from modeling_unicl import build_clip_tokenizer

    torch.manual_seed(0)
    clip = CLIPModel._from_config(clip_cfg, attn_implementation="sdpa").eval()
    size = clip_cfg.vision_config.image_size
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return pipeline("zero-shot-image-classification", model=clip, tokenizer=build_clip_tokenizer(),
                    image_processor=image_processor, device=device)


def folder_pipeline(model, processor, folder):
    """transformers' zero-shot pipeline on our model as a user gets it: saved to `folder`, loaded by name."""
    from transformers import pipeline

    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return pipeline("zero-shot-image-classification", model=str(folder), device="cpu")


# ------------------------------------------------------------------------------------------------ inputs
@functools.lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """Real English words: the CLIP BPE vocabulary's whole-word alphabetic tokens, in merge (≈ frequency) order."""
    from modeling_unicl.processing_unicl import clip_bpe_vocab_and_merges

    vocab, _ = clip_bpe_vocab_and_merges()
    words = [t[:-4] for t in vocab if t.endswith("</w>") and t[:-4].isalpha() and t[:-4].islower()]
    return tuple(w for w in words if len(w) >= 4)


def class_names(n: int) -> list[str]:
    """n distinct, ImageNet-like names: one or two real words ("harbor", "golden tiger")."""
    words = word_list()[200:]  # skip the most frequent function words
    return [words[i] if i % 3 else f"{words[i]} {words[i + n]}" for i in range(n)]


def random_images(n: int, seed: int = 0, size=(320, 256)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def captions(n: int, seed: int = 0, min_words: int = 5, max_words: int = 15) -> list[str]:
    """'a photo of' + 5-15 real words: 10-20 CLIP tokens with start/end tokens, like web captions."""
    rng = np.random.default_rng(seed)
    words = list(word_list()[:5000])
    return [
        "a photo of " + " ".join(rng.choice(words, int(rng.integers(min_words, max_words + 1))))
        for _ in range(n)
    ]


def train_batches(processor, config, batch_size: int, seed: int = 0) -> dict[str, dict]:
    """The same images and captions, collated by `UniCLCollator` (padded to the longest caption) and padded to 77."""
    from modeling_unicl import UniCLCollator

    g = torch.Generator().manual_seed(seed)
    vision = config.vision_config
    pixels = torch.randn(batch_size, vision.num_channels, vision.image_size, vision.image_size, generator=g)
    texts = captions(batch_size, seed)
    samples = [{"pixel_values": p, "text": t, "labels": i} for i, (p, t) in enumerate(zip(pixels, texts))]
    longest = UniCLCollator(processor)(samples)
    context = config.text_config.max_position_embeddings
    tokens = processor.tokenizer(texts, padding="max_length", truncation=True, max_length=context, return_tensors="pt")
    padded = {**longest, "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
    return {"longest": longest, "77": padded}


# ------------------------------------------------------------------------------------------------ training steps
def training_step(model, optimizer, forward_kwargs: dict, autocast_dtype=None, device_type: str = "cpu"):
    """A closure running one step: zero grads, forward (under autocast on `device_type` if `autocast_dtype`),
    backward, optimizer."""

    def step():
        optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with ctx:
            loss = model(**forward_kwargs).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


def _inputs(batch) -> dict:
    return {"input_ids": batch["input_ids"], "pixel_values": batch["pixel_values"],
            "attention_mask": batch["attention_mask"]}


def unicl_step(model, optimizer, batch, autocast_dtype=None, device_type: str = "cpu"):
    """One step of `UniCLModel` + `unicl_loss` (labels given: every pair its own label, as a caption batch)."""
    return training_step(model, optimizer, {**_inputs(batch), "labels": batch["labels"]}, autocast_dtype, device_type)


def dual_encoder_step(model, optimizer, batch, autocast_dtype=None, device_type: str = "cpu"):
    """One step of `VisionTextDualEncoderModel` with its built-in CLIP loss (`return_loss=True`)."""
    return training_step(model, optimizer, {**_inputs(batch), "return_loss": True}, autocast_dtype, device_type)


def adamw(model):
    """Fused AdamW: what transformers' Trainer uses by default (`optim="adamw_torch_fused"`), for both models."""
    return torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05, fused=True)


class Untrimmed(contextlib.ContextDecorator):
    """Runs a `UniCLModel` step with `config.trim_text_padding` off (the text tower sees every padding token)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.previous = self.model.config.trim_text_padding
        self.model.config.trim_text_padding = False

    def __exit__(self, *exc):
        self.model.config.trim_text_padding = self.previous
