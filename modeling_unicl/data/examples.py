"""One decoded row -> one training example `{"pixel_values", "text", "labels"}`.

Texts
    An image-text row keeps its caption. An image-label row becomes a class prompt: one of the templates
    (`modeling_unicl.prompts.IMAGENET_TEMPLATES` by default) drawn at random, filled with the class name.

Augmentation (training, no torchvision)
    Random resized crop (area `crop_scale`, default (0.08, 1), aspect `crop_ratio`, default (3/4, 4/3), bicubic, to
    the processor's crop size) and a horizontal flip with probability 0.5, implemented with PIL; then the image
    processor's rescale + normalisation only (its resize / center crop are replaced by the crop). Evaluation
    (`train=False`) uses the image processor as it is.

Randomness
    The template and the augmentation of a sample come from one generator seeded with (seed, epoch, uid), where uid
    is the row's fixed id (`modeling_unicl.data.sources`): nothing depends on global random state, worker ids or
    ranks. The template is drawn for caption rows too, so every row's stream has the same layout.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

import numpy as np
import torch
from PIL import Image as PILImage

__all__ = ["ExampleMaker", "RandomResizedCropAndFlip", "sample_rng", "training_image_size"]


def sample_rng(seed: int, epoch: int, uid: int) -> np.random.Generator:
    """The generator of one sample's randomness (template and augmentation): a function of (seed, epoch, uid) only."""
    return np.random.default_rng([int(seed), int(epoch), int(uid)])


# ------------------------------------------------------------------------------------------------ checks
def check_image_size(size) -> tuple[int, int]:
    """(height, width) from an int (a square) or a pair of positive ints."""
    pair = (size, size) if isinstance(size, Integral) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"image size must be a positive int or (height, width) of positive ints, got {size!r}.")
    return int(pair[0]), int(pair[1])


def check_crop_scale(scale) -> tuple[float, float]:
    scale = tuple(float(s) for s in scale)
    if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"crop scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}.")
    return scale


def check_crop_ratio(ratio) -> tuple[float, float]:
    ratio = tuple(float(r) for r in ratio)
    if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
        raise ValueError(f"crop ratio must be (low, high) with 0 < low <= high, got {ratio!r}.")
    return ratio


def check_probability(value, name: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


# ------------------------------------------------------------------------------------------ augmentation
class RandomResizedCropAndFlip:
    """torchvision's RandomResizedCrop + RandomHorizontalFlip, with PIL and an explicit numpy generator.

    Args:
        size: output (height, width), or an int for a square.
        scale: range of the crop's area as a fraction of the image's area.
        ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        flip_prob: probability of a horizontal flip.
        resample: PIL resampling filter of the resize (bicubic, as UniCL's timm pipeline).
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        flip_prob: float = 0.5,
        resample: int = PILImage.Resampling.BICUBIC,
    ):
        self.size = check_image_size(size)
        self.scale, self.ratio = check_crop_scale(scale), check_crop_ratio(ratio)
        self.flip_prob, self.resample = check_probability(flip_prob, "flip_prob"), resample

    def get_params(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(left, top, crop_width, crop_height) as torchvision draws them: 10 tries, then a central crop."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(*log_ratio))
            crop_w = int(round(math.sqrt(target_area * aspect)))
            crop_h = int(round(math.sqrt(target_area / aspect)))
            if 0 < crop_w <= width and 0 < crop_h <= height:
                top = int(rng.integers(0, height - crop_h + 1))
                left = int(rng.integers(0, width - crop_w + 1))
                return left, top, crop_w, crop_h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            crop_w, crop_h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            crop_w, crop_h = int(round(height * self.ratio[1])), height
        else:
            crop_w, crop_h = width, height
        return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h

    def __call__(self, image: PILImage.Image, rng: np.random.Generator) -> PILImage.Image:
        left, top, crop_w, crop_h = self.get_params(image.width, image.height, rng)
        height, width = self.size
        out = image.resize((width, height), resample=self.resample, box=(left, top, left + crop_w, top + crop_h))
        if rng.random() < self.flip_prob:
            out = out.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"flip_prob={self.flip_prob})"
        )


def training_image_size(image_processor, image_size=None) -> tuple[int, int]:
    """The crop's output (height, width): `image_size` when given, else the image processor's crop size."""
    if image_size is not None:
        return check_image_size(image_size)
    crop = getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False) and crop is not None and crop.get("height"):
        return int(crop["height"]), int(crop["width"])
    size = getattr(image_processor, "size", None) or {}
    if size.get("height"):
        return int(size["height"]), int(size["width"])
    if size.get("shortest_edge"):
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    raise ValueError("Cannot tell the training image size from the image processor; pass image_size=.")


# ------------------------------------------------------------------------------------------------ examples
class ExampleMaker:
    """A decoded row (`{"image", "caption", "label", "uid"}`) and its epoch -> `{"pixel_values", "text", "labels"}`.

    Args:
        image_processor: normalises (and, without augmentation, resizes and crops) the image.
        class_names: the global class names; a label id >= 0 indexes them.
        templates: prompt templates for class names.
        seed: with (epoch, uid), seeds the sample's template and augmentation.
        augmentation: the training crop and flip; None for the image processor's evaluation transform.
    """

    def __init__(
        self,
        image_processor,
        class_names: Sequence[str],
        templates: Sequence[str],
        seed: int,
        augmentation: RandomResizedCropAndFlip | None = None,
    ):
        self.image_processor = image_processor
        self.class_names, self.templates = list(class_names), tuple(templates)
        self.seed, self.augmentation = int(seed), augmentation

    def __call__(self, record: dict, epoch: int) -> dict:
        rng = sample_rng(self.seed, epoch, int(record["uid"]))
        text = self.text(record, rng)  # first: the template is the generator's first draw
        return {"pixel_values": self.pixel_values(record["image"], rng), "text": text, "labels": int(record["label"])}

    def text(self, record: dict, rng: np.random.Generator) -> str:
        """The caption of an image-text row, or a prompt for the class of an image-label row."""
        template = self.templates[int(rng.integers(len(self.templates)))]  # drawn for every row: one stream layout
        if record["caption"] is not None:
            return record["caption"]
        return template.format(self.class_names[record["label"]])

    def pixel_values(self, image: PILImage.Image, rng: np.random.Generator) -> torch.Tensor:
        """(3, H, W): augmented then normalised, or the image processor's evaluation transform."""
        if self.augmentation is None:
            return self.image_processor(image, return_tensors="pt")["pixel_values"][0]
        augmented = self.augmentation(image, rng)
        processed = self.image_processor(augmented, do_resize=False, do_center_crop=False, return_tensors="pt")
        return processed["pixel_values"][0]
