"""`build_training_dataset`: image-label and image-text datasets + `TrainingDataOptions` -> one `UniCLTrainingDataset`.

Everything is validated before anything is built: the options (by `TrainingDataOptions`), every dataset (columns,
labels, captions; `modeling_unicl.utils.checks`) and what depends on both (per-batch ratio, one probability per
source).
"""

from __future__ import annotations

import dataclasses

import datasets

from ..utils.checks import validate_image_label_dataset, validate_image_text_dataset
from .dataset import UniCLTrainingDataset
from .options import TrainingDataOptions
from .sources import (
    ImageLabelSource,
    ImageTextSource,
    LazyDecode,
    build_label_space,
    count_label_rows,
    normalise_sources,
)

__all__ = ["build_training_dataset"]


def build_training_dataset(
    processor,
    image_label_datasets=(),
    image_text_datasets=(),
    options: TrainingDataOptions | None = None,
    **overrides,
) -> UniCLTrainingDataset:
    """Validate and combine image-label and image-text datasets into one `UniCLTrainingDataset`.

    Args:
        processor: a `UniCLProcessor` (its image processor normalises; its tokenizer is used by `UniCLCollator`).
        image_label_datasets: `datasets.Dataset`s (or `ImageLabelSource`s) with an image and a class-label column.
        image_text_datasets: `datasets.Dataset`s (or `ImageTextSource`s) with an image and a caption column.
        options: a `TrainingDataOptions`; default all its defaults.
        **overrides: fields of `TrainingDataOptions` that replace those of `options`, e.g.
            `build_training_dataset(processor, [labelled], [captions], mixing="concat", seed=1)`.

    Unreadable images: by default (`strict=False`) a row whose image cannot be read is replaced by the next readable
    row of its data type, deterministically; the row is logged and recorded in `dataset.skipped_rows`, and
    `UniCLTrainer` reports all of them after training. `strict=True` raises a ValueError naming the row and file.
    """
    options = TrainingDataOptions.with_overrides(options, overrides)
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError("processor must have an image_processor and a tokenizer (e.g. UniCLProcessor()).")
    label_sources, caption_sources = _sources(image_label_datasets, image_text_datasets, options)
    class_name_lists = [
        validate_image_label_dataset(s.dataset, s.image_column, s.label_column, s.class_names) for s in label_sources
    ]
    for source in caption_sources:
        validate_image_text_dataset(source.dataset, source.image_column, source.caption_column)
    _check_options_against_sources(options, len(label_sources), len(caption_sources))

    class_names, id_maps = build_label_space(class_name_lists, options.share_class_names)
    link_to = class_names if options.link_captions_to_classes else None
    parts = normalise_sources(label_sources, caption_sources, id_maps, link_to=link_to)
    combined, num_label_rows, num_caption_rows = _combine(parts, len(label_sources), options)
    return UniCLTrainingDataset(
        combined.with_transform(LazyDecode()),
        processor=processor,
        class_names=class_names,
        num_label_rows=num_label_rows,
        num_caption_rows=num_caption_rows,
        options=options,
    )


def _sources(image_label_datasets, image_text_datasets, options: TrainingDataOptions):
    """The datasets as sources, bare ones with the options' column names (and class names)."""
    image, label, caption = options.image_column, options.label_column, options.caption_column
    label_sources = [
        item if isinstance(item, ImageLabelSource) else ImageLabelSource(item, image, label)
        for item in _as_list(image_label_datasets)
    ]
    caption_sources = [
        item if isinstance(item, ImageTextSource) else ImageTextSource(item, image, caption)
        for item in _as_list(image_text_datasets)
    ]
    if not label_sources and not caption_sources:
        raise ValueError("No data: give at least one image-label or image-text dataset.")
    if options.class_names is not None:
        if len(label_sources) != 1:
            raise ValueError(
                "class_names= applies to a single image-label dataset; with several, wrap each in "
                "ImageLabelSource(dataset, class_names=...)."
            )
        if label_sources[0].class_names is None:
            label_sources[0] = dataclasses.replace(label_sources[0], class_names=options.class_names)
    return label_sources, caption_sources


def _combine(parts, num_label_sources: int, options: TrainingDataOptions):
    """(the rows of all sources as one dataset, its image-label row count, its image-text row count)."""
    if options.mixing == "interleave" and options.train and len(parts) > 1:
        combined = datasets.interleave_datasets(
            parts,
            probabilities=None if options.probabilities is None else list(options.probabilities),
            seed=options.seed,
            stopping_strategy=options.stopping_strategy,
        )
        return (combined, *count_label_rows(combined))
    combined = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    num_label_rows = sum(len(part) for part in parts[:num_label_sources])
    return combined, num_label_rows, len(combined) - num_label_rows


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (datasets.Dataset, ImageLabelSource, ImageTextSource, datasets.IterableDataset)):
        return [value]
    return list(value)


def _check_options_against_sources(options: TrainingDataOptions, num_label_sources: int, num_caption_sources: int):
    both_types = num_label_sources > 0 and num_caption_sources > 0
    if both_types and options.mixing == "batch" and not 0.0 < options.label_fraction < 1.0:
        raise ValueError(
            f"label_fraction must be strictly between 0 and 1 when mixing both data types, got "
            f"{options.label_fraction!r} (to train on one type only, leave the other out)."
        )
    num_sources = num_label_sources + num_caption_sources
    if options.probabilities is not None and len(options.probabilities) != num_sources:
        raise ValueError(
            f"probabilities must have one value per source ({num_sources}: image-label sources first), got "
            f"{len(options.probabilities)}: {list(options.probabilities)!r}."
        )
