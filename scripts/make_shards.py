#!/usr/bin/env python
"""Write webdataset shards for `scripts/train.py --image_text_shards / --image_label_shards` from data you have.

    python scripts/make_shards.py --imagefolder ./my_photos --output_dir shards/my_photos        # image-label
    python scripts/make_shards.py --dataset ./saved_ds --caption_column caption --output_dir shards/captions
    python scripts/make_shards.py --dataset user/name:config --split train --output_dir shards/name
    python scripts/make_shards.py --caption_folder ./pairs --output_dir shards/pairs   # a.jpg + a.txt, b.png + b.txt
    python scripts/make_shards.py --embedded --output_dir shards/animals     # the package's silhouettes (tests)

Output: OUT/00000.tar, 00001.tar, ... (KEY.jpg|png|webp + KEY.cls or KEY.txt), OUT/classes.txt (image-label), and
OUT/manifest.json (kind, samples per shard, total; train.py derives --max_steps from it). Shards hold at most
--max_samples_per_shard samples and close once they reach --max_bytes_per_shard bytes. Images keep their encoded bytes
when they are JPEG, PNG or WebP (otherwise re-encoded as PNG).

A `--dataset` is image-label when it has a `ClassLabel` column --label_column (or --class_names are given), image-text
when --caption_column is given. Exit code 2 with one line for a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli_utils import UsageError, exit_on_usage_error, load_dataset_argument


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/make_shards.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--imagefolder", help="a folder of class subfolders of images (image-label)")
    source.add_argument("--dataset", help="a save_to_disk folder, an imagefolder or a Hub name (name:config)")
    source.add_argument("--caption_folder", help="a folder of images with a caption file beside each (a.jpg + a.txt)")
    source.add_argument("--embedded", choices=["label", "caption"], nargs="?", const="label",
                        help="the package's animal silhouettes: image-label (default) or image-caption pairs")
    parser.add_argument("--output_dir", required=True, help="where the shards, classes.txt and manifest.json go")
    parser.add_argument("--split", default="train", help="the split of --dataset / --imagefolder (default: train)")
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--caption_column", default=None, help="makes --dataset image-text: its caption column")
    parser.add_argument("--class_names", nargs="+", default=None, help="class names of an integer --label_column")
    parser.add_argument("--max_samples_per_shard", type=int, default=10_000)
    parser.add_argument("--max_bytes_per_shard", type=float, default=1e9, help="default 1e9 (1 GB)")
    parser.add_argument("--overwrite", action="store_true", help="write into an --output_dir that already has shards")
    return parser


def _label_source(dataset, args, what: str):
    from modeling_unicl.data.shard_writing import samples_from_dataset
    from modeling_unicl.utils.checks import resolve_class_names

    names = resolve_class_names(dataset, args.label_column, args.class_names)
    return "image-label", samples_from_dataset(dataset, args.image_column, args.label_column), names, what


def _sources(args):
    """(kind, samples, class names or None, a description) of the chosen input."""
    from modeling_unicl.data.shard_writing import samples_from_caption_folder, samples_from_dataset

    if args.embedded:
        from modeling_unicl.data.embedded import build_embedded_datasets

        data = build_embedded_datasets(seed=0)
        if args.embedded == "caption":
            return "image-text", samples_from_dataset(data.caption_train, "image", None, "caption"), None, "embedded"
        columns = argparse.Namespace(image_column="image", label_column="label", class_names=None)
        return _label_source(data.label_train, columns, "embedded")
    if args.caption_folder:
        folder = Path(args.caption_folder)
        if not folder.is_dir():
            raise UsageError(f"--caption_folder: {args.caption_folder!r} is not a folder.")
        return "image-text", samples_from_caption_folder(folder), None, str(folder)
    spec, flag = (args.imagefolder, "--imagefolder") if args.imagefolder else (args.dataset, "--dataset")
    if args.imagefolder and not Path(spec).is_dir():
        raise UsageError(f"--imagefolder: {spec!r} is not a folder.")
    dataset = load_dataset_argument(spec, args.split, flag)
    if args.caption_column is not None:
        from modeling_unicl.utils.checks import validate_image_text_dataset

        validate_image_text_dataset(dataset, args.image_column, args.caption_column)
        return "image-text", samples_from_dataset(dataset, args.image_column, None, args.caption_column), None, spec
    return _label_source(dataset, args, spec)


@exit_on_usage_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_samples_per_shard < 1 or not args.max_bytes_per_shard > 0:
        raise UsageError("--max_samples_per_shard and --max_bytes_per_shard: expected positive numbers.")
    output_dir = Path(args.output_dir)
    if not args.overwrite and output_dir.is_dir() and any(output_dir.glob("*.tar")):
        raise UsageError(f"--output_dir {args.output_dir} already holds shards: pass --overwrite, or choose another.")
    kind, samples, class_names, source = _sources(args)

    from modeling_unicl.data.shard_writing import write_shards

    manifest = write_shards(
        samples, output_dir, kind=kind, max_samples=args.max_samples_per_shard, max_bytes=args.max_bytes_per_shard,
        class_names=class_names, source=source,
    )
    pattern = f"{output_dir}/{{00000..{len(manifest['shards']) - 1:05d}}}.tar"
    flag = "--image_label_shards" if kind == "image-label" else "--image_text_shards"
    extra = f" --class_names_file {output_dir / 'classes.txt'}" if kind == "image-label" else ""
    print(f"Wrote {manifest['num_samples']} {kind} samples in {len(manifest['shards'])} shard(s) to {output_dir}.")
    print(f"Train on them with: python scripts/train.py {flag} '{pattern}'{extra} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
