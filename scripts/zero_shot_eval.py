#!/usr/bin/env python
"""Zero-shot classification of a UniCL model by class-name prompts: top-1, top-5 and mean per-class recall.

    python scripts/zero_shot_eval.py MODEL --imagenet_val /path/to/val       # the paper's ImageNet-1K protocol
    python scripts/zero_shot_eval.py MODEL --wds DIR_OR_HUB_NAME              # one CLIP_benchmark webdataset
    python scripts/zero_shot_eval.py MODEL --benchmark datasets.txt --json results.json   # many, one table
    python scripts/zero_shot_eval.py MODEL --dataset DATASET [--split test] [--class_names a b c]
    python scripts/zero_shot_eval.py MODEL --embedded                         # the embedded animal silhouettes
    python scripts/zero_shot_eval.py OUT --backend onnxruntime [--int8] ...  # a folder of scripts/export_onnx.py

--imagenet_val: a validation folder of synset folders (n01440764/...) or of flat files with LOC_val_solution.csv,
scored over the 1000 classes with UniCL's class names and its 81 templates, as the original evaluation.
--wds: CLIP_benchmark's layout (DIR/test/*.tar with .webp/.png/.jpg + .cls, DIR/classnames.txt,
DIR/zeroshot_classification_templates.txt), a folder or a Hub name (clip-benchmark/wds_cars, or wds/cars).
--benchmark: a text file, one ImageNet folder, webdataset folder or Hub name per line (relative paths from the
file's folder, # comments); prints one Markdown table with the average over the datasets. Top-5 is n/a below 5
classes, as CLIP_benchmark reports it.

Class matrices are cached on disk (--cache_dir, default ~/.cache/unicl/class_embeddings), keyed by the text-side
weights, tokenizer, class names and templates: a second run does no text forward. Images are decoded in --workers
DataLoader processes; an unreadable image is skipped and named in the report.
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

SHOWN_SKIPPED = 20  # unreadable images listed on stderr per dataset; all of them go to --json


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved UniCL folder or Hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--imagenet_val", help="ImageNet-1K validation folder (synset folders or LOC_val_solution.csv)")
    source.add_argument("--wds", help="CLIP_benchmark webdataset: folder or Hub name")
    source.add_argument("--benchmark", help="text file listing datasets (ImageNet folders, webdataset folders or names)")
    source.add_argument("--dataset", help="image-label dataset: save_to_disk folder, imagefolder or Hub name")
    source.add_argument("--embedded", action="store_true", help="the embedded animal silhouettes (eval splits)")
    parser.add_argument("--split", default="test", help="split of --dataset, --wds and --benchmark's webdatasets")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--class_names", nargs="+", default=None, help="if the label column is not a ClassLabel")
    parser.add_argument("--templates", default=None,
                        help="'imagenet' (CLIP's 80), 'unicl' (UniCL's 81: '{}.' + CLIP's 80), 'single' ('a photo of "
                             "a {}.') or one template with {}; default: each dataset's own (81 for ImageNet, the "
                             "webdataset's file), 'imagenet' for --dataset / --embedded")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader processes decoding images (0: in the main process)")
    parser.add_argument("--cache_dir", default=None, help="class-matrix cache (default ~/.cache/unicl/class_embeddings)")
    parser.add_argument("--no_cache", action="store_true", help="build every class matrix, read and write no cache")
    parser.add_argument("--exact_original_preprocessing", action="store_true",
                        help="no EXIF rotation, alpha dropped instead of composited on white: the original's "
                             "Image.open(...).convert('RGB') exactly")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to this file")
    add_backend_flags(parser)
    add_threads_flag(parser)
    add_keep_freed_memory_flag(parser)
    return parser.parse_args(argv)


def resolve_templates(spec: str | None) -> tuple[str, ...] | None:
    from modeling_unicl.prompts import IMAGENET_TEMPLATES, SIMPLE_TEMPLATE, UNICL_IMAGENET_TEMPLATES

    named = {"imagenet": IMAGENET_TEMPLATES, "unicl": UNICL_IMAGENET_TEMPLATES, "single": (SIMPLE_TEMPLATE,)}
    if spec is None or spec in named:
        return None if spec is None else tuple(named[spec])
    if spec.count("{}") != 1:
        raise UsageError(f"--templates: {spec!r} is not 'imagenet', 'unicl', 'single' or a template with one '{{}}'.")
    return (spec,)


def check_numbers(args) -> None:
    if args.batch_size <= 0:
        raise UsageError(f"--batch_size must be positive, got {args.batch_size}.")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}.")


def load_processor(args):
    from modeling_unicl import UniCLProcessor

    processor = UniCLProcessor.from_pretrained(args.model)
    if args.exact_original_preprocessing:
        processor.image_processor.exact_original_preprocessing = True
    return processor


def load_model(args):
    """The model whose image and text features are evaluated (the one place that decides how it runs): PyTorch, or
    ONNX Runtime on an exported folder (--backend onnxruntime [--int8])."""
    return load_backend_model(args)


def class_matrix_cache(args, model, processor):
    if args.no_cache:
        return None
    from modeling_unicl.evaluation.class_cache import ClassEmbeddingCache

    return ClassEmbeddingCache(model, processor.tokenizer, args.cache_dir)


def open_sources(args, processor, templates) -> list:
    """Every dataset of the run, opened (and checked) before the model is loaded."""
    from modeling_unicl.evaluation.benchmark import imagenet_source, open_source, read_benchmark_list, wds_source

    image_processor = processor.image_processor
    if args.imagenet_val:
        return [imagenet_source(args.imagenet_val, image_processor, templates)]
    if args.wds:
        return [wds_source(args.wds, image_processor, args.split, templates)]
    return [open_source(spec, image_processor, args.split, templates) for spec in read_benchmark_list(args.benchmark)]


def report_skipped(name: str, skipped) -> None:
    if not skipped:
        return
    print(f"{name}: skipped {len(skipped)} unreadable image(s):", file=sys.stderr)
    for image, reason in skipped[:SHOWN_SKIPPED]:
        print(f"  {image}: {reason}", file=sys.stderr)
    if len(skipped) > SHOWN_SKIPPED:
        print(f"  ... and {len(skipped) - SHOWN_SKIPPED} more (all of them in --json)", file=sys.stderr)


def run_sources(args, model, processor, sources, cache) -> dict:
    from modeling_unicl.evaluation.benchmark import average_results, evaluate_source, results_table

    results = {}
    for source in sources:
        result = evaluate_source(model, processor, source, cache, args.batch_size, args.workers)
        report_skipped(source.name, result["skipped"])
        result["skipped"] = [{"name": image, "reason": reason} for image, reason in result["skipped"]]
        results[source.name if source.name not in results else f"{source.name} #{len(results) + 1}"] = result
    print(results_table(results))
    return {"results": results, "average": average_results(results)}


def run_image_label_datasets(args, model, processor, templates, cache, dataset=None) -> dict:
    """--dataset / --embedded: `datasets.Dataset`s with a label column (top-5 clipped to the number of classes)."""
    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot
    from modeling_unicl.utils.checks import validate_image_label_dataset

    if args.embedded:
        from modeling_unicl.data.embedded import build_embedded_datasets

        splits = build_embedded_datasets(image_size=int(model.config.vision_config.image_size)).eval_splits()
    else:
        splits = {args.dataset: dataset}
    results, rows = {}, []
    for name, split in splits.items():
        names = validate_image_label_dataset(split, args.image_column, args.label_column, args.class_names)
        embeddings = cache.class_embeddings(names, templates) if cache is not None else None
        scores = evaluate_zero_shot(
            model, processor, split, args.image_column, args.label_column, names, templates, args.batch_size,
            num_workers=args.workers, class_embeddings=embeddings,
        )
        report_skipped(name, scores["skipped"])
        results[name] = {**scores, "templates": len(templates)}
        rows.append([name, scores["num_samples"], scores["top1"], scores["top5"], scores["mean_per_class_recall"]])
    print(markdown_table(["dataset", "images", "top-1", "top-5", "mean per-class recall"], rows))
    return {"results": results}


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    check_backend_arguments(args)
    check_numbers(args)
    templates = resolve_templates(args.templates)
    image_label = args.dataset is not None or args.embedded
    if image_label:
        from modeling_unicl.prompts import IMAGENET_TEMPLATES

        templates = templates or tuple(IMAGENET_TEMPLATES)
    dataset = load_dataset_argument(args.dataset, args.split, "--dataset") if args.dataset else None
    processor = load_processor(args)
    sources = None if image_label else open_sources(args, processor, templates)
    apply_threads(args.threads)
    apply_keep_freed_memory(args)  # the arguments are checked: only the evaluation is left

    model = load_model(args)
    cache = class_matrix_cache(args, model, processor)
    if image_label:
        report = run_image_label_datasets(args, model, processor, templates, cache, dataset)
    else:
        report = run_sources(args, model, processor, sources, cache)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"model": args.model, **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
