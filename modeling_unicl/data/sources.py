"""Sources: image-label and image-text datasets in one schema, their label space, and reading rows.

Sources
    * image-label: a `datasets.Dataset` with an image column and a `ClassLabel` label column (the class names come
      from the feature) or an integer label column plus explicit class names.
    * image-text: a `datasets.Dataset` with an image column and a caption column (a string per row).
    Column names are configurable, per source with `ImageLabelSource` / `ImageTextSource`. Every source becomes the
    schema (unicl_image, unicl_caption, unicl_label, unicl_uid); the image-label sources come first.

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

Laziness
    Images stay encoded in the Arrow table. The combined dataset carries a `with_transform` that decodes and
    converts to RGB only the rows that are accessed.

Unreadable images
    `RowReader` replaces a row whose image cannot be decoded by the next readable row of the same data type, walking
    forward cyclically (deterministic: a resumed run substitutes the same rows), records it in a `SkippedRows` and
    logs it once per process; more than `MAX_CONSECUTIVE_UNREADABLE` unreadable rows in a row mean the data is
    broken. With `strict=True` the first unreadable image raises instead.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image as PILImage

import datasets
from datasets import Value

from ..processing_unicl import to_rgb
from ..utils.checks import column_array, label_ids
from .skipped import SkippedRows

logger = logging.getLogger(__name__)

# What decoding a corrupt, truncated or missing image file raises (PIL, datasets' Image feature, `to_rgb`).
UNREADABLE_IMAGE_ERRORS = (
    OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error, zlib.error, PILImage.DecompressionBombError
)
MAX_CONSECUTIVE_UNREADABLE = 50  # more unreadable rows in a row than this: the data is broken, stop

# the columns of the common schema (prefixed so they never clash with a user's column)
IMAGE_COLUMN, CAPTION_COLUMN, LABEL_COLUMN, UID_COLUMN = "unicl_image", "unicl_caption", "unicl_label", "unicl_uid"

__all__ = ["ImageLabelSource", "ImageTextSource", "RowReader", "build_label_space", "normalise_sources"]


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


# ------------------------------------------------------------------------------------------- one schema
def normalise_sources(
    label_sources: Sequence[ImageLabelSource],
    caption_sources: Sequence[ImageTextSource],
    id_maps: Sequence[np.ndarray],
    link_to: Sequence[str] | None = None,
) -> list[datasets.Dataset]:
    """Every source in the common schema, image-label sources first, with its label ids and uids (see above).

    `link_to`: the global class names; when given, a caption that names exactly one of them gets that class's id
    instead of its own (`modeling_unicl.data.linking`)."""
    parts, uid_offset = [], 0
    for source, id_map in zip(label_sources, id_maps):
        uids = np.arange(uid_offset, uid_offset + len(source.dataset), dtype=np.int64)
        labels = id_map[label_ids(source.dataset, source.label_column)]
        parts.append(_normalise(source.dataset, source.image_column, source.label_column, labels, uids, False))
        uid_offset += len(source.dataset)
    for source in caption_sources:
        uids = np.arange(uid_offset, uid_offset + len(source.dataset), dtype=np.int64)
        labels = -(1 + uids)
        if link_to is not None:
            captions = column_array(source.dataset, source.caption_column).to_pylist()
            labels = _link_captions(captions, labels, link_to)
        parts.append(_normalise(source.dataset, source.image_column, source.caption_column, labels, uids, True))
        uid_offset += len(source.dataset)
    return parts


def _link_captions(captions: Sequence[str | None], own_ids: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """`own_ids` with the id of the one class each caption names, where it names exactly one."""
    from .linking import CaptionLinker

    linker = CaptionLinker(class_names)
    linked = [linker(caption) for caption in captions]
    return np.asarray([own if class_id is None else class_id for own, class_id in zip(own_ids, linked)], np.int64)


def _normalise(dataset, image_column: str, text_column: str, labels, uids, is_caption: bool) -> datasets.Dataset:
    dataset = dataset.select_columns([image_column, text_column])
    if not (isinstance(dataset.features[image_column], datasets.Image) and dataset.features[image_column].decode):
        dataset = dataset.cast_column(image_column, datasets.Image())  # paths / bytes: decoded lazily on access
    dataset = dataset.rename_column(image_column, IMAGE_COLUMN)
    if is_caption:
        dataset = dataset.rename_column(text_column, CAPTION_COLUMN)
        if dataset.features[CAPTION_COLUMN] != Value("string"):
            dataset = dataset.cast_column(CAPTION_COLUMN, Value("string"))
    else:
        dataset = dataset.remove_columns([text_column])
        dataset = dataset.add_column(CAPTION_COLUMN, [None] * len(dataset), feature=Value("string"))
    dataset = dataset.add_column(LABEL_COLUMN, labels, feature=Value("int64"))
    dataset = dataset.add_column(UID_COLUMN, uids, feature=Value("int64"))
    return dataset.select_columns([IMAGE_COLUMN, CAPTION_COLUMN, LABEL_COLUMN, UID_COLUMN])


def count_label_rows(dataset: datasets.Dataset) -> tuple[int, int]:
    """(image-label rows, image-text rows) of a dataset in the common schema (told apart by the caption: a linked
    caption has a class id too)."""
    num_captions = len(dataset) - column_array(dataset, CAPTION_COLUMN).null_count
    return len(dataset) - num_captions, num_captions


class LazyDecode:
    """`with_transform` of the combined dataset: decodes (the Image feature does) and converts to RGB, per access."""

    def __call__(self, batch: dict) -> dict:
        return {
            "image": [to_rgb(image) for image in batch[IMAGE_COLUMN]],
            "caption": batch[CAPTION_COLUMN],
            "label": batch[LABEL_COLUMN],
            "uid": batch[UID_COLUMN],
        }


# ------------------------------------------------------------------------------------------- reading rows
class RowReader:
    """Decoded rows (`{"image", "caption", "label", "uid"}`) of a combined dataset that carries `LazyDecode`, with
    the unreadable-image fallback of the module docstring. Rows replaced are recorded in `skipped`."""

    def __init__(self, hf_dataset: datasets.Dataset, skipped: SkippedRows, strict: bool = False):
        self.hf_dataset, self.skipped, self.strict = hf_dataset, skipped, bool(strict)
        self._is_label_row = None  # per row: image-label (True) or image-text; read when a first image fails

    def read(self, row: int) -> dict:
        try:
            return self.hf_dataset[row]
        except UNREADABLE_IMAGE_ERRORS as error:
            return self._substitute(row, error)

    def _substitute(self, row: int, error: Exception) -> dict:
        """The next readable row of `row`'s data type, walking forward cyclically."""
        unreadable = [self._record_unreadable(row, error)]
        is_label_row = self._data_types()
        length = len(self.hf_dataset)
        for step in range(1, length):
            candidate = (row + step) % length
            if is_label_row[candidate] != is_label_row[row]:
                continue
            try:
                record = self.hf_dataset[candidate]
            except UNREADABLE_IMAGE_ERRORS as candidate_error:
                unreadable.append(self._record_unreadable(candidate, candidate_error))
                if len(unreadable) > MAX_CONSECUTIVE_UNREADABLE:
                    break
                continue
            logger.debug(f"Row {row}: unreadable image, using row {candidate} instead.")
            return record
        listed = "; ".join(f"row {r} ({d})" for r, d in unreadable[:5])
        data_type = "image-label" if is_label_row[row] else "image-text"
        raise RuntimeError(
            f"{len(unreadable)} unreadable images in a row from row {row} and no readable {data_type} row to use "
            f"instead: the data is broken ({listed})."
        )

    def _data_types(self) -> np.ndarray:
        if self._is_label_row is None:
            self._is_label_row = column_array(self.hf_dataset, CAPTION_COLUMN).is_null().to_numpy(zero_copy_only=False)
        return self._is_label_row

    def _record_unreadable(self, row: int, error: Exception) -> tuple[int, str]:
        """(row, description) of an unreadable image, recorded and logged once; raises naming the row when strict."""
        description = f"{self._image_origin(row)}: {type(error).__name__}: {error}"
        if self.strict:
            raise ValueError(
                f"Unreadable image at row {row} of the training data ({description}). Fix or drop the row, or build "
                "the dataset with strict=False to skip unreadable images."
            ) from error
        if self.skipped.add(row, description):
            logger.warning(
                f"Skipping an unreadable image at row {row} ({description}); the next readable row of its type is "
                "used instead (strict=False)."
            )
        return row, description

    def _image_origin(self, row: int) -> str:
        """Where row `row`'s image comes from: its file, or "embedded bytes"."""
        try:
            raw = self.hf_dataset.with_format("arrow")[row]  # undecoded: the image column holds {bytes, path}
            path = (raw.column(IMAGE_COLUMN)[0].as_py() or {}).get("path")
        except Exception:  # noqa: BLE001 - the description is best effort, the error itself is what matters
            path = None
        return f"file {path!r}" if path else "embedded bytes"
