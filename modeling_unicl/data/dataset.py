"""Image-label and image-text data for UniCL: one dataset of (pixel_values, text, label) and its collator.

Sources
    * image-label: a `datasets.Dataset` with an image column and a `ClassLabel` label column (the class names come
      from the feature) or an integer label column plus explicit `class_names=`. Class names become texts through
      the prompt templates (`modeling_unicl.prompts.IMAGENET_TEMPLATES` by default): one template per sample, drawn at
      random.
    * image-text: a `datasets.Dataset` with an image column and a caption column (a string per row).
    Column names are configurable, per source with `ImageLabelSource` / `ImageTextSource`.

Label ids (what reaches `unicl_loss` as `labels`; samples with equal ids are positives of each other)
    * Class ids are >= 0. Each image-label source gets its own range: source k's class c has id
      `offset_k + c` with `offset_k` = the number of classes of the sources before it, so two datasets never share a
      class by accident. With `share_class_names=True` ids come from one vocabulary of class names instead (matched
      after stripping and case-folding), so "dog" in both datasets is one class with one id.
    * Image-text pairs get negative ids: `-(1 + uid)`, where `uid` is the pair's row index in its dataset plus a
      per-dataset offset (the number of rows of all sources before it). The id is a function of the row alone,
      never of the rank, dataloader worker or step, so ids never collide with class ids nor with each other across
      ranks, workers and steps; a pair drawn twice into one global batch (oversampling) carries the same id twice,
      which is right: it is the same pair.

Mixing (several sources -> one training stream)
    * `mixing="batch"` (default): every batch holds both data types, `label_fraction` of it (default 0.5, rounded)
      image-label samples and the rest image-text samples. The trainer's sampler builds the batches in blocks of
      the per-device batch size, so under DDP every rank's batch has the ratio. Each type is walked through in
      seeded permutations that continue across epochs (a smaller source is cycled, a larger one is finished in
      later epochs). An epoch is `len(dataset)` = the total number of rows of all sources.
    * `mixing="interleave"`: `datasets.interleave_datasets` over all sources with `probabilities` (one per source,
      image-label sources first) and `stopping_strategy` (default "all_exhausted"), then shuffled per epoch:
      batches have the proportions in expectation only.
    * `mixing="concat"`: the plain union (`concatenate_datasets`), shuffled per epoch.
    The paper trains one model on the union of image-label and image-text data and mixes both in its batches; its
    released code covers ImageNet-only training and we did not find the exact per-batch composition there, so the
    per-batch ratio of 0.5 is our choice, not a reproduction of a documented recipe.

Augmentation (training, no torchvision)
    Random resized crop (area `crop_scale`, default (0.08, 1), aspect `crop_ratio`, default (3/4, 4/3), bicubic, to
    the processor's crop size) and a horizontal flip with probability 0.5, implemented with PIL; then the image
    processor's rescale + normalisation only (its resize / center crop are replaced by the crop). Evaluation
    (`train=False`) uses the image processor as it is.

Determinism
    Sample `k` of the `UniCLTrainingDataset` stands for (epoch, row) = divmod(k, len(dataset)); the template and
    the augmentation of a sample are drawn from a generator seeded with (seed, epoch, uid), and the order of an
    epoch from (seed, epoch). Nothing depends on global random state, worker ids or ranks, so a resumed run sees
    exactly the same texts, crops and batches.

Laziness
    Images stay encoded in the Arrow table. The combined dataset (`UniCLTrainingDataset.hf_dataset`) carries a
    `with_transform` that decodes and converts to RGB only the rows that are accessed.
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image as PILImage

import datasets
from datasets import Value

from ..processing_unicl import UnreadableImageError, load_image, to_rgb
from ..utils.checks import (
    column_array,
    label_ids,
    resolve_class_names,
    validate_image_label_dataset,
    validate_image_text_dataset,
)
from ..prompts import IMAGENET_TEMPLATES, check_templates

logger = logging.getLogger(__name__)

MIXING_MODES = ("batch", "interleave", "concat")
# What decoding a corrupt, truncated or missing image file raises (PIL, datasets' Image feature, `to_rgb`).
UNREADABLE_IMAGE_ERRORS = (
    OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error, zlib.error, PILImage.DecompressionBombError
)
MAX_CONSECUTIVE_UNREADABLE = 50  # more unreadable rows in a row than this: the data is broken, stop
SKIPPED_ROWS_KEY = "unicl_skipped_rows"  # in a sample (and, for UniCLTrainer, a batch): the unreadable rows replaced
DEFAULT_CONTEXT_LENGTH = 77  # CLIP's text tower; the tokenizer's model_max_length when it is set sensibly

# internal column names of the normalised sources (prefixed so they never clash with a user's column)
_IMAGE, _CAPTION, _LABEL, _UID = "unicl_image", "unicl_caption", "unicl_label", "unicl_uid"

__all__ = [
    "ImageLabelSource",
    "ImageTextSource",
    "MIXING_MODES",
    "RandomResizedCropAndFlip",
    "UniCLCollator",
    "UniCLSampler",
    "UniCLTrainingDataset",
    "UnreadableImageError",
    "build_label_space",
    "build_training_dataset",
    "load_image",
    "resolve_class_names",
    "sample_rng",
    "to_rgb",
    "validate_image_label_dataset",
    "validate_image_text_dataset",
]


# ------------------------------------------------------------------------------------------------------ images
# `to_rgb` (any image input -> 8-bit RGB) and `load_image` live in processing_unicl, which a saved model folder
# copies without this module; they are re-exported here.


def sample_rng(seed: int, epoch: int, uid: int) -> np.random.Generator:
    """The generator of one sample's randomness (template and augmentation): a function of (seed, epoch, uid) only."""
    return np.random.default_rng([int(seed), int(epoch), int(uid)])


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
        height, width = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if height <= 0 or width <= 0:
            raise ValueError(f"Augmentation size must be positive, got {size!r}.")
        scale, ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"crop scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}.")
        if len(ratio) != 2 or not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"crop ratio must be (low, high) with 0 < low <= high, got {ratio!r}.")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob!r}.")
        self.size, self.scale, self.ratio = (height, width), scale, ratio
        self.flip_prob, self.resample = float(flip_prob), resample

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


