"""`StreamingTrainingDataset`: image-label and image-text shards (or streamed `datasets`) -> an endless stream of
training examples, with exact per-batch mixing, sharded by rank and dataloader worker, resumable exactly.

Readers
    Every (rank, dataloader worker) pair is one reader slot, `slot = rank * num_workers + worker` of
    `world_size * num_workers`. Each data type is read as its own stream: in every epoch its shards are shuffled
    from (seed, data type, epoch) and dealt to the slots (`shards.worker_shards`), so within an epoch every sample is
    read by exactly one slot, once. A slot that has read its share starts its next epoch: the stream never ends
    (a `Trainer` with an iterable dataset runs `max_steps` steps), and no rank ever waits for another's last batch.

Shuffling within a slot: a deterministic window shuffle
    A slot reads its share in windows of `shuffle_window` consecutive samples and yields each window in a
    permutation seeded by (seed, data type, slot, epoch, window). It mixes samples as a shuffle buffer of that size
    does, but its state is a position, not a buffer of images: (epoch, shard, sample offset of the window's start,
    window, samples taken), so a checkpoint restores it exactly by re-reading one window's raw bytes.

Mixing: exact per batch
    A slot yields blocks of `batch_size` examples: `label_samples_per_batch(label_fraction, batch_size)` image-label
    examples (the same rounding as `UniCLSampler`), then image-text examples. The DataLoader batches `batch_size`
    consecutive examples of one worker, so every per-device batch is one block.

Examples and bad data
    A sample's template, synonym and augmentation come from `examples.sample_rng(seed, epoch, uid)` with the
    sample's 63-bit uid (`shards.sample_uid`) and its stream's epoch: nothing depends on global random state.
    A sample that cannot be used (no image, no caption, no or an out-of-range class id, undecodable image bytes) is
    replaced by the next sample of its stream; it, and a truncated or unreadable shard, is recorded once per
    process in `skipped_rows` (key `"{shard}#{sample key}"`, with its kind), logged with shard and key, and
    reported by `UniCLTrainer` at the end of training. With `strict=True` the first one raises a ValueError.

Resuming
    The dataset implements the `state_dict()` / `load_state_dict()` protocol of torchdata's `StatefulDataLoader`,
    which snapshots each worker's state with every batch; `UniCLTrainer` saves the loader's state in every
    checkpoint (`training.callbacks.StreamingStateCallback`) and restores it on resume.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .class_names import ClassNames, draw_synonym
from .examples import ExampleMaker, training_augmentation
from .options import TrainingDataOptions
from .sampling import label_samples_per_batch
from .shards import (
    BAD_CLASS_ID,
    UNREADABLE_IMAGE,
    RawSample,
    SampleProblem,
    ShardReadError,
    sample_uid,
    worker_shards,
)
from .skipped import SkippedRows
from .sources import UNREADABLE_IMAGE_ERRORS

logger = logging.getLogger(__name__)

__all__ = ["StreamPosition", "StreamingTrainingDataset"]

LABEL_GROUP, CAPTION_GROUP = 0, 1  # the data types' streams, as seeds and state keys know them
_WINDOW_KEY = 3_000_017  # seeds the window permutations apart from every other generator of the run
MAX_EMPTY_EPOCHS = 3  # epochs in a row in which a reader finds no readable sample: the data is broken, stop
# torchdata 0.11's StatefulDataLoader calls torch.set_vital, deprecated (and a no-op) since torch 2.9: one warning per
# epoch iterator that says nothing about the data
warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)


@dataclass
class StreamPosition:
    """Where one slot's stream of one data type stands: in `epoch`, the window that starts at sample `offset` (of the
    slot's share of the shard) of the `shard`-th shard dealt to the slot, numbered `window` in the epoch, of which
    `taken` samples were yielded."""

    epoch: int = 0
    shard: int = 0
    offset: int = 0
    window: int = 0
    taken: int = 0


class SampleStream:
    """One data type's raw samples for one reader slot, epoch after epoch: yields (epoch, shard source, shard index,
    raw sample). `position` is always the state after the last sample yielded."""

    def __init__(self, sources: Sequence, group: int, slot: int, num_slots: int, seed: int, window: int,
                 position: StreamPosition, on_shard_error: Callable[[ShardReadError], None]):
        self.shards = [(source, index) for source in sources for index in range(source.num_shards)]
        self.group, self.slot, self.num_slots, self.seed, self.window = group, slot, num_slots, seed, window
        self.position, self.on_shard_error = position, on_shard_error
        self._reader = None  # (epoch, shard position, samples read of its share, iterator): the shard being read

    def __iter__(self) -> Iterator[tuple]:
        start = self.position
        read_in_epoch = 0 if (start.shard, start.offset, start.window) == (0, 0, 0) else None
        empty_epochs = 0
        while True:
            dealt = worker_shards(len(self.shards), self.slot, self.num_slots, self.seed, self.group, start.epoch)
            items, end = self._read_window(start.epoch, dealt, start.shard, start.offset)
            if not items:  # the slot's share of this epoch is read
                # a share of unreadable shards: the next epoch deals other shards; several in a row mean broken data
                empty_epochs = empty_epochs + 1 if read_in_epoch == 0 else 0
                if empty_epochs >= MAX_EMPTY_EPOCHS:
                    kind = "image-label" if self.group == LABEL_GROUP else "image-text"
                    raise RuntimeError(
                        f"Reader slot {self.slot} of {self.num_slots} found no readable {kind} sample in its shards "
                        f"of {empty_epochs} epochs in a row (up to epoch {start.epoch}): the data is broken."
                    )
                start, read_in_epoch = StreamPosition(epoch=start.epoch + 1), 0
                continue
            if read_in_epoch is not None:
                read_in_epoch += len(items)
            order = np.random.default_rng([self.seed, _WINDOW_KEY, self.group, self.slot, start.epoch, start.window])
            order = order.permutation(len(items))
            for taken in range(start.taken, len(items)):
                self.position = dataclasses.replace(start, taken=taken + 1)
                yield (start.epoch, *items[order[taken]])
            start = StreamPosition(start.epoch, end[0], end[1], start.window + 1, 0)

    def _read_window(self, epoch: int, dealt: list, shard: int, offset: int) -> tuple[list, tuple[int, int]]:
        """Up to `window` samples from sample `offset` of the `shard`-th dealt shard on, and where they end."""
        items: list = []
        while len(items) < self.window and shard < len(dealt):
            iterator = self._shard_iterator(epoch, dealt, shard, offset)
            source, index = self.shards[dealt[shard][0]]
            for raw in iterator:
                items.append((source, index, raw))
                offset += 1
                if len(items) == self.window:
                    self._reader = (epoch, shard, offset, iterator)  # the next window goes on from here
                    return items, (shard, offset)
            shard, offset = shard + 1, 0
        self._reader = None
        return items, (shard, offset)

    def _shard_iterator(self, epoch: int, dealt: list, shard: int, offset: int) -> Iterator[dict]:
        """The samples of the slot's share of the `shard`-th dealt shard from `offset` on: the open one when it is
        there, else the shard re-opened and the first `offset` samples passed over undecoded."""
        if self._reader is not None and self._reader[:3] == (epoch, shard, offset):
            return self._reader[3]
        index, stride, phase = dealt[shard]
        source, shard_index = self.shards[index]

        def share():
            try:
                for number, raw in enumerate(source.samples(shard_index)):
                    if number % stride == phase:
                        yield raw
            except ShardReadError as error:
                self.on_shard_error(error)

        iterator = share()
        for _ in range(offset):
            if next(iterator, None) is None:
                break
        return iterator


class StreamingExampleMaker(ExampleMaker):
    """`ExampleMaker` whose class prompts use one synonym of the class, drawn after the template
    (`ClassNames.prompt_name`). The synonym is drawn for every sample, so all samples' draws have one layout."""

    def __init__(self, image_processor, class_names: ClassNames | None, templates, seed, augmentation=None):
        display_names = class_names.display_names if class_names is not None else []
        super().__init__(image_processor, display_names, templates, seed, augmentation)
        self.class_synonyms = class_names

    def text(self, record: dict, rng: np.random.Generator) -> str:
        template = self.templates[int(rng.integers(len(self.templates)))]
        synonym_draw = draw_synonym(rng)  # made for captions too
        if record["caption"] is not None:
            return record["caption"]
        return template.format(self.class_synonyms.prompt_name(record["label"], synonym_draw))


