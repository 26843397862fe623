#!/usr/bin/env python
"""Zero-shot classification in the browser for any saved or converted UniCL folder (a Gradio app, offline).

    pip install -e .[demo]
    python scripts/demo.py [MODEL] [--port 7860] [--host 127.0.0.1] [--share]
    python scripts/demo.py OWNER/NAME --write_space DIR     # a Hugging Face Space folder for a model on the Hub

MODEL is a saved UniCL folder (default: unicl-animals, what `python scripts/train.py` saves), a converted original
checkpoint or a Hub id. The page takes an image (upload, paste, webcam) and free-text labels, and shows the labels
ranked by probability; the same classification is the API endpoint /classify for gradio_client.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from cli_utils import UsageError, check_unicl_folder, exit_on_usage_error

DEFAULT_MODEL = "unicl-animals"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                        help=f"saved or converted UniCL folder, or Hub id (default: {DEFAULT_MODEL})")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default: 127.0.0.1, this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--share", action="store_true",
                        help="also make a public gradio.live link (needs the internet; off by default)")
    parser.add_argument("--write_space", metavar="DIR", default=None,
                        help="write a Hugging Face Space folder for MODEL (a Hub id) into DIR instead of serving")
    return parser.parse_args(argv)


def check_model(model: str) -> None:
    if model == DEFAULT_MODEL and not Path(model).exists():
        raise UsageError(
            f"MODEL: no {DEFAULT_MODEL}/ folder here. It is the main job's model: make it with "
            "`python scripts/train.py` (about 3 minutes on 2 CPU cores), or pass any saved or converted UniCL "
            "folder: python scripts/demo.py MODEL"
        )
    check_unicl_folder(model, "MODEL")


def check_gradio_installed() -> None:
    if importlib.util.find_spec("gradio") is None:
        raise UsageError("the demo needs gradio, an optional extra: pip install -e .[demo]")


def write_space_folder(args) -> int:
    from modeling_unicl.demo.space import write_space

    try:
        written = write_space(args.write_space, args.model)
    except ValueError as error:
        raise UsageError(f"--write_space: {error}") from error
    print(f"Wrote a Space for {args.model} to {Path(args.write_space).resolve()}: {', '.join(p.name for p in written)}")
    print(f"Publish it: hf upload OWNER/SPACE_NAME {args.write_space} . --repo-type space")
    return 0


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.write_space:
        check_gradio_installed()
        return write_space_folder(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}.")
    check_model(args.model)
    check_gradio_installed()

    print(f"Loading {args.model} and starting the demo ...", flush=True)
    from modeling_unicl.demo.app import create_demo, launch

    launch(create_demo(args.model), host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