# ------------------------------------------------------------------------------------------------- validation
@dataclass
class ImageLabelSource:
    """An image-label dataset with its own column names / class names (bare datasets use the builder's defaults)."""

    dataset: datasets.Dataset
    image_column: str = "image"
    label_column: str = "label"
    class_names: Sequence[str] | None = None


@dataclass
class ImageTextSource:
    """An image-text dataset with its own column names (bare datasets use the builder's defaults)."""

    dataset: datasets.Dataset
    image_column: str = "image"
    caption_column: str = "caption"


def build_label_space(
    class_name_lists: Sequence[Sequence[str]], share_class_names: bool = False
) -> tuple[list[str], list[np.ndarray]]:
    """Global class names and, per image-label source, the map local label id -> global class id (>= 0).

    Disjoint ranges by default (source k's ids start after the classes of sources 0..k-1); with
    `share_class_names=True` one vocabulary, names matched after `strip().casefold()` (the first spelling is kept).
    """
    names: list[str] = []
    maps: list[np.ndarray] = []
    vocabulary: dict[str, int] = {}
    for class_names in class_name_lists:
        local_to_global = np.empty(len(class_names), dtype=np.int64)
        for local_id, name in enumerate(class_names):
            key = name.strip().casefold()
            if share_class_names and key in vocabulary:
                local_to_global[local_id] = vocabulary[key]
            else:
                vocabulary.setdefault(key, len(names))
                local_to_global[local_id] = len(names)
                names.append(name)
        maps.append(local_to_global)
    return names, maps


# ------------------------------------------------------------------------------------------- normalised sources
def _image_feature_ok(dataset, column: str):
    feature = dataset.features[column]
    if isinstance(feature, datasets.Image) and feature.decode:
        return dataset
    return dataset.cast_column(column, datasets.Image())