class StreamingTrainingDataset(torch.utils.data.IterableDataset):
    """Image-label and image-text shards -> an endless stream of `{"pixel_values", "text", "labels"}` in blocks of
    one per-device batch (see the module docstring). Built by `build_streaming_dataset`.

    Before iterating, `configure(batch_size, rank, world_size)` sets the batch layout and this process's rank
    (`UniCLTrainer` does it); the DataLoader must batch `batch_size` examples. Iterate it with torchdata's
    `StatefulDataLoader` (`make_loader`) to save and restore its position exactly.

    Attributes:
        label_sources, caption_sources: the shard sources of each data type (`shards.TarShards` / `HubShards`).
        processor, class_names, options: what the dataset was built with (`class_names`: one name per class id).
        shuffle_window: samples per window of the within-slot shuffle.
        num_samples: samples of all sources when manifests give them (`make_shards.py` writes one), else None.
        skipped_rows: unusable samples and shards met so far (`SkippedRows`: "{shard}#{key}" -> description).
    """

    def __init__(
        self,
        label_sources: Sequence = (),
        caption_sources: Sequence = (),
        *,
        processor,
        class_names: ClassNames | None,
        options: TrainingDataOptions,
        shuffle_window: int = 1000,
        caption_labeler: Callable[[str], int | None] | None = None,
        num_samples: int | None = None,
    ):
        super().__init__()
        self.label_sources, self.caption_sources = list(label_sources), list(caption_sources)
        self.processor, self.options, self.caption_labeler = processor, options, caption_labeler
        self.class_synonyms = class_names
        self.class_names = class_names.display_names if class_names is not None else []
        self.num_classes = len(class_names) if class_names is not None else 0
        self.shuffle_window, self.num_samples = int(shuffle_window), num_samples
        self.skipped_rows = SkippedRows()
        augmentation = training_augmentation(processor.image_processor, options)
        self.examples = StreamingExampleMaker(
            processor.image_processor, self.class_synonyms, options.templates, options.seed, augmentation
        )
        self.batch_size, self.rank, self.world_size = None, 0, 1
        self._start: dict | None = None  # the state to start the next iteration from (load_state_dict)
        self._streams: dict[int, SampleStream] = {}
        self._layout: dict | None = None

    # ------------------------------------------------------------------------------------------- layout
    def configure(self, batch_size: int, rank: int = 0, world_size: int = 1) -> StreamingTrainingDataset:
        """Sets the per-device batch size (a block of the stream), this process's rank and the number of ranks."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}.")
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        return self

    def label_slots(self) -> tuple[int, int]:
        """(image-label, image-text) examples per batch."""
        if not self.caption_sources:
            return self.batch_size, 0
        if not self.label_sources:
            return 0, self.batch_size
        per_label = label_samples_per_batch(self.options.label_fraction, self.batch_size)
        return per_label, self.batch_size - per_label

    def make_loader(self, collate_fn, num_workers: int = 0, **loader_kwargs):
        """A torchdata `StatefulDataLoader` over this dataset in blocks of `batch_size` (call `configure` first)."""
        from torchdata.stateful_dataloader import StatefulDataLoader

        if self.batch_size is None:
            raise ValueError("Call dataset.configure(batch_size, rank, world_size) before making its loader.")
        # A generator of its own: every iter() of a loader draws its workers' base seed, from the global torch RNG
        # otherwise. A resumed run makes one iter() more than the run it continues, and the model's own draws (drop
        # path) would shift by one against the uninterrupted run.
        loader_kwargs.setdefault("generator", torch.Generator().manual_seed(self.options.seed))
        return StatefulDataLoader(
            self, batch_size=self.batch_size, collate_fn=collate_fn, num_workers=num_workers, **loader_kwargs
        )

    # -------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The position of every stream of this reader slot (torchdata's `Stateful` protocol, called per worker)."""
        if self._layout is None:  # not iterating yet: where the next iteration starts
            return dict(self._start) if self._start is not None else {}
        return {
            **self._layout,
            "streams": {str(group): dataclasses.asdict(s.position) for group, s in self._streams.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Start the next iteration where `state` (from `state_dict` of the same reader slot) left off."""
        self._start = dict(state) if state else None

    def _start_positions(self, layout: dict) -> dict[int, StreamPosition]:
        if not self._start:
            return {}
        saved = {key: self._start.get(key) for key in layout}
        if saved != layout:
            raise ValueError(
                f"The saved data position was made with {saved}, this run has {layout}: resuming exactly needs the "
                "same per-device batch size, number of ranks and dataloader workers per rank."
            )
        return {int(group): StreamPosition(**position) for group, position in self._start["streams"].items()}

    # ---------------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[dict]:
        if self.batch_size is None:
            raise ValueError("Call dataset.configure(batch_size, rank, world_size) before iterating it.")
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        slot, num_slots = self.rank * num_workers + worker_id, self.world_size * num_workers
        layout = {"slot": slot, "num_slots": num_slots, "batch_size": self.batch_size}
        positions = self._start_positions(layout)
        per_label, per_caption = self.label_slots()
        self._streams, samples = {}, {}
        for group, sources, count in ((LABEL_GROUP, self.label_sources, per_label),
                                      (CAPTION_GROUP, self.caption_sources, per_caption)):
            if count:
                stream = SampleStream(sources, group, slot, num_slots, self.options.seed, self.shuffle_window,
                                      positions.get(group, StreamPosition()), self._record_shard_error)
                self._streams[group], samples[group] = stream, iter(stream)
        self._layout = layout
        while True:
            for group, count in ((LABEL_GROUP, per_label), (CAPTION_GROUP, per_caption)):
                for _ in range(count):
                    yield self._next_example(samples[group], group)

    def _next_example(self, samples: Iterator[tuple], group: int) -> dict:
        """The example of the next usable sample of a stream (unusable ones are recorded and passed over)."""
        for epoch, source, shard_index, raw in samples:
            sample = source.parse(shard_index, raw)
            if sample.problem is None and group == LABEL_GROUP and not 0 <= sample.class_id < self.num_classes:
                sample.problem = SampleProblem(
                    BAD_CLASS_ID, f"class id {sample.class_id} is outside the {self.num_classes} classes"
                )
            if sample.problem is not None:
                self._record_sample_problem(sample, sample.problem)
                continue
            uid = sample_uid(sample.shard, sample.key)
            record = {"image": sample.image, "caption": sample.caption, "label": sample.class_id, "uid": uid}
            if group == CAPTION_GROUP:
                linked = self.caption_labeler(sample.caption) if self.caption_labeler is not None else None
                record["label"] = -(1 + uid) if linked is None else int(linked)
            try:
                return self.examples(record, epoch)
            except UNREADABLE_IMAGE_ERRORS as error:
                self._record_sample_problem(sample, SampleProblem(UNREADABLE_IMAGE, f"{type(error).__name__}: {error}"))
        raise AssertionError("a sample stream never ends")

    # ------------------------------------------------------------------------------------------ problems
    def _record_sample_problem(self, sample: RawSample, problem: SampleProblem) -> None:
        self._record(f"{sample.shard}#{sample.key}", problem.kind, f"{problem.kind}: {problem}",
                     f"sample {sample.key!r} of shard {sample.shard}")

    def _record_shard_error(self, error: ShardReadError) -> None:
        what = f"shard {error.shard}" + (f" after {error.samples_read} sample(s)" if error.samples_read else "")
        self._record(error.shard, error.kind, f"{error.kind}: {type(error.error).__name__}: {error.error}", what)

    def _record(self, key: str, kind: str, description: str, what: str) -> None:
        if self.options.strict:
            raise ValueError(
                f"Unusable training data: {what} ({description}). Fix or drop it, or train without strict=True "
                "(--strict_data) to skip such samples."
            )
        if self.skipped_rows.add(key, description, kind=kind):
            logger.warning(f"Skipping {what}: {description}.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_label_shards={sum(s.num_shards for s in self.label_sources)}, "
            f"image_text_shards={sum(s.num_shards for s in self.caption_sources)}, classes={self.num_classes}, "
            f"label_fraction={self.options.label_fraction}, shuffle_window={self.shuffle_window}, "
            f"seed={self.options.seed}, strict={self.options.strict})"
        )
