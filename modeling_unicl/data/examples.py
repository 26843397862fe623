"""One decoded row -> one training example `{"pixel_values", "text", "labels"}`.

Texts
    An image-text row keeps its caption. An image-label row becomes a class prompt: one of the templates
    (`modeling_unicl.prompts.IMAGENET_TEMPLATES` by default) drawn at random, filled with the class name.

Augmentation (training, no torchvision)
    Random resized crop (area `crop_scale`, default (0.08, 1), aspect `crop_ratio`, default (3/4, 4/3), bicubic, to
    the processor's crop size) and a horizontal flip with probability 0.5, implemented with PIL; then the image
    processor's rescale + normalisation only (its resize / center crop are replaced by the crop). Evaluation
    (`train=False`) uses the image processor as it is.

Encoded images (shards)
    A row's image may also be the encoded file's bytes. For a JPEG with augmentation on, the crop is drawn from the
    full-size (width, height) read from the header (the same draws as for the decoded image, so the same boxes),
    then the JPEG is decoded at the smallest scale (1/2, 1/4 or 1/8, libjpeg's scaled IDCT through PIL's `draft`)
    that keeps the crop at least the output size in both dimensions: the inverse DCT, colour conversion and resize
    then work on 1/4 (or fewer) of the pixels, and the crop is never upsampled more than from the full-size image.
    Anything else (other formats, EXIF-rotated JPEGs, crops too small to reduce, evaluation) is decoded at full
    size, exactly as a decoded image is.

Randomness
    The template and the augmentation of a sample come from one generator seeded with (seed, epoch, uid), where uid
    is the row's fixed id (`modeling_unicl.data.sources`): nothing depends on global random state, worker ids or
    ranks. The template is drawn for caption rows too, so every row's stream has the same layout.
"""

from __future__ import annotations

import io
import math
from numbers import Integral, Real
from typing import Sequence

import numpy as np
import torch
from PIL import ExifTags
from PIL import Image as PILImage

from ..processing_unicl import UnreadableImageError, to_rgb

__all__ = ["ExampleMaker", "RandomResizedCropAndFlip", "sample_rng", "training_augmentation", "training_image_size"]

ENCODED_IMAGE_TYPES = (bytes, bytearray, memoryview)  # a shard member's content, as webdataset reads it
JPEG_DRAFT_REDUCTIONS = (8, 4, 2)  # the scales libjpeg decodes at directly (1/8, 1/4, 1/2), largest first
# What PIL raises on bytes that are not an image or do not decode (UnidentifiedImageError is an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, PILImage.DecompressionBombError)


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
        return self._resize_and_flip(image, (left, top, left + crop_w, top + crop_h), rng)

    def from_encoded(self, data: bytes, rng: np.random.Generator) -> PILImage.Image:
        """The crop of an encoded image (a file's bytes), 8-bit RGB: the same crop box and flip as
        `self(to_rgb(data), rng)`, and for a JPEG decoded at the smallest scale the crop allows
        (`draft_reduction`); other images are decoded at full size (see the module docstring).

        Raises `UnreadableImageError` (a `ValueError`, one of `sources.UNREADABLE_IMAGE_ERRORS`) for bytes that are
        not an image, or that are truncated or corrupt."""
        data = bytes(data)
        image = _open_encoded(data)
        if image.format != "JPEG" or _exif_orientation(image, data) not in (1, None):
            # EXIF rotation swaps or mirrors the axes the crop is drawn on: decoded and rotated first, as to_rgb does
            return self(to_rgb(data), rng)
        left, top, crop_w, crop_h = self.get_params(image.width, image.height, rng)
        box = (left, top, left + crop_w, top + crop_h)
        reduction = self.draft_reduction(crop_w, crop_h)
        if reduction > 1:
            full_width, full_height = image.size
            drafted = image.draft("RGB", (full_width // reduction, full_height // reduction))
            # draft picks the scale from the requested size; the box it returns is the full image in decoded pixels
            if drafted is not None:
                scale_x, scale_y = drafted[1][2] / full_width, drafted[1][3] / full_height
                box = (left * scale_x, top * scale_y, (left + crop_w) * scale_x, (top + crop_h) * scale_y)
        try:
            image.load()
        except _DECODE_ERRORS as error:
            raise UnreadableImageError(f"Cannot decode the image bytes ({len(data)} bytes): {error}") from error
        return self._resize_and_flip(to_rgb(image), box, rng)

    def draft_reduction(self, crop_width: int, crop_height: int) -> int:
        """The largest of 8, 4, 2 that still leaves a (crop_width, crop_height) crop at least the output size in both
        dimensions once decoded at 1/reduction scale; 1 when none does."""
        height, width = self.size
        for reduction in JPEG_DRAFT_REDUCTIONS:
            if crop_width >= width * reduction and crop_height >= height * reduction:
                return reduction
        return 1

    def _resize_and_flip(self, image: PILImage.Image, box: tuple, rng: np.random.Generator) -> PILImage.Image:
        height, width = self.size
        out = image.resize((width, height), resample=self.resample, box=box)
        if rng.random() < self.flip_prob:
            out = out.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"flip_prob={self.flip_prob})"
        )


def _open_encoded(data: bytes) -> PILImage.Image:
    """The image in `data`, opened lazily (header only: the pixels are decoded by `load`)."""
    try:
        return PILImage.open(io.BytesIO(data))
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(
            f"Image bytes ({len(data)} bytes, starting {data[:8]!r}) are not a readable image: {error}"
        ) from error


def _exif_orientation(image: PILImage.Image, data: bytes) -> int | None:
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS as error:
        raise UnreadableImageError(
            f"Cannot read the EXIF data of the image bytes ({len(data)} bytes): {error}"
        ) from error


def training_augmentation(image_processor, options) -> RandomResizedCropAndFlip | None:
    """The crop and flip that `options` (a `TrainingDataOptions`) asks for, at the crop size of `options.image_size`
    or the image processor's; None when `options.train` is False (the image processor's evaluation transform)."""
    if not options.train:
        return None
    size = training_image_size(image_processor, options.image_size)
    return RandomResizedCropAndFlip(
        size, scale=options.crop_scale, ratio=options.crop_ratio, flip_prob=options.flip_prob
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
    """A row (`{"image", "caption", "label", "uid"}`) and its epoch -> `{"pixel_values", "text", "labels"}`.

    `image` is a decoded RGB PIL image (the map-style dataset) or the encoded file's bytes (shards): a JPEG is then
    decoded at a reduced scale when the training crop allows it, with the same crop box as at full size (module
    docstring). Bytes that are not an image, or are truncated or corrupt, raise `UnreadableImageError` (a
    `ValueError`, so one of `sources.UNREADABLE_IMAGE_ERRORS`): a streaming reader catches it to skip the sample.

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

    def pixel_values(self, image: PILImage.Image | bytes, rng: np.random.Generator) -> torch.Tensor:
        """(3, H, W): augmented then normalised, or the image processor's evaluation transform. `image` is a decoded
        RGB PIL image or an encoded file's bytes (a JPEG is then decoded at a reduced scale when the crop allows:
        `RandomResizedCropAndFlip.from_encoded`)."""
        encoded = isinstance(image, ENCODED_IMAGE_TYPES)
        if self.augmentation is None:
            image = to_rgb(bytes(image)) if encoded else image
            return self.image_processor(image, return_tensors="pt")["pixel_values"][0]
        augmented = self.augmentation.from_encoded(image, rng) if encoded else self.augmentation(image, rng)
        processed = self.image_processor(augmented, do_resize=False, do_center_crop=False, return_tensors="pt")
        return processed["pixel_values"][0]
