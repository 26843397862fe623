"""`--backend {pytorch,onnxruntime}` and `--int8` for the evaluation scripts: which runtime runs MODEL.

With `--backend onnxruntime`, MODEL is a folder written by scripts/export_onnx.py (its int8 image graph with `--int8`);
the processor is read from the same folder either way. A bad combination ends the script with exit code 2 and one
line, before anything is loaded (`check_backend_arguments`)."""

from __future__ import annotations

from cli_utils import UsageError


def add_backend_flags(parser) -> None:
    parser.add_argument("--backend", choices=("pytorch", "onnxruntime"), default="pytorch",
                        help="pytorch (MODEL: a saved UniCL folder or Hub id) or onnxruntime (MODEL: a folder written "
                             "by scripts/export_onnx.py)")
    parser.add_argument("--int8", action="store_true",
                        help="with --backend onnxruntime: the int8 image graph (export_onnx.py --int8); README, Deployment")


def check_backend_arguments(args, argument: str = "MODEL") -> None:
    """MODEL can run on --backend (with --int8): replaces `cli_utils.check_unicl_folder` in the scripts."""
    from modeling_unicl.export.dependencies import require
    from modeling_unicl.export.loading import check_inference_model

    try:
        check_inference_model(args.model, args.backend, args.int8)
        if args.backend == "onnxruntime":
            require("onnxruntime")
    except (ValueError, OSError, ImportError) as error:
        raise UsageError(f"{argument} (--backend {args.backend}{' --int8' if args.int8 else ''}): {error}") from error


def load_backend_model(args):
    """The model of MODEL on --backend: a `UniCLModel` in eval mode, or an `OnnxUniCLModel` (fp32, or int8)."""
    from modeling_unicl.export.loading import load_model_for_inference

    return load_model_for_inference(args.model, args.backend, args.int8)
