#!/usr/bin/env python
"""Convert an original UniCL checkpoint (microsoft/UniCL) into a transformers folder (UniCLModel + processor + card).

Examples:

    python scripts/convert_unicl_original_to_hf.py --checkpoint in1k_yfcc14m.pth --config swin-tiny \\
        --output_dir unicl-swin-tiny-in1k-yfcc14m
    python scripts/convert_unicl_original_to_hf.py --checkpoint my.pth --config configs/unicl_swin_tiny.yaml \\
        --output_dir out --overwrite

--config is an original (yacs) YAML file or the name of a preset of modeling_unicl.presets that reproduces one
(listed by --help). The folder is written to a temporary folder next to --output_dir and moved into place only
when complete and verified. Exit status 2 on bad input (missing file, unknown preset, incomplete YAML,
checkpoint/config mismatch), with the reason. The hyphenated --output-dir and --repo-id of earlier versions still work.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cli_utils import UsageError, exit_on_usage_error

from modeling_unicl.conversion import PRESETS, ConversionError, convert_unicl_checkpoint

# The flag of each argument that `ConversionError.argument` can name.
FLAGS = {"checkpoint": "--checkpoint", "config": "--config", "output_dir": "--output_dir", "card_name": "--card",
         "repo_id": "--repo_id"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original checkpoint (.pth): {'model': state_dict} or a bare state dict")
    parser.add_argument("--config", required=True, help=f"original YAML config file, or a preset: {', '.join(PRESETS)}")
    parser.add_argument("--output_dir", "--output-dir", required=True,
                        help="folder to create (must be absent or empty unless --overwrite)")
    parser.add_argument("--card", default=None, help="released checkpoint name for the model card (default: from the file name)")
    parser.add_argument("--repo_id", "--repo-id", default=None, help="Hub repo id used in the model card's snippets")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--quiet", action="store_true", help="only print warnings and errors")
    return parser.parse_args(argv)


def with_flag(error: ConversionError) -> str:
    """The library's message with the argument it names (its first word) spelled as this script's flag."""
    message = str(error)
    if error.argument in FLAGS and message.startswith(error.argument + " "):
        message = FLAGS[error.argument] + message[len(error.argument):]
    return message


@exit_on_usage_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        out = convert_unicl_checkpoint(
            args.checkpoint,
            args.config,
            args.output_dir,
            card_name=args.card,
            repo_id=args.repo_id,
            overwrite=args.overwrite,
        )
    except ConversionError as error:
        raise UsageError(with_flag(error)) from error
    print(f"converted {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