def _normalise_source(dataset, image_column: str, text_column: str, labels: np.ndarray, uids: np.ndarray, is_caption):
    """The common schema of every source: unicl_image (Image), unicl_caption (str or None), unicl_label, unicl_uid."""
    dataset = dataset.select_columns([image_column, text_column])
    dataset = _image_feature_ok(dataset, image_column).rename_column(image_column, _IMAGE)
    if is_caption:
        dataset = dataset.rename_column(text_column, _CAPTION)
        if dataset.features[_CAPTION] != Value("string"):
            dataset = dataset.cast_column(_CAPTION, Value("string"))
    else:
        dataset = dataset.remove_columns([text_column])
        dataset = dataset.add_column(_CAPTION, [None] * len(dataset), feature=Value("string"))
    dataset = dataset.add_column(_LABEL, labels, feature=Value("int64"))
    dataset = dataset.add_column(_UID, uids, feature=Value("int64"))
    return dataset.select_columns([_IMAGE, _CAPTION, _LABEL, _UID])


class _LazyDecode:
    """`with_transform` of the combined dataset: decodes (the Image feature does) and converts to RGB, per access."""

    def __call__(self, batch: dict) -> dict:
        return {
            "image": [to_rgb(image) for image in batch[_IMAGE]],
            "caption": batch[_CAPTION],
            "label": batch[_LABEL],
            "uid": batch[_UID],
        }


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (datasets.Dataset, ImageLabelSource, ImageTextSource, datasets.IterableDataset)):
        return [value]
    return list(value)


