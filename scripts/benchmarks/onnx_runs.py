"""Benchmark 7, how `OnnxUniCLModel` runs the image graph on a batch (`--onnx_runs_only`): images/s of our model's
exported image graph, fp32 and int8, in each run mode, against one ONNX Runtime run of the whole batch on all threads
(what a plain `session.run` does); timed round-robin, medians. The figures are made by `report.onnx_runs_results`."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

import torch

from .measure import round_robin

# mode -> (images per run, concurrent one-thread runs); `OnnxUniCLModel`'s default is concurrent runs of one image
RUN_MODES = {
    "whole_batch": (None, False),
    "chunks_of_4": (4, False),
    "chunks_of_1": (1, False),
    "concurrent_chunks_of_4": (4, True),
    "concurrent_chunks_of_2": (2, True),
    "concurrent_chunks_of_1": (1, True),
}
PEER_MODE = "whole_batch"


def bench_onnx_runs(config, processor, settings, workdir: Path) -> dict:
    """Exports a randomly initialised model of `config` (with the int8 image graph), then times every `RUN_MODES`
    entry on one batch of `settings.zero_shot_batch` images, `settings.onnx_runs_rounds` rounds per precision.
    `{"skipped": reason}` without onnxruntime (the `export` extra)."""
    from modeling_unicl import UniCLModel

    try:
        from modeling_unicl.export import OnnxUniCLModel, export_onnx
    except ImportError as error:
        return {"skipped": f"not measured: {error}"}
    torch.manual_seed(0)
    model = UniCLModel._from_config(config, attn_implementation="sdpa").eval()
    export_onnx(model, processor, workdir / "onnx", int8=True, overwrite=True)
    size = config.vision_config.image_size
    pixel_values = torch.randn(settings.zero_shot_batch, 3, size, size)  # the time does not depend on the values
    measured = {"batch": settings.zero_shot_batch, "rounds": settings.onnx_runs_rounds, "threads": torch.get_num_threads(),
                "peer_mode": PEER_MODE, "modes": {name: {"image_chunk_size": chunk, "concurrent_image_runs": concurrent}
                          for name, (chunk, concurrent) in RUN_MODES.items()},
                "round_robin_times_s": {}}
    for precision, int8 in (("fp32", False), ("int8", True)):
        runs = {}
        for name, (chunk, concurrent) in RUN_MODES.items():
            onnx_model = OnnxUniCLModel.from_exported(workdir / "onnx", int8=int8, image_chunk_size=chunk,
                                                      concurrent_image_runs=concurrent)
            runs[name] = functools.partial(onnx_model.get_image_features, pixel_values)
        measured["round_robin_times_s"][precision] = round_robin(runs, warmup=1, steps=settings.onnx_runs_rounds)
        del runs
    measured["images_per_s"] = {
        precision: {name: settings.zero_shot_batch / statistics.median(times) for name, times in by_mode.items()}
        for precision, by_mode in measured["round_robin_times_s"].items()}
    return measured
