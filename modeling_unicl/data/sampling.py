"""`UniCLSampler`: the order of every epoch, and how the data types share the batches.

Mixing (several sources -> one training stream)
    * `mixing="batch"` (default): every batch holds both data types, `label_fraction` of it (default 0.5, rounded)
      image-label samples and the rest image-text samples. The sampler builds the batches in blocks of the
      per-device batch size, so under DDP (accelerate hands whole blocks to ranks) every rank's batch has the ratio.
      Each type is walked through in seeded permutations that continue across epochs (a smaller source is cycled, a
      larger one is finished in later epochs). An epoch is `len(dataset)` = the total number of rows of all sources.
    * `mixing="interleave"`: the dataset's rows come from `datasets.interleave_datasets` over all sources (see
      `build_training_dataset`); the sampler shuffles them per epoch: batches have the proportions in expectation
      only.
    * `mixing="concat"`: the plain union, shuffled per epoch.
    The paper trains one model on the union of image-label and image-text data and mixes both in its batches; its
    released code covers ImageNet-only training and we did not find the exact per-batch composition there, so the
    per-batch ratio of 0.5 is our choice, not a reproduction of a documented recipe.

Determinism
    The sampler yields `epoch * len(dataset) + row`, which the dataset reads as (epoch, row). The order of an epoch is
    a function of (seed, epoch) only, never of ranks or workers, so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

__all__ = ["UniCLSampler", "label_samples_per_batch"]

_STREAM_KEY = 1_000_003  # seeds the per-type permutations apart from the whole-epoch permutations (keyed by epoch)


def label_samples_per_batch(label_fraction: float, batch_size: int) -> int:
    """Image-label samples in a full batch of "batch" mixing: `label_fraction` of it, rounded, and at least one of
    each data type when the batch has room for both (the streaming dataset uses the same rule)."""
    per_batch = int(round(label_fraction * batch_size))
    if batch_size >= 2:
        per_batch = min(max(per_batch, 1), batch_size - 1)  # both types in every batch
    return per_batch


class UniCLSampler(torch.utils.data.Sampler):
    """Yields `epoch * len(dataset) + row` for the rows of `epoch_order(epoch)` (see the module docstring).

    Consecutive blocks of `batch_size` indices are the batches ("batch" mixing puts both data types in each).
    `set_epoch` is called at every epoch start (by the Trainer, accelerate and `UniCLTrainer`'s callback).

    Args:
        dataset: a `UniCLTrainingDataset` (its row counts and `options.mixing`, `label_fraction`, `seed` are read).
        batch_size: the per-device batch size.
        shuffle: False yields the rows of every epoch in storage order.
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        self.length = len(dataset)
        self.num_label_rows, self.num_caption_rows = dataset.num_label_rows, dataset.num_caption_rows
        options = dataset.options
        self.mixing, self.label_fraction, self.seed = options.mixing, options.label_fraction, options.seed
        self.batch_size, self.shuffle, self.epoch = int(batch_size), bool(shuffle), 0
        self._permutations: OrderedDict = OrderedDict()  # the last few, for consecutive epochs

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        rows = self.epoch_order(self.epoch) if self.shuffle else np.arange(self.length)
        return iter((self.epoch * self.length + rows).tolist())

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The rows of the dataset in the order of `epoch`, `len(dataset)` of them."""
        if self.mixing != "batch" or self.num_label_rows == 0 or self.num_caption_rows == 0:
            return self._permutation((int(epoch),), self.length).copy()
        return self._mixed_batches(int(epoch))

    def label_slots(self) -> tuple[int, int]:
        """(image-label samples per full batch, image-label samples in the last, partial batch) in "batch" mode."""
        per_batch = label_samples_per_batch(self.label_fraction, self.batch_size)
        remainder = self.length % self.batch_size
        last = min(max(int(round(self.label_fraction * remainder)), 0), remainder)
        return per_batch, last

    def _mixed_batches(self, epoch: int) -> np.ndarray:
        """"batch" mixing: every full batch is its image-label rows followed by its image-text rows; the last,
        partial batch takes what is left of both streams."""
        per_label, last = self.label_slots()
        per_caption = self.batch_size - per_label
        num_full = self.length // self.batch_size
        label_draws = num_full * per_label + last
        caption_draws = self.length - label_draws
        labels = self._stream(0, self.num_label_rows, epoch * label_draws, label_draws)
        captions = self.num_label_rows + self._stream(1, self.num_caption_rows, epoch * caption_draws, caption_draws)
        full = np.concatenate(
            [
                labels[: num_full * per_label].reshape(num_full, per_label),
                captions[: num_full * per_caption].reshape(num_full, per_caption),
            ],
            axis=1,
        ).reshape(-1)
        return np.concatenate([full, labels[num_full * per_label :], captions[num_full * per_caption :]])

    def _stream(self, group: int, size: int, start: int, count: int) -> np.ndarray:
        """Positions start..start+count-1 of the endless walk through one data type's rows in seeded permutations."""
        positions = np.arange(start, start + count, dtype=np.int64)
        out = np.empty(count, dtype=np.int64)
        cycles = positions // size
        for cycle in np.unique(cycles):
            mask = cycles == cycle
            out[mask] = self._permutation((_STREAM_KEY, group, int(cycle)), size)[positions[mask] % size]
        return out

    def _permutation(self, key: tuple, size: int) -> np.ndarray:
        if key not in self._permutations:
            self._permutations[key] = np.random.default_rng([self.seed, *key]).permutation(size)
            while len(self._permutations) > 4:
                self._permutations.popitem(last=False)
        return self._permutations[key]