# ----------------------------------------------------------------------------------------------- the dataset
class UniCLTrainingDataset(torch.utils.data.Dataset):
    """Mixed image-label + image-text samples -> `{"pixel_values", "text", "labels"}` (see the module docstring).

    Built by `build_training_dataset`. Index `k` means (epoch, row) = divmod(k, len(self)); plain indices
    0..len-1 are epoch 0 in storage order. `get_sampler(batch_size)` gives the sampler that realises the mixing
    mode (`UniCLTrainer` uses it automatically).
    """

    def __init__(
        self,
        hf_dataset: datasets.Dataset,
        *,
        processor,
        class_names: Sequence[str],
        templates: Sequence[str],
        num_label_rows: int,
        num_caption_rows: int,
        mixing: str,
        label_fraction: float,
        seed: int,
        train: bool,
        augmentation: RandomResizedCropAndFlip | None,
        strict: bool = False,
    ):
        self.hf_dataset = hf_dataset
        self.processor = processor
        self.class_names = list(class_names)
        self.templates = tuple(templates)
        self.num_label_rows = int(num_label_rows)
        self.num_caption_rows = int(num_caption_rows)
        self.mixing = mixing
        self.label_fraction = float(label_fraction)
        self.seed = int(seed)
        self.train = bool(train)
        self.augmentation = augmentation
        self.strict = bool(strict)
        # unreadable rows this process met: row -> "file ...: error" (the trainer also collects them from batches,
        # which is how rows met in dataloader workers reach it)
        self.skipped_rows: dict[int, str] = {}
        self._permutations: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.hf_dataset)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_permutations"] = OrderedDict()  # order caches stay in the sampler's process, not in workers
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rows={len(self)}, image_label_rows={self.num_label_rows}, "
            f"image_text_rows={self.num_caption_rows}, classes={len(self.class_names)}, mixing={self.mixing!r}, "
            f"train={self.train}, seed={self.seed}, strict={self.strict})"
        )

    # ---------------------------------------------------------------------------------------------- items
    def __getitem__(self, index) -> dict:
        index = int(index)
        if index < 0:
            raise IndexError(f"Negative index {index}; indices encode (epoch, row) as epoch * len + row.")
        epoch, row = divmod(index, len(self))
        record, skipped = self._read_row(row)
        example = self.make_example(record, epoch)
        if skipped:
            example[SKIPPED_ROWS_KEY] = skipped
        return example

    # ------------------------------------------------------------------------------------------ bad rows
    def _read_row(self, row: int) -> tuple[dict, tuple]:
        """The decoded record of `row` or, when its image cannot be read, of the next readable row of the same data
        type (image-label or image-text), walking forward cyclically: deterministic, so a resumed run substitutes
        the same rows. Returns (record, ((bad_row, description), ...)). `strict=True` raises instead."""
        try:
            return self.hf_dataset[row], ()
        except UNREADABLE_IMAGE_ERRORS as error:
            skipped = [self._unreadable(row, error)]
        is_label_row = self._raw_label(row) >= 0
        length = len(self)
        for step in range(1, length):
            candidate = (row + step) % length
            if (self._raw_label(candidate) >= 0) != is_label_row:
                continue
            try:
                record = self.hf_dataset[candidate]
            except UNREADABLE_IMAGE_ERRORS as error:
                skipped.append(self._unreadable(candidate, error))
                if len(skipped) > MAX_CONSECUTIVE_UNREADABLE:
                    break
                continue
            logger.debug(f"Row {row}: unreadable image, using row {candidate} instead.")
            return record, tuple(skipped)
        listed = "; ".join(f"row {r} ({d})" for r, d in skipped[:5])
        raise RuntimeError(
            f"{len(skipped)} unreadable images in a row from row {row} and no readable "
            f"{'image-label' if is_label_row else 'image-text'} row to use instead: the data is broken ({listed})."
        )

    def _raw_row(self, row: int):
        """Row `row` undecoded, as a one-row pyarrow table (the image column holds {bytes, path})."""
        return self.hf_dataset.with_format("arrow")[row]

    def _raw_label(self, row: int) -> int:
        return int(self._raw_row(row).column(_LABEL)[0].as_py())

    def _unreadable(self, row: int, error: Exception) -> tuple[int, str]:
        """Records (and logs once) an unreadable image; raises with the row index when `strict`."""
        try:
            path = (self._raw_row(row).column(_IMAGE)[0].as_py() or {}).get("path")
        except Exception:  # noqa: BLE001 - the description is best effort, the error itself is what matters
            path = None
        where = f"file {path!r}" if path else "embedded bytes"
        description = f"{where}: {type(error).__name__}: {error}"
        if self.strict:
            raise ValueError(
                f"Unreadable image at row {row} of the training data ({description}). Fix or drop the row, or build "
                "the dataset with strict=False to skip unreadable images."
            ) from error
        if row not in self.skipped_rows:
            self.skipped_rows[row] = description
            logger.warning(
                f"Skipping an unreadable image at row {row} ({description}); the next readable row of its type is "
                "used instead (strict=False)."
            )
        return row, description

    def make_example(self, record: dict, epoch: int) -> dict:
        """One decoded row (`hf_dataset[row]`) -> model inputs for `epoch`."""
        uid, label = int(record["uid"]), int(record["label"])
        rng = sample_rng(self.seed, epoch, uid)
        template = self.templates[int(rng.integers(len(self.templates)))]  # drawn for every row: one stream layout
        text = record["caption"] if record["caption"] is not None else template.format(self.class_names[label])
        image_processor = self.processor.image_processor
        if self.train and self.augmentation is not None:
            image = self.augmentation(record["image"], rng)
            pixel_values = image_processor(image, do_resize=False, do_center_crop=False, return_tensors="pt")
        else:
            pixel_values = image_processor(record["image"], return_tensors="pt")
        return {"pixel_values": pixel_values["pixel_values"][0], "text": text, "labels": label}

    # --------------------------------------------------------------------------------------------- order
    def get_sampler(self, batch_size: int, shuffle: bool = True) -> "UniCLSampler":
        """The sampler of this dataset's mixing mode, for per-device batches of `batch_size`."""
        return UniCLSampler(self, batch_size=batch_size, shuffle=shuffle)

    def _permutation(self, key: tuple, size: int) -> np.ndarray:
        if key not in self._permutations:
            self._permutations[key] = np.random.default_rng([self.seed, *key]).permutation(size)
            while len(self._permutations) > 4:
                self._permutations.popitem(last=False)
        return self._permutations[key]

    def _group_stream(self, group: int, size: int, start: int, count: int) -> np.ndarray:
        """Positions start..start+count-1 of the endless walk through one group's rows in seeded permutations."""
        positions = np.arange(start, start + count, dtype=np.int64)
        out = np.empty(count, dtype=np.int64)
        cycles = positions // size
        for cycle in np.unique(cycles):
            mask = cycles == cycle
            out[mask] = self._permutation((1_000_003, group, int(cycle)), size)[positions[mask] % size]
        return out

    def label_slots(self, batch_size: int) -> tuple[int, int]:
        """(image-label samples per full batch, image-label samples in the last, partial batch) in "batch" mode."""
        per_batch = int(round(self.label_fraction * batch_size))
        if batch_size >= 2:
            per_batch = min(max(per_batch, 1), batch_size - 1)  # both types in every batch
        remainder = len(self) % batch_size
        last = min(max(int(round(self.label_fraction * remainder)), 0), remainder)
        return per_batch, last

    def epoch_order(self, epoch: int, batch_size: int) -> np.ndarray:
        """The rows of `hf_dataset` in the order of `epoch`, `len(self)` of them."""
        length = len(self)
        num_label, num_caption = self.num_label_rows, self.num_caption_rows
        if self.mixing != "batch" or num_label == 0 or num_caption == 0:
            return self._permutation((int(epoch),), length).copy()
        per_batch, last = self.label_slots(batch_size)
        num_full, remainder = divmod(length, batch_size)
        label_draws = num_full * per_batch + last
        caption_draws = length - label_draws
        labels = self._group_stream(0, num_label, epoch * label_draws, label_draws)
        captions = num_label + self._group_stream(1, num_caption, epoch * caption_draws, caption_draws)
        per_caption = batch_size - per_batch
        full = np.concatenate(
            [
                labels[: num_full * per_batch].reshape(num_full, per_batch),
                captions[: num_full * per_caption].reshape(num_full, per_caption),
            ],
            axis=1,
        ).reshape(-1)
        return np.concatenate([full, labels[num_full * per_batch :], captions[num_full * per_caption :]])


