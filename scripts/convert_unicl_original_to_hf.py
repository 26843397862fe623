#!/usr/bin/env python
"""Convert an original UniCL checkpoint (microsoft/UniCL) into a transformers folder (UniCLModel + processor + card).

Examples:

    python scripts/convert_unicl_original_to_hf.py --checkpoint in1k_yfcc14m.pth --config swin-tiny \\
        --output-dir unicl-swin-tiny-in1k-yfcc14m
    python scripts/convert_unicl_original_to_hf.py --checkpoint my.pth --config configs/unicl_swin_tiny.yaml \\
        --output-dir out --overwrite

--config is an original (yacs) YAML file or a preset name (swin-tiny, swin-base). The folder is written to a
temporary folder next to --output-dir and moved into place only when complete and verified. Exit status 2 on bad
input (missing file, unknown preset, incomplete YAML, checkpoint/config mismatch), with a one-line reason.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PRESET_NAMES = ("swin-tiny", "swin-base")  # kept in sync with modeling_unicl.conversion.convert.PRESETS (checked below)


def _fail(message: str) -> int:
    lines = str(message).splitlines() or ["conversion failed"]
    print(f"{Path(sys.argv[0]).name}: error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)
    return 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original checkpoint (.pth): {'model': state_dict} or a bare state dict")
    parser.add_argument("--config", required=True, help=f"original YAML config file, or a preset: {', '.join(PRESET_NAMES)}")
    parser.add_argument("--output-dir", required=True, help="folder to create (must be absent or empty unless --overwrite)")
    parser.add_argument("--card", default=None, help="released checkpoint name for the model card (default: from the file name)")
    parser.add_argument("--repo-id", default=None, help="Hub repo id used in the model card's snippets")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output-dir")
    parser.add_argument("--quiet", action="store_true", help="only print warnings and errors")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # cheap checks before importing torch / transformers
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        return _fail(f"--checkpoint {checkpoint}: no such file.")
    config_path = Path(args.config)
    if args.config not in PRESET_NAMES:
        looks_like_file = config_path.suffix.lower() in (".yaml", ".yml") or "/" in args.config or config_path.exists()
        if not looks_like_file:
            return _fail(
                f"--config {args.config!r}: neither a YAML file nor a known preset (known presets: {', '.join(PRESET_NAMES)})."
            )
        if not config_path.is_file():
            return _fail(f"--config {config_path}: no such file.")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or (any(output_dir.iterdir()) and not args.overwrite)):
        what = "is not a directory" if not output_dir.is_dir() else "is not empty (pass --overwrite to replace it)"
        return _fail(f"--output-dir {output_dir}: exists and {what}.")

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from modeling_unicl.conversion.convert import PRESETS, ConversionError, convert_unicl_checkpoint

    assert tuple(PRESETS) == PRESET_NAMES, "PRESET_NAMES is out of date"
    try:
        out = convert_unicl_checkpoint(
            args.checkpoint,
            args.config,
            args.output_dir,
            card_name=args.card,
            repo_id=args.repo_id,
            overwrite=args.overwrite,
        )
    except ConversionError as e:
        return _fail(str(e))
    print(f"converted {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
