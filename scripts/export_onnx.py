#!/usr/bin/env python
"""Export a saved UniCL model to ONNX: the image tower and the text tower as two graphs that output normalised
embeddings, for ONNX Runtime (`--backend onnxruntime` of zero_shot_eval.py and linear_probe.py) or any ONNX runtime.

    python scripts/export_onnx.py MODEL OUT [--int8] [--opset 17] [--overwrite]

OUT receives image_encoder.onnx (pixel_values -> image_embeds, dynamic batch), text_encoder.onnx (input_ids,
attention_mask -> text_embeds, dynamic batch and length), with --int8 also image_encoder.int8.onnx (ONNX
Runtime's dynamic quantization of the image tower; the text tower runs once per class set and stays fp32: quantizing
it cost most of the agreement, README Deployment), export_config.json (the logit scale, the input sizes,
the parity measured against PyTorch), config.json and the processor files. The fp32 graphs are checked against the
PyTorch model before anything is written (max |diff| <= 1e-4 of the normalised embeddings). Needs the `export`
extra: pip install "unicl[export]".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli_utils import UsageError, check_unicl_folder, exit_on_usage_error


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved UniCL folder or Hub id")
    parser.add_argument("output_dir", metavar="OUT", help="folder to write the graphs to (absent or empty)")
    parser.add_argument("--int8", action="store_true", help="also write the image tower dynamically quantized to int8")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset, 17 (default) to 20")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")
    return parser.parse_args(argv)


def check_args(args) -> None:
    """Every argument, before anything is loaded or written."""
    from modeling_unicl.export.dependencies import require
    from modeling_unicl.export.onnx_export import DEFAULT_OPSET, MAX_OPSET

    check_unicl_folder(args.model, "MODEL")
    args.opset = DEFAULT_OPSET if args.opset is None else args.opset
    if not DEFAULT_OPSET <= args.opset <= MAX_OPSET:
        raise UsageError(f"--opset must be from {DEFAULT_OPSET} to {MAX_OPSET}, got {args.opset}.")
    out = Path(args.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT: {args.output_dir!r} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"OUT: {args.output_dir!r} is not empty; pass --overwrite to replace it.")
    for module in ("onnx", "onnxruntime"):
        try:
            require(module)
        except ImportError as error:
            raise UsageError(str(error)) from error


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    from modeling_unicl.export import export_pretrained

    config = export_pretrained(args.model, args.output_dir, opset=args.opset, int8=args.int8, overwrite=args.overwrite)
    files = sorted(p.name for p in Path(args.output_dir).iterdir())
    print(f"wrote {args.output_dir}: {', '.join(files)}")
    print(f"parity with PyTorch (max |diff| of the normalised embeddings): image {config.parity_max_abs_diff['image']:.2e}, "
          f"text {config.parity_max_abs_diff['text']:.2e}; logit scale {config.logit_scale:.4g}; opset {config.opset}")
    if config.int8:
        cosine = config.int8_options["min_image_cosine_to_fp32_at_export"]
        print(f"int8 image graph: largest cosine distance to fp32 at export {1 - cosine:.1e} (zero-shot agreement: "
              "scripts/onnx_agreement.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