class UniCLSampler(torch.utils.data.Sampler):
    """Yields `epoch * len(dataset) + row` for the rows of `dataset.epoch_order(epoch, batch_size)`.

    Consecutive blocks of `batch_size` indices are the batches ("batch" mixing puts both data types in each). Under
    DDP accelerate hands whole blocks to ranks, so every per-device batch keeps the ratio. `set_epoch` is called by
    the trainer; the order is a function of (seed, epoch) only."""

    def __init__(self, dataset: UniCLTrainingDataset, batch_size: int, shuffle: bool = True):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        self.dataset, self.batch_size, self.shuffle, self.epoch = dataset, int(batch_size), bool(shuffle), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        length = len(self.dataset)
        rows = self.dataset.epoch_order(self.epoch, self.batch_size) if self.shuffle else np.arange(length)
        base = self.epoch * length
        return iter((base + rows).tolist())


# ------------------------------------------------------------------------------------------------- builder
def _output_size(image_processor, image_size) -> tuple[int, int]:
    if image_size is not None:
        return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    crop = getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False) and crop is not None and crop.get("height"):
        return int(crop["height"]), int(crop["width"])
    size = getattr(image_processor, "size", None) or {}
    if size.get("height"):
        return int(size["height"]), int(size["width"])
    if size.get("shortest_edge"):
        return int(size["shortest_edge"]), int(size["shortest_edge"])
    raise ValueError("Cannot tell the training image size from the image processor; pass image_size=.")


