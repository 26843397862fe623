#!/usr/bin/env python
"""How much the ONNX export and its int8 image graph change a model's zero-shot predictions (README, Deployment).

    python scripts/onnx_agreement.py unicl-animals --embedded            # the main job's model, its 1,000 test images
    python scripts/onnx_agreement.py FOLDER --photos [--num_classes 1000] [--templates 1]
    python scripts/onnx_agreement.py random:swin-tiny --photos --templates 1   # a preset with seeded random weights

MODEL (a saved UniCL folder, or `random:PRESET`) is exported to a temporary folder with --int8; then PyTorch,
ONNX Runtime fp32 and ONNX Runtime int8 classify the same images, each with its own class matrix, and are compared
with PyTorch: top-1 agreement, zero-shot top-1 (with labels), the largest cosine distance of the image and class
embeddings, the largest logit difference.

`--embedded`: the embedded test split (1,000 silhouettes, 10 classes, labels; the 80 templates by default).
`--photos`: real photos shipped by scikit-image (`pip install scikit-image`): 19 photos x 6 views (whole, four
quadrants, mirrored) = 114 images, over `--num_classes` ImageNet-like names (the benchmark's); no labels, so the
agreement is the figure (random weights make accuracy meaningless).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

from cli_utils import UsageError, check_unicl_folder, exit_on_usage_error, markdown_table

# Real photos in scikit-image's wheel (no download); synthetic images (colorwheel, horse, chessboard) are left out.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "cell")
RANDOM_PREFIX = "random:"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=f"saved UniCL folder, or {RANDOM_PREFIX}PRESET (seeded random weights)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--embedded", action="store_true", help="the embedded test split (1,000 images, labels)")
    source.add_argument("--photos", action="store_true", help="scikit-image's real photos, 6 views each")
    parser.add_argument("--num_classes", type=int, default=1000, help="class names for --photos (default 1000)")
    parser.add_argument("--templates", type=int, default=80, help="the first N of the 80 templates (default 80)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to this file")
    return parser.parse_args(argv)


def check_args(args) -> None:
    if args.model.startswith(RANDOM_PREFIX):
        from modeling_unicl.presets import get_preset

        try:
            get_preset(args.model[len(RANDOM_PREFIX):])
        except ValueError as error:
            raise UsageError(f"MODEL: {error}") from error
    else:
        check_unicl_folder(args.model, "MODEL")
    for flag, value, top in (("--num_classes", args.num_classes, None), ("--templates", args.templates, 80),
                             ("--batch_size", args.batch_size, None)):
        if value < 1 or (top is not None and value > top):
            raise UsageError(f"{flag} must be between 1 and {top or 'any size'}, got {value}.")
    if args.photos and importlib.util.find_spec("skimage") is None:
        raise UsageError("--photos needs scikit-image (pip install scikit-image) for its photos.")


def load_model(spec: str):
    import torch

    from modeling_unicl import UniCLModel, UniCLProcessor
    from modeling_unicl.presets import get_preset, processor_for_config

    if spec.startswith(RANDOM_PREFIX):
        config = get_preset(spec[len(RANDOM_PREFIX):]).config()
        torch.manual_seed(0)
        return UniCLModel(config).eval(), processor_for_config(config)
    return UniCLModel.from_pretrained(spec).eval(), UniCLProcessor.from_pretrained(spec)


def photo_views() -> list:
    """Each photo whole, its four quadrants and mirrored: 6 views of every photo of `SKIMAGE_PHOTOS` and of both
    images of the stereo motorcycle."""
    import skimage.data
    from PIL import Image, ImageOps

    arrays = [getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS] + list(skimage.data.stereo_motorcycle()[:2])
    views = []
    for array in arrays:
        photo = Image.fromarray(array).convert("RGB")
        width, height = photo.size
        quadrants = [photo.crop((x, y, x + width // 2, y + height // 2)) for y in (0, height // 2) for x in (0, width // 2)]
        views += [photo, *quadrants, ImageOps.mirror(photo)]
    return views


def evaluation_inputs(args, model) -> tuple[list, list[str], list[int] | None]:
    """(images, class names, labels or None) of the chosen image set."""
    if args.embedded:
        from modeling_unicl.data.embedded import build_embedded_datasets

        test = build_embedded_datasets(image_size=int(model.config.vision_config.image_size)).eval_all
        return list(test["image"]), test.features["label"].names, list(test["label"])
    from benchmarks.workloads import class_names

    return photo_views(), class_names(args.num_classes), None


def report_rows(results: dict) -> list[list]:
    rows = []
    for name, scores in results["models"].items():
        pair = results["vs_reference"].get(name, {})
        rows.append([name, scores.get("top1", "-"), scores["median_top1_margin"], pair.get("top1_agreement", "-"),
                     pair.get("max_cosine_distance_image", "-"), pair.get("max_cosine_distance_class", "-"),
                     pair.get("max_abs_logit_diff", "-")])
    return rows


def _cell(value):
    return f"{value:.2e}" if isinstance(value, float) and 0 < abs(value) < 1e-3 else value


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)

    from modeling_unicl.export import OnnxUniCLModel, export_onnx
    from modeling_unicl.export.agreement import compare_backends
    from modeling_unicl.prompts import IMAGENET_TEMPLATES

    model, processor = load_model(args.model)
    images, names, labels = evaluation_inputs(args, model)
    with tempfile.TemporaryDirectory() as tmp:
        export = export_onnx(model, processor, Path(tmp) / "onnx", int8=True)
        models = {"pytorch": model, "onnxruntime fp32": OnnxUniCLModel.from_exported(Path(tmp) / "onnx"),
                  "onnxruntime int8": OnnxUniCLModel.from_exported(Path(tmp) / "onnx", int8=True)}
        results = compare_backends(models, processor, images, names, labels, IMAGENET_TEMPLATES[: args.templates],
                                   args.batch_size, reference="pytorch")
    results.update(model=args.model, images="embedded test split" if args.embedded else "scikit-image photos, 6 views",
                   export_parity_max_abs_diff=export.parity_max_abs_diff, int8_options=export.int8_options)
    header = ["backend", "zero-shot top-1", "median top-1 margin", "top-1 agreement with pytorch",
              "max cosine distance (images)",
              "max cosine distance (classes)", "max |logit diff|"]
    print(markdown_table(header, [[_cell(v) for v in row] for row in report_rows(results)]))
    print(f"\n{results['num_images']} images ({results['images']}), {results['num_classes']} classes x "
          f"{results['num_templates']} templates; export parity (fp32 graphs vs PyTorch, max |diff| of normalised "
          f"embeddings): {export.parity_max_abs_diff}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
