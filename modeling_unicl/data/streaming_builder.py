"""`build_streaming_dataset`: shard patterns and streamed `datasets` + `TrainingDataOptions` -> one
`StreamingTrainingDataset`, checked before any training starts.

Checked here, each a ValueError naming the bad value (OSError for a missing class-name file):
    * a shard pattern that matches no existing file;
    * image-label data without class names (`class_names_file`, `class_names`, or `ClassLabel` features);
    * the first sample of up to `PREFLIGHT_SHARDS` shards per data type (evenly spread, all of them when there are
      fewer): it must have an image member, a caption / class id, and a class id inside the class names;
    * a `manifest.json` beside the shards (what `scripts/make_shards.py` writes) that counts more classes than the
      class names have;
    * the options that streaming cannot honour (`mixing` other than "batch").
Everything else that is wrong with a sample is found while training, skipped and reported (see `streaming`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

import datasets

from .class_names import ClassNames, read_class_names_file
from .options import TrainingDataOptions
from .shards import (
    BAD_CLASS_ID,
    UNREADABLE_SHARD,
    HubShards,
    SampleProblem,
    ShardReadError,
    TarShards,
    expand_shard_patterns,
)
from .streaming import StreamingTrainingDataset

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST_FILE", "PREFLIGHT_SHARDS", "build_streaming_dataset", "read_manifest"]

MANIFEST_FILE = "manifest.json"
PREFLIGHT_SHARDS = 16  # shards per data type whose first sample is checked before training


def build_streaming_dataset(
    processor,
    image_label_shards: Sequence[str] | str = (),
    image_text_shards: Sequence[str] | str = (),
    class_names_file: str | os.PathLike | None = None,
    *,
    image_label_datasets=(),
    image_text_datasets=(),
    options: TrainingDataOptions | None = None,
    shuffle_window: int = 1000,
    caption_labeler: Callable[[str], int | None] | None = None,
    **overrides,
) -> StreamingTrainingDataset:
    """Validate and combine shards and streamed datasets into one `StreamingTrainingDataset`.

    Args:
        processor: a `UniCLProcessor`.
        image_label_shards, image_text_shards: shard patterns (`shards.expand_shard_patterns`: brace ranges,
            wildcards, local paths or fsspec URLs), one string or several.
        class_names_file: line i names class id i of every image-label shard (synonyms separated by commas).
        image_label_datasets, image_text_datasets: `datasets.IterableDataset`s (`load_dataset(...,
            streaming=True)`), or `shards.HubShards` that name them; read with the options' column names.
        options: a `TrainingDataOptions` (`mixing` must be "batch"); `**overrides` replace its fields.
            Its `caption_column` / `label_column` are also the fields of a shard's `KEY.json` that hold a caption /
            class id when the sample has no `KEY.txt` / `KEY.cls`.
        shuffle_window: samples per window of the within-reader shuffle (each reader holds one window of encoded
            samples per data type in memory).
        caption_labeler: caption -> class id (or None: the caption keeps its own id). Default: the caption-to-class
            linking of `modeling_unicl.data.linking` when `link_captions_to_classes=True`, else none.
    """
    options = TrainingDataOptions.with_overrides(options, overrides)
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError("processor must have an image_processor and a tokenizer (e.g. UniCLProcessor()).")
    if options.mixing != "batch":
        raise ValueError(f"mixing={options.mixing!r} is not available for streamed data; use mixing='batch'.")
    if int(shuffle_window) < 1:
        raise ValueError(f"shuffle_window must be a positive number of samples, got {shuffle_window!r}.")

    label_sources = _tar_sources(image_label_shards, True, options, "image_label_shards")
    label_sources += _hub_sources(image_label_datasets, True, options, "image_label_datasets")
    caption_sources = _tar_sources(image_text_shards, False, options, "image_text_shards")
    caption_sources += _hub_sources(image_text_datasets, False, options, "image_text_datasets")
    if not label_sources and not caption_sources:
        raise ValueError("No data: give image-label or image-text shards (or streamed datasets).")
    if label_sources and caption_sources and not 0.0 < options.label_fraction < 1.0:
        raise ValueError(
            f"label_fraction must be strictly between 0 and 1 when mixing both data types, got "
            f"{options.label_fraction!r} (to train on one type only, leave the other out)."
        )

    class_names = _class_names(label_sources, class_names_file, options) if label_sources else None
    _check_manifests(label_sources, class_names)
    for sources, what in ((label_sources, "image-label"), (caption_sources, "image-text")):
        _check_first_samples(sources, what, class_names)
    if caption_labeler is None and options.link_captions_to_classes and class_names is not None:
        caption_labeler = _synonym_linker(class_names)
    return StreamingTrainingDataset(
        label_sources,
        caption_sources,
        processor=processor,
        class_names=class_names,
        options=options,
        shuffle_window=shuffle_window,
        caption_labeler=caption_labeler,
        num_samples=_manifest_samples(label_sources + caption_sources),
    )


# ------------------------------------------------------------------------------------------------ sources
def _tar_sources(patterns, is_label: bool, options: TrainingDataOptions, name: str) -> list[TarShards]:
    if not patterns:
        return []
    urls = expand_shard_patterns(patterns, name)
    return [TarShards(urls, is_label, caption_field=options.caption_column, label_field=options.label_column)]


def _hub_sources(items, is_label: bool, options: TrainingDataOptions, name: str) -> list[HubShards]:
    if items is None:
        return []
    if isinstance(items, (datasets.IterableDataset, HubShards)):
        items = [items]
    sources = []
    for number, item in enumerate(items):
        if isinstance(item, HubShards):
            sources.append(item)
        elif isinstance(item, datasets.IterableDataset):
            source_name = (item.info.dataset_name if item.info is not None else None) or f"{name}[{number}]"
            sources.append(HubShards(item, source_name, is_label, options.image_column, options.caption_column,
                                     options.label_column))
        else:
            raise ValueError(
                f"{name} takes datasets.IterableDataset (load_dataset(..., streaming=True)), got {type(item).__name__}."
            )
    return sources


def _class_names(label_sources, class_names_file, options: TrainingDataOptions) -> ClassNames:
    """The class names of every image-label source: the file, the option, or the streamed datasets' ClassLabel."""
    if class_names_file is not None:
        return read_class_names_file(class_names_file)
    if options.class_names is not None:
        return ClassNames.from_names(options.class_names)
    names = set()
    for source in label_sources:
        features = source.dataset.features if isinstance(source, HubShards) else None
        feature = (features or {}).get(source.label_column) if features is not None else None
        names.add(tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else None)
    if len(names) == 1 and None not in names:  # every source streamed, all with the same ClassLabel names
        return ClassNames.from_names(names.pop())
    raise ValueError(
        "Image-label shards need class names: pass class_names_file=<path> (line i names class id i; synonyms "
        "separated by commas), or class_names=[...]."
    )