def build_training_dataset(
    processor,
    image_label_datasets=(),
    image_text_datasets=(),
    *,
    image_column: str = "image",
    label_column: str = "label",
    caption_column: str = "caption",
    class_names: Sequence[str] | None = None,
    share_class_names: bool = False,
    templates: Sequence[str] = IMAGENET_TEMPLATES,
    mixing: str = "batch",
    label_fraction: float = 0.5,
    probabilities: Sequence[float] | None = None,
    stopping_strategy: str = "all_exhausted",
    seed: int = 0,
    train: bool = True,
    image_size: int | Sequence[int] | None = None,
    crop_scale: Sequence[float] = (0.08, 1.0),
    crop_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    flip_prob: float = 0.5,
    strict: bool = False,
) -> UniCLTrainingDataset:
    """Validate and combine image-label and image-text datasets into one `UniCLTrainingDataset`.

    Args:
        processor: a `UniCLProcessor` (its image processor normalises; its tokenizer is used by `UniCLCollator`).
        image_label_datasets: `datasets.Dataset`s (or `ImageLabelSource`s) with an image and a class-label column.
        image_text_datasets: `datasets.Dataset`s (or `ImageTextSource`s) with an image and a caption column.
        image_column, label_column, caption_column: column names for bare datasets.
        class_names: class names of the (single) bare image-label dataset, for a non-ClassLabel label column.
        share_class_names: equal class names in different image-label datasets share one id.
        templates: prompt templates for class names; one is drawn per sample (seeded by (seed, epoch, row)).
        mixing: "batch" (default: `label_fraction` of every batch is image-label data), "interleave"
            (`datasets.interleave_datasets` with `probabilities`) or "concat" (plain union).
        label_fraction: share of image-label samples per batch in "batch" mode.
        probabilities, stopping_strategy: passed to `interleave_datasets` in "interleave" mode (one probability per
            source, image-label sources first).
        seed: seeds the order of each epoch and each sample's template and augmentation.
        train: augment (random resized crop + flip) when True; the processor's evaluation transform when False.
        image_size: output size of the crop; defaults to the image processor's crop size.
        crop_scale, crop_ratio, flip_prob: augmentation parameters.
        strict: raise (a ValueError naming the row and file) at an unreadable image. By default (False) such a row
            is skipped: the next readable row of the same data type stands in for it, deterministically, the row is
            logged and recorded in `dataset.skipped_rows`, and `UniCLTrainer` reports all of them after training.
    """
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError("processor must have an image_processor and a tokenizer (e.g. UniCLProcessor()).")
    if mixing not in MIXING_MODES:
        raise ValueError(f"mixing must be one of {MIXING_MODES}, got {mixing!r}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    templates = check_templates(templates)

    label_sources = []
    for item in _as_list(image_label_datasets):
        if not isinstance(item, ImageLabelSource):
            item = ImageLabelSource(item, image_column, label_column)
        label_sources.append(item)
    caption_sources = []
    for item in _as_list(image_text_datasets):
        if not isinstance(item, ImageTextSource):
            item = ImageTextSource(item, image_column, caption_column)
        caption_sources.append(item)
    if not label_sources and not caption_sources:
        raise ValueError("No data: give at least one image-label or image-text dataset.")
    if class_names is not None:
        if len(label_sources) != 1:
            raise ValueError(
                "class_names= applies to a single image-label dataset; with several, wrap each in "
                "ImageLabelSource(dataset, class_names=...)."
            )
        if label_sources[0].class_names is None:
            label_sources[0] = ImageLabelSource(
                label_sources[0].dataset, label_sources[0].image_column, label_sources[0].label_column, class_names
            )

    # validate everything before building anything
    source_class_names = [
        validate_image_label_dataset(s.dataset, s.image_column, s.label_column, s.class_names) for s in label_sources
    ]
    for source in caption_sources:
        validate_image_text_dataset(source.dataset, source.image_column, source.caption_column)
    if label_sources and caption_sources and mixing == "batch" and not 0.0 < label_fraction < 1.0:
        raise ValueError(
            f"label_fraction must be strictly between 0 and 1 when mixing both data types, got {label_fraction!r} "
            "(to train on one type only, leave the other out)."
        )
    num_sources = len(label_sources) + len(caption_sources)
    if probabilities is not None:
        probabilities = [float(p) for p in probabilities]
        valid = len(probabilities) == num_sources and all(p >= 0 for p in probabilities)
        if not valid or not math.isclose(sum(probabilities), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"probabilities must be {num_sources} non-negative numbers (one per source, image-label sources "
                f"first) summing to 1, got {probabilities!r}."
            )

    names, id_maps = build_label_space(source_class_names, share_class_names)
    parts, uid_offset = [], 0
    for source, id_map in zip(label_sources, id_maps):
        n = len(source.dataset)
        uids = np.arange(uid_offset, uid_offset + n, dtype=np.int64)
        labels = id_map[label_ids(source.dataset, source.label_column)]
        parts.append(_normalise_source(source.dataset, source.image_column, source.label_column, labels, uids, False))
        uid_offset += n
    num_label_rows = uid_offset
    for source in caption_sources:
        n = len(source.dataset)
        uids = np.arange(uid_offset, uid_offset + n, dtype=np.int64)
        labels = -(1 + uids)
        parts.append(_normalise_source(source.dataset, source.image_column, source.caption_column, labels, uids, True))
        uid_offset += n
    num_caption_rows = uid_offset - num_label_rows

    if mixing == "interleave" and train and len(parts) > 1:
        combined = datasets.interleave_datasets(
            parts, probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy
        )
        combined_labels = column_array(combined, _LABEL).to_numpy()
        num_label_rows, num_caption_rows = int((combined_labels >= 0).sum()), int((combined_labels < 0).sum())
    else:
        combined = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)

    augmentation = None
    if train:
        augmentation = RandomResizedCropAndFlip(
            _output_size(processor.image_processor, image_size), scale=crop_scale, ratio=crop_ratio, flip_prob=flip_prob
        )
    return UniCLTrainingDataset(
        combined.with_transform(_LazyDecode()),
        processor=processor,
        class_names=names,
        templates=templates,
        num_label_rows=num_label_rows,
        num_caption_rows=num_caption_rows,
        mixing=mixing,
        label_fraction=label_fraction,
        seed=int(seed),
        train=train,
        augmentation=augmentation,
        strict=strict,
    )


