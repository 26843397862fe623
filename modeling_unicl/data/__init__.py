"""Training data for UniCL: image-label and image-text datasets -> one stream of (pixel_values, text, label).

One module per job:

    options.py   TrainingDataOptions: every setting of the builder, validated
    sources.py   datasets -> one schema; the label space (class ids >= 0, image-text ids < 0); reading rows, with
                 the unreadable-image fallback
    skipped.py   SkippedRows: the rows that fallback replaced, collected from dataloader workers too
    examples.py  one row -> one example: class prompt or caption, random resized crop + flip, normalisation
    sampling.py  UniCLSampler: the order of every epoch and the batch / interleave / concat mixing
    dataset.py   UniCLTrainingDataset: index -> (epoch, row) -> example
    collator.py  UniCLCollator: examples -> a batch for UniCLModel
    builder.py   build_training_dataset: validates the datasets and puts the pieces together
    embedded.py  the embedded default data (animal silhouettes)

Streaming (webdataset shards, `datasets` streamed with `streaming=True`):

    shards.py             shard patterns (brace ranges, fsspec URLs), reading tars with webdataset, sample ids,
                          which reader slot reads which shard in an epoch
    class_names.py        the class-name file (line i = class id i; synonyms)
    streaming.py          StreamingTrainingDataset: exact per-batch mixing, sharded by rank and worker, resumable
    streaming_builder.py  build_streaming_dataset: checks everything checkable before training
    shard_writing.py      write_shards: samples -> size-bounded shards + classes.txt + manifest.json

Determinism: index `k` of the dataset stands for (epoch, row) = divmod(k, len(dataset)); a sample's template and
augmentation are drawn from a generator seeded with (seed, epoch, uid), the order of an epoch from (seed, epoch).
Nothing depends on global random state, worker ids or ranks, so a resumed run sees exactly the same texts, crops and
batches.

The names below are imported on first use, so that `import modeling_unicl.data.embedded` stays light.
"""

import importlib

_EXPORTS = {
    "ImageLabelSource": ".sources",
    "ImageTextSource": ".sources",
    "build_label_space": ".sources",
    "SkippedRows": ".skipped",
    "MIXING_MODES": ".options",
    "TrainingDataOptions": ".options",
    "RandomResizedCropAndFlip": ".examples",
    "sample_rng": ".examples",
    "UniCLSampler": ".sampling",
    "UniCLTrainingDataset": ".dataset",
    "UniCLCollator": ".collator",
    "build_training_dataset": ".builder",
    "ClassNames": ".class_names",
    "read_class_names_file": ".class_names",
    "HubShards": ".shards",
    "TarShards": ".shards",
    "expand_shard_patterns": ".shards",
    "sample_uid": ".shards",
    "StreamingTrainingDataset": ".streaming",
    "build_streaming_dataset": ".streaming_builder",
    "write_shards": ".shard_writing",
    # shared with the rest of the package, re-exported for the data API
    "UnreadableImageError": "..processing_unicl",
    "load_image": "..processing_unicl",
    "to_rgb": "..processing_unicl",
    "resolve_class_names": "..utils.checks",
    "validate_image_label_dataset": "..utils.checks",
    "validate_image_text_dataset": "..utils.checks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
