"""Evaluation images as torch datasets, decoded and preprocessed in DataLoader workers, and the loader that batches
them with a progress bar.

An example is the image processor's pixel values of one image, its label and a name (file path, `shard:key` or
row) for reports. An image that cannot be read becomes a skipped example, named with the reason, instead of
stopping a run over 20 datasets; a problem of the dataset itself (a label that is not a class) is carried to the
main process as `fatal`, where the evaluation stops with a ValueError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..processing_unicl import UnreadableImageError

__all__ = [
    "DatasetRows",
    "ExampleBatch",
    "ImageFiles",
    "collate_examples",
    "iterate_with_progress",
    "make_loader",
    "preprocess_example",
]


def preprocess_example(image_processor, image, label: int, name: str) -> dict:
    """One image (anything `load_image` reads: path, bytes, PIL image) -> an example dict; never raises for an
    unreadable image (the dict then has `error` instead of `pixel_values`)."""
    try:
        pixel_values = image_processor(image, return_tensors="pt")["pixel_values"][0]
    except UnreadableImageError as error:
        return {"name": name, "label": label, "error": str(error)}
    return {"name": name, "label": label, "pixel_values": pixel_values}


@dataclass
class ExampleBatch:
    pixel_values: torch.Tensor  # (n, 3, H, W), the readable images
    labels: torch.Tensor  # (n,)
    names: list[str]  # of the readable images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason) of the unreadable ones
    fatal: list[str] = field(default_factory=list)  # problems of the dataset itself

    def __len__(self) -> int:
        return len(self.names) + len(self.skipped)


def collate_examples(examples: Sequence[dict]) -> ExampleBatch:
    good = [example for example in examples if "pixel_values" in example]
    return ExampleBatch(
        pixel_values=torch.stack([example["pixel_values"] for example in good]) if good else torch.empty(0),
        labels=torch.tensor([example["label"] for example in good], dtype=torch.long),
        names=[example["name"] for example in good],
        skipped=[(example["name"], example["error"]) for example in examples if "error" in example],
        fatal=[example["fatal"] for example in examples if "fatal" in example],
    )


class ImageFiles(Dataset):
    """Image files with their labels (an ImageNet validation folder)."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], image_processor):
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels.")
        self.files, self.labels, self.image_processor = [str(f) for f in files], list(labels), image_processor

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        return preprocess_example(self.image_processor, self.files[index], self.labels[index], self.files[index])


class DatasetRows(Dataset):
    """The image and label columns of a `datasets.Dataset`. Images are read undecoded and decoded in the worker, so a
    corrupt one is skipped and named (its path when the dataset has one, else its row)."""

    def __init__(self, dataset, image_column: str, label_column: str, image_processor):
        import datasets

        rows = dataset.select_columns([image_column, label_column]).with_format(None)
        if isinstance(rows.features[image_column], datasets.Image):
            rows = rows.cast_column(image_column, datasets.Image(decode=False))
        self.rows, self.image_column, self.label_column = rows, image_column, label_column
        self.image_processor = image_processor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        image = row[self.image_column]
        path = image.get("path") if isinstance(image, dict) else image if isinstance(image, str) else None
        return preprocess_example(self.image_processor, image, int(row[self.label_column]), path or f"row {index}")


def make_loader(dataset, batch_size: int, workers: int) -> DataLoader:
    """Batches of `ExampleBatch` in dataset order, decoded in `workers` processes (0: in this process)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}.")
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_examples)


def iterate_with_progress(loader: DataLoader, description: str) -> Iterator[ExampleBatch]:
    """The loader's batches with a tqdm bar counted in images (shown on a terminal only); stops with a ValueError
    at the first batch that carries a problem of the dataset itself."""
    from tqdm.auto import tqdm

    dataset = loader.dataset
    total = len(dataset) if hasattr(dataset, "__len__") else None
    with tqdm(total=total, desc=description, unit="img", disable=None) as bar:
        for batch in loader:
            if batch.fatal:
                raise ValueError(batch.fatal[0])
            bar.update(len(batch))
            yield batch