# ----------------------------------------------------------------------------------------------- collator
class UniCLCollator:
    """Samples -> a batch for `UniCLModel`: `pixel_values` (B, 3, H, W) float, `input_ids` / `attention_mask`
    (B, L) padded to the longest text of the batch (CLIP's text tower pools at the first end-of-text token, so the
    pad length does not change the result), `labels` (B,) int64.

    A sample has `pixel_values` (or a PIL `image`, run through the image processor), `text` (or `input_ids`) and
    `labels` (or `label`). Either every sample of a batch has a label or none has (then there are no `labels` and
    the model's loss is CLIP's: each pair its own positive).

    With `report_skipped_rows=True` (`UniCLTrainer` sets it) the batch also carries `unicl_skipped_rows`, the
    unreadable rows that the dataset replaced, as a list of (row, description): that is how rows skipped inside
    dataloader workers reach the trainer, which removes the key before calling the model."""

    def __init__(self, processor, max_length: int | None = None, report_skipped_rows: bool = False):
        self.report_skipped_rows = bool(report_skipped_rows)
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.image_processor = getattr(processor, "image_processor", None)
        if max_length is None:
            model_max = getattr(self.tokenizer, "model_max_length", None)
            max_length = model_max if isinstance(model_max, int) and 0 < model_max <= 4096 else DEFAULT_CONTEXT_LENGTH
        self.max_length = int(max_length)

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("UniCLCollator got an empty batch.")
        batch: dict[str, torch.Tensor] = {}
        if all("pixel_values" in f for f in features):
            pixel_values = [torch.as_tensor(f["pixel_values"], dtype=torch.float32) for f in features]
            batch["pixel_values"] = torch.stack(pixel_values)
        elif all("image" in f for f in features):
            if self.image_processor is None:
                raise ValueError("Samples carry images but the collator has no image processor: pass a UniCLProcessor.")
            images = [to_rgb(f["image"]) for f in features]
            batch["pixel_values"] = self.image_processor(images, return_tensors="pt")["pixel_values"]
        else:
            raise ValueError("Every sample needs 'pixel_values' (or 'image'); got keys " f"{sorted(features[0])}.")

        if all("text" in f for f in features):
            texts = [f["text"] for f in features]
            bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
            if bad:
                raise ValueError(f"Samples {bad[:10]} of the batch have no text (None or empty).")
            tokens = self.tokenizer(
                texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
            )
        elif all("input_ids" in f for f in features):
            tokens = self.tokenizer.pad(
                {"input_ids": [list(f["input_ids"]) for f in features]}, padding="longest", return_tensors="pt"
            )
        else:
            raise ValueError("Every sample needs 'text' (or 'input_ids'); got keys " f"{sorted(features[0])}.")
        batch["input_ids"] = tokens["input_ids"].long()
        batch["attention_mask"] = tokens["attention_mask"].long()

        labels = [f.get("labels", f.get("label")) for f in features]
        missing = [i for i, label in enumerate(labels) if label is None]
        if missing and len(missing) < len(labels):
            raise ValueError(
                f"{len(missing)} of the {len(labels)} samples in this batch have no label (None), at positions "
                f"{missing[:10]}: give every sample a label (class id >= 0, or a unique negative id for an "
                "image-text pair) or none of them."
            )
        if not missing:
            batch["labels"] = torch.as_tensor([int(label) for label in labels], dtype=torch.int64)
        if self.report_skipped_rows:
            skipped = [tuple(item) for f in features for item in f.get(SKIPPED_ROWS_KEY, ())]
            if skipped:
                batch[SKIPPED_ROWS_KEY] = skipped
        return batch