def _synonym_linker(class_names: ClassNames) -> Callable[[str], int | None]:
    """Caption-to-class linking over every synonym of every class (`linking.CaptionLinker`)."""
    from .linking import CaptionLinker

    spellings = [(class_id, name) for class_id, names in enumerate(class_names.synonyms) for name in names]
    linker = CaptionLinker([name for _, name in spellings])
    to_class = [class_id for class_id, _ in spellings]

    def labeler(caption: str) -> int | None:
        found = linker(caption)
        return None if found is None else to_class[found]

    return labeler


# ------------------------------------------------------------------------------------------------ checks
def _preflight_indices(num_shards: int) -> list[int]:
    if num_shards <= PREFLIGHT_SHARDS:
        return list(range(num_shards))
    step = (num_shards - 1) / (PREFLIGHT_SHARDS - 1)
    return sorted({round(k * step) for k in range(PREFLIGHT_SHARDS)})


def _check_first_samples(sources, what: str, class_names: ClassNames | None) -> None:
    """The first sample of a spread of shards has what every sample needs (ValueError naming the shard)."""
    checked = readable = 0
    for source in sources:
        for index in _preflight_indices(source.num_shards):
            checked += 1
            try:
                raw = next(iter(source.samples(index)), None)
            except ShardReadError as error:
                logger.warning(f"{what} shard {error.shard} cannot be read ({error}); it will be skipped.")
                continue
            if raw is None:
                continue
            readable += 1
            sample = source.parse(index, raw)
            if sample.problem is None and source.is_label and not 0 <= sample.class_id < len(class_names):
                sample.problem = SampleProblem(
                    BAD_CLASS_ID, f"class id {sample.class_id} is outside the {len(class_names)} class names"
                )
            if sample.problem is not None:
                raise ValueError(
                    f"{what} shard {source.shard_name(index)}: sample {sample.key!r} has a problem: "
                    f"{sample.problem.kind} ({sample.problem})."
                )
    if checked and not readable:
        raise ValueError(f"None of the {checked} {what} shards checked could be read ({UNREADABLE_SHARD}s or empty).")


def read_manifest(folder: str) -> dict | None:
    """The `manifest.json` of a local shard folder (written by `scripts/make_shards.py`), or None."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from error
    return manifest if isinstance(manifest, dict) else None


def _manifests(sources) -> dict[str, dict | None]:
    folders = {os.path.dirname(url) for s in sources if isinstance(s, TarShards) for url in s.urls if "://" not in url}
    return {folder: read_manifest(folder) for folder in sorted(folders)}


def _check_manifests(label_sources, class_names: ClassNames | None) -> None:
    for folder, manifest in _manifests(label_sources).items():
        if manifest is None or class_names is None:
            continue
        num_classes = manifest.get("num_classes")
        if isinstance(num_classes, int) and num_classes > len(class_names):
            raise ValueError(
                f"The shards in {folder} have class ids up to {num_classes - 1} ({MANIFEST_FILE}: {num_classes} "
                f"classes), but the class names list only {len(class_names)}."
            )


def _manifest_samples(sources) -> int | None:
    """Samples of all sources by their manifests, or None when a shard is not in one (or a source is streamed)."""
    if any(not isinstance(s, TarShards) for s in sources):
        return None
    counts = {}
    for folder, manifest in _manifests(sources).items():
        for entry in (manifest or {}).get("shards", []):
            counts[os.path.join(folder, str(entry.get("file")))] = entry.get("num_samples")
    total = 0
    for source in sources:
        for url in source.urls:
            count = counts.get(url)
            if not isinstance(count, int):
                return None
            total += count
    return total
