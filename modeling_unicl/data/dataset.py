"""`UniCLTrainingDataset`: index -> (epoch, row) -> a decoded row -> a training example.

It only joins the pieces: `RowReader` (`sources`) reads the row, `ExampleMaker` (`examples`) makes the example.
The order of the indices is the sampler's (`sampling.UniCLSampler`).
"""

from __future__ import annotations

from typing import Sequence

import datasets
import torch

from .examples import ExampleMaker, training_augmentation
from .options import TrainingDataOptions
from .skipped import SkippedRows
from .sources import RowReader

__all__ = ["UniCLTrainingDataset"]


class UniCLTrainingDataset(torch.utils.data.Dataset):
    """Mixed image-label + image-text samples -> `{"pixel_values", "text", "labels"}`.

    Built by `build_training_dataset`. Index `k` means (epoch, row) = divmod(k, len(self)); plain indices
    0..len-1 are epoch 0 in storage order. `UniCLSampler(dataset, batch_size)` gives the order of the mixing mode
    (`UniCLTrainer` uses it automatically).

    Attributes:
        hf_dataset: the combined rows in the common schema (image-label rows first, except after "interleave"),
            decoded lazily on access.
        processor, class_names, options: what the dataset was built with (class_names: the global label space).
        num_label_rows, num_caption_rows: how many rows of each data type.
        skipped_rows: the unreadable rows replaced so far (`SkippedRows`: row -> description).
    """

    def __init__(
        self,
        hf_dataset: datasets.Dataset,
        *,
        processor,
        class_names: Sequence[str],
        num_label_rows: int,
        num_caption_rows: int,
        options: TrainingDataOptions,
    ):
        self.hf_dataset, self.processor, self.options = hf_dataset, processor, options
        self.class_names = list(class_names)
        self.num_label_rows, self.num_caption_rows = int(num_label_rows), int(num_caption_rows)
        self.skipped_rows = SkippedRows()
        self.reader = RowReader(hf_dataset, self.skipped_rows, strict=options.strict)
        augmentation = training_augmentation(processor.image_processor, options)
        self.examples = ExampleMaker(
            processor.image_processor, class_names, options.templates, options.seed, augmentation
        )

    def __len__(self) -> int:
        return len(self.hf_dataset)

    def __getitem__(self, index) -> dict:
        index = int(index)
        if index < 0:
            raise IndexError(f"Negative index {index}; indices encode (epoch, row) as epoch * len + row.")
        epoch, row = divmod(index, len(self))
        return self.examples(self.reader.read(row), epoch)

    def __repr__(self) -> str:
        options = self.options
        return (
            f"{type(self).__name__}(rows={len(self)}, image_label_rows={self.num_label_rows}, "
            f"image_text_rows={self.num_caption_rows}, classes={len(self.class_names)}, mixing={options.mixing!r}, "
            f"train={options.train}, seed={options.seed}, strict={options.strict})"
        )
