"""`TrainingDataOptions`: every setting of `build_training_dataset` in one validated dataclass.

The checks here need nothing but the values; those that need the datasets too (how many sources there are, whether
both data types are present) are made by `build_training_dataset`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Sequence

from ..prompts import IMAGENET_TEMPLATES, check_templates
from .examples import check_crop_ratio, check_crop_scale, check_image_size, check_probability

MIXING_MODES = ("batch", "interleave", "concat")
# what `datasets.interleave_datasets` accepts (the last one since datasets 4)
STOPPING_STRATEGIES = ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement")

__all__ = ["MIXING_MODES", "STOPPING_STRATEGIES", "TrainingDataOptions"]


@dataclass(frozen=True)
class TrainingDataOptions:
    """How `build_training_dataset` reads, mixes and augments the data. Invalid values raise a `ValueError` naming
    the field, the value and what is expected.

    Columns (of bare datasets; wrap a dataset in `ImageLabelSource` / `ImageTextSource` to give it its own):
        image_column, label_column, caption_column: default "image", "label", "caption".

    Labels and prompts:
        class_names: class names of the single bare image-label dataset, for a label column that is not a
            `ClassLabel`.
        share_class_names: equal class names (compared after `strip().casefold()`) in different image-label datasets
            are one class with one id; by default every dataset gets its own id range.
        templates: prompt templates (one `{}` each) that turn a class name into a text; one is drawn per sample.

    Mixing (see `modeling_unicl.data.sampling`):
        mixing: "batch" (default: `label_fraction` of every batch is image-label data), "interleave"
            (`datasets.interleave_datasets`) or "concat" (the plain union).
        label_fraction: share of image-label samples per batch in "batch" mode (default 0.5); strictly between 0
            and 1 when both data types are given.
        probabilities, stopping_strategy: passed to `interleave_datasets` in "interleave" mode; one probability per
            source, image-label sources first.
        seed: seeds the order of every epoch and every sample's template and augmentation.

    Images:
        train: augment (random resized crop + flip) when True; the image processor's evaluation transform when False.
        image_size: output (height, width) of the crop (an int for a square); default the image processor's crop
            size.
        crop_scale, crop_ratio, flip_prob: the crop's area range (fraction of the image), its aspect ratio range
            (width / height) and the probability of a horizontal flip.

    Texts:
        context_length: texts are cut to this many tokens by the collator `UniCLTrainer` builds (default: the
            tokenizer's `model_max_length`, or CLIP's 77).

    Unreadable images:
        strict: raise a `ValueError` naming the row and the file at the first unreadable image. By default such a
            row is replaced by the next readable row of its data type and recorded (`dataset.skipped_rows`).

    Caption-to-class linking (`modeling_unicl.data.linking`):
        link_captions_to_classes: an image-caption pair whose caption names exactly one known class (whole words,
            plurals, any case) gets that class's id, so it is a positive of the class's prompts instead of a
            negative; a caption naming two classes keeps its own id. Off by default (UniCL as published).
    """

    image_column: str = "image"
    label_column: str = "label"
    caption_column: str = "caption"
    class_names: Sequence[str] | None = None
    share_class_names: bool = False
    templates: Sequence[str] = field(default=IMAGENET_TEMPLATES, repr=False)  # 80 by default: too long to show
    mixing: str = "batch"
    label_fraction: float = 0.5
    probabilities: Sequence[float] | None = None
    stopping_strategy: str = "all_exhausted"
    seed: int = 0
    train: bool = True
    image_size: int | Sequence[int] | None = None
    crop_scale: Sequence[float] = (0.08, 1.0)
    crop_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_prob: float = 0.5
    context_length: int | None = None
    strict: bool = False
    link_captions_to_classes: bool = False

    def __post_init__(self):
        for name in ("image_column", "label_column", "caption_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a column name (a non-empty string), got {value!r}.")
        for name in ("share_class_names", "train", "strict", "link_captions_to_classes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.class_names is not None:
            if isinstance(self.class_names, str):
                raise ValueError(f"class_names must be a list of names, got the single string {self.class_names!r}.")
            self._set("class_names", tuple(self.class_names))
        self._set("templates", check_templates(self.templates))
        if self.mixing not in MIXING_MODES:
            raise ValueError(f"mixing must be one of {MIXING_MODES}, got {self.mixing!r}.")
        if self.stopping_strategy not in STOPPING_STRATEGIES:
            raise ValueError(f"stopping_strategy must be one of {STOPPING_STRATEGIES}, got {self.stopping_strategy!r}.")
        self._set("label_fraction", check_probability(self.label_fraction, "label_fraction"))
        if self.probabilities is not None:
            self._set("probabilities", _check_probabilities(self.probabilities))
        self._set("seed", _check_whole_number(self.seed, "seed", 0, "a non-negative integer"))
        if self.image_size is not None:
            self._set("image_size", check_image_size(self.image_size))
        self._set("crop_scale", check_crop_scale(self.crop_scale))
        self._set("crop_ratio", check_crop_ratio(self.crop_ratio))
        self._set("flip_prob", check_probability(self.flip_prob, "flip_prob"))
        if self.context_length is not None:
            length = _check_whole_number(self.context_length, "context_length", 1, "a positive number of tokens")
            self._set("context_length", length)

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # the normalised value of a field of this frozen dataclass

    @classmethod
    def with_overrides(cls, options: TrainingDataOptions | None, overrides: dict) -> TrainingDataOptions:
        """`options` (default: all defaults) with the fields named in `overrides` replaced; an unknown name is a
        TypeError that names it and lists the fields."""
        if options is None:
            options = cls()
        elif not isinstance(options, cls):
            raise TypeError(
                f"options must be a {cls.__name__} (or None), got {type(options).__name__}; pass single settings "
                "as keyword arguments."
            )
        names = [option.name for option in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"Unknown data option(s) {unknown}; the options are the fields of {cls.__name__}: {names}.")
        return dataclasses.replace(options, **overrides) if overrides else options


def _check_whole_number(value, name: str, minimum: int, expected: str) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    return int(value)


def _check_probabilities(probabilities) -> tuple[float, ...]:
    values = tuple(probabilities)
    numbers = all(isinstance(p, Real) and not isinstance(p, bool) and math.isfinite(p) and p >= 0 for p in values)
    if not values or not numbers or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"probabilities must be non-negative numbers (one per source, image-label sources first) summing to 1, "
            f"got {probabilities!r}."
        )
    return tuple(float(p) for p in values)
