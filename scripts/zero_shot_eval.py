#!/usr/bin/env python
"""Zero-shot top-1 / top-5 of a UniCL model on an image-label dataset, by class-name prompts.

    python scripts/zero_shot_eval.py MODEL --dataset DATASET [--split test] [--templates imagenet|single|"a {}."]
        [--image_column image] [--label_column label] [--class_names a b c] [--batch_size 64] [--json out.json]

MODEL is a saved UniCL folder or Hub id; DATASET a `save_to_disk` folder, an `imagefolder` directory or a Hub name.
The class embeddings are computed once (all class x template prompts in batches, averaged over templates,
renormalised); each image batch then costs one image forward and one matmul. `--embedded` evaluates on the
embedded animal silhouettes (all / seen / held-out classes) instead of `--dataset`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli_utils import (
    UsageError,
    add_keep_freed_memory_flag,
    apply_keep_freed_memory,
    check_unicl_folder,
    exit_on_usage_error,
    load_dataset_argument,
    markdown_table,
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved UniCL folder or Hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="image-label dataset: save_to_disk folder, imagefolder or Hub name")
    source.add_argument("--embedded", action="store_true", help="the embedded animal silhouettes (eval splits)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--class_names", nargs="+", default=None, help="if the label column is not a ClassLabel")
    parser.add_argument("--templates", default="imagenet",
                        help="'imagenet' (the 80 CLIP/UniCL templates), 'single' ('a photo of a {}.') or one template with {}")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to this file")
    add_keep_freed_memory_flag(parser)
    return parser.parse_args(argv)


def resolve_templates(spec: str) -> tuple[str, ...]:
    from modeling_unicl.prompts import IMAGENET_TEMPLATES, SIMPLE_TEMPLATE

    if spec == "imagenet":
        return tuple(IMAGENET_TEMPLATES)
    if spec == "single":
        return (SIMPLE_TEMPLATE,)
    if "{}" not in spec:
        raise UsageError(f"--templates: {spec!r} is not 'imagenet', 'single' or a template containing '{{}}'.")
    return (spec,)


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    check_unicl_folder(args.model, "MODEL")
    templates = resolve_templates(args.templates)
    if args.batch_size <= 0:
        raise UsageError(f"--batch_size must be positive, got {args.batch_size}.")
    if args.embedded:
        from modeling_unicl.data.embedded import build_embedded_datasets
    else:
        dataset = load_dataset_argument(args.dataset, args.split, "--dataset")
    apply_keep_freed_memory(args)

    from modeling_unicl import UniCLModel, UniCLProcessor
    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot

    model = UniCLModel.from_pretrained(args.model).eval()
    processor = UniCLProcessor.from_pretrained(args.model)
    if args.embedded:
        data = build_embedded_datasets(image_size=int(model.config.vision_config.image_size))
        splits = data.eval_splits()
    else:
        splits = {args.dataset: dataset}

    results, rows = {}, []
    for name, split in splits.items():
        scores = evaluate_zero_shot(
            model, processor, split, args.image_column, args.label_column, args.class_names, templates, args.batch_size
        )
        results[name] = {**scores, "templates": len(templates)}
        rows.append([name, scores["num_samples"], scores["top1"], scores["top5"]])
    print(markdown_table(["dataset", "images", "top-1", "top-5"], rows))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"model": args.model, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
