#!/usr/bin/env python
"""Linear probe of a UniCL model: logistic regression on frozen image embeddings, L2 strength picked on a validation
split, top-1 on the test split.

    python scripts/linear_probe.py MODEL --dataset DATASET [--train_split train] [--test_split test]
        [--validation_fraction 0.2] [--image_column image] [--label_column label] [--json out.json]
    python scripts/linear_probe.py MODEL --wds DIR_OR_HUB_NAME [--train_split train] [--test_split test]
    python scripts/linear_probe.py MODEL --embedded      # the embedded animal silhouettes, all 10 classes
    python scripts/linear_probe.py OUT --backend onnxruntime [--int8] ...   # a folder of scripts/export_onnx.py

--wds reads a CLIP_benchmark webdataset (DIR/train/*.tar and DIR/test/*.tar with .webp/.png/.jpg + .cls, and
DIR/classnames.txt), a folder or a Hub name (clip-benchmark/wds_cars, or wds/cars); images are decoded in --workers
DataLoader processes and unreadable ones skipped and named. The validation split is a seeded random
`--validation_fraction` of the train split (or `--validation_split` of a --dataset).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cli_utils import (
    UsageError,
    add_keep_freed_memory_flag,
    add_threads_flag,
    apply_keep_freed_memory,
    apply_threads,
    exit_on_usage_error,
    load_dataset_argument,
    markdown_table,
)
from inference_backend import add_backend_flags, check_backend_arguments, load_backend_model


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved UniCL folder or Hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="image-label dataset: save_to_disk folder, imagefolder or Hub name")
    source.add_argument("--wds", help="CLIP_benchmark webdataset with train and test splits: folder or Hub name")
    source.add_argument("--embedded", action="store_true", help="the embedded animal silhouettes")
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--validation_split", default=None)
    parser.add_argument("--test_split", default="test")
    parser.add_argument("--validation_fraction", type=float, default=0.2)
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--l2", type=float, nargs="+", default=None, help="regularisation strengths to sweep")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader processes decoding --wds images (0: in the main process)")
    parser.add_argument("--json", dest="json_path", default=None)
    add_backend_flags(parser)
    add_threads_flag(parser)
    add_keep_freed_memory_flag(parser)
    return parser.parse_args(argv)


def run_linear_probe(model, processor, train, validation, test, image_column="image", label_column="label",
                     l2_grid=None, batch_size=64):
    """Embeds the three splits with the frozen model and fits the probe; returns a `LinearProbeResult`."""
    import torch

    from modeling_unicl.evaluation.linear_probe import DEFAULT_L2_GRID, extract_image_embeddings, linear_probe

    def embed(split):
        features = extract_image_embeddings(model, processor, split, image_column, batch_size)
        return features, torch.tensor(split[label_column], dtype=torch.long)

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = embed(train), embed(validation), embed(test)
    num_classes = train.features[label_column].num_classes if hasattr(train.features[label_column], "num_classes") else None
    return linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, num_classes=num_classes,
                        l2_grid=l2_grid or DEFAULT_L2_GRID)


def load_model(args):
    """The model whose image features are probed (the one place that decides how it runs): PyTorch, or ONNX Runtime
    on an exported folder (--backend onnxruntime [--int8])."""
    return load_backend_model(args)


def probe_image_label_datasets(args, model, processor, train_full, test):
    """--dataset / --embedded: `datasets.Dataset` splits; returns the probe result and the test images' count."""
    if args.validation_split and not args.embedded:
        train, validation = train_full, load_dataset_argument(args.dataset, args.validation_split, "--dataset")
    else:
        parts = train_full.train_test_split(test_size=args.validation_fraction, seed=args.seed)
        train, validation = parts["train"], parts["test"]
    result = run_linear_probe(model, processor, train, validation, test, args.image_column, args.label_column,
                              args.l2, args.batch_size)
    return result, len(test)


def embed_wds_split(args, model, processor, wds):
    from modeling_unicl.evaluation.clip_benchmark import WebDatasetShards
    from modeling_unicl.evaluation.linear_probe import embed_batches
    from modeling_unicl.evaluation.loading import iterate_with_progress, make_loader

    loader = make_loader(WebDatasetShards(wds, processor.image_processor), args.batch_size, args.workers)
    features, labels, skipped = embed_batches(model, iterate_with_progress(loader, f"{wds.name} {wds.split}"))
    for image, reason in skipped:
        print(f"skipped unreadable image {image}: {reason}", file=sys.stderr)
    return features, labels


def probe_wds(args, model, processor, train_wds, test_wds):
    """--wds: embeds the two splits through DataLoader workers; returns the probe result and the test images' count."""
    from modeling_unicl.evaluation.linear_probe import DEFAULT_L2_GRID, linear_probe, split_validation

    train_x, train_y = embed_wds_split(args, model, processor, train_wds)
    test_x, test_y = embed_wds_split(args, model, processor, test_wds)
    train_x, train_y, val_x, val_y = split_validation(train_x, train_y, args.validation_fraction, args.seed)
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, num_classes=len(train_wds.class_names),
                          l2_grid=args.l2 or DEFAULT_L2_GRID)
    return result, len(test_y)


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    check_backend_arguments(args)
    if not 0.0 < args.validation_fraction < 1.0:
        raise UsageError(f"--validation_fraction must be between 0 and 1, got {args.validation_fraction}.")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}.")
    from modeling_unicl import UniCLProcessor

    if args.wds:
        from modeling_unicl.evaluation.clip_benchmark import resolve_wds

        train_wds, test_wds = resolve_wds(args.wds, args.train_split), resolve_wds(args.wds, args.test_split)
    elif not args.embedded:
        train_full = load_dataset_argument(args.dataset, args.train_split, "--dataset")
        test = load_dataset_argument(args.dataset, args.test_split, "--dataset")
    processor = UniCLProcessor.from_pretrained(args.model)
    apply_threads(args.threads)
    apply_keep_freed_memory(args)  # the arguments are checked: only the embedding work is left
    model = load_model(args)
    if args.wds:
        result, num_test = probe_wds(args, model, processor, train_wds, test_wds)
    else:
        if args.embedded:
            from modeling_unicl.data.embedded import build_embedded_datasets

            data = build_embedded_datasets(seed=args.seed, image_size=int(model.config.vision_config.image_size))
            # probe on all 10 classes: labelled images of the seen classes plus centred eval-style images
            split = data.eval_all.train_test_split(test_size=0.5, seed=args.seed, stratify_by_column=args.label_column)
            train_full, test = split["train"], split["test"]
        result, num_test = probe_image_label_datasets(args, model, processor, train_full, test)
    rows = [[f"{l2:g}", acc] for l2, acc in result.sweep.items()]
    print(markdown_table(["L2", "validation top-1"], rows))
    print(f"\nbest L2 {result.l2:g}: validation top-1 {result.validation_accuracy:.4f}, "
          f"test top-1 {result.test_accuracy:.4f} ({num_test} images)")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "model": args.model, "l2": result.l2, "validation_top1": result.validation_accuracy,
            "test_top1": result.test_accuracy, "test_images": num_test, "sweep": result.sweep,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
