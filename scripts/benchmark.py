#!/usr/bin/env python
"""UniCL speed on CPU. Every figure is a ratio against a named peer measured in the same run (no absolute claims).

    python scripts/benchmark.py [--quick] [--json PATH] [--num_classes N] [--templates N] [--threads N]
                                [--no_keep_freed_memory] [--bf16 auto|on|off]
    python scripts/benchmark.py --malloc_ab STEPS     # keep_freed_memory off vs on, fresh single-model processes
    python scripts/benchmark.py --device cuda [--compile] [--quick] [--json PATH]   # on an accelerator (5. below)
    python scripts/benchmark.py --data_path_only [--quick] [--json PATH]            # only 6. below (~1 min)
    python scripts/benchmark.py --onnx_runs_only [--quick] [--json PATH]            # only 7. below

1. Zero-shot with many classes: our `ZeroShotClassifier` (class matrix built once from class x template prompts,
   then per image batch one image forward + one matmul) vs transformers' `pipeline("zero-shot-image-classification")`
   with a same-size `CLIPModel` (ViT-B/32 vision, 12-layer 512-wide text; random weights), and the same pipeline on
   our UniCL model saved to a folder (its text-feature cache: the first call encodes the labels, later calls 0 text
   forwards, counted with a forward hook on `model.text_model`). Images/s include image preprocessing on both sides.
   Ours also runs exported to ONNX (`modeling_unicl.export`) in ONNX Runtime, fp32 and int8 (dynamic quantization),
   with torch's thread count. The five are timed round-robin (ours, ONNX fp32, ONNX int8, CLIP pipeline, cached
   pipeline, ours, ...), medians; eager fp32 is also a fraction of the FLOP ceiling (FLOPs counted once on the eager
   forward, the fp32 matmul peak measured in the same run).
2. Training step (forward + backward + fused AdamW, fp32, SDPA): `UniCLModel` + `unicl_loss` vs the same towers in
   `transformers.VisionTextDualEncoderModel` with its CLIP loss, on identical 77-token inputs; ours on the same
   captions padded to the longest (as `UniCLCollator` does) vs the dual encoder on 77 tokens (transformers'
   contrastive example pads to a fixed length); ours with `trim_text_padding` off; both models under bf16 autocast
   (only on a CPU with native bf16 unless `--bf16 on`: elsewhere autocast emulates it, many times slower than fp32).
   Steps are interleaved round-robin (A B C D A B C D ...) after warm-up steps, so machine drift hits every variant
   alike; medians. Steps are profiled with `torch.profiler` (top ops by self CPU time) before anything else.
3. FLOPs of one training step (`FlopCounterMode`) / step time, as a fraction of a large fp32 `torch.matmul`'s rate
   (measured before, between and after the rest; the highest counts).
4. Peak RSS of two training steps (the first allocates AdamW's state) without vs with
   `activation_checkpointing_enable()`, each in a fresh subprocess with glibc's default malloc, and once more without
   checkpointing under `keep_freed_memory()` (what the speed setting costs in memory).
6. The training data path on one core (`data_path_speedup_vs_full_decode`): 1024x768 JPEGs in webdataset shards ->
   read -> decode -> random resized crop 224 -> normalise -> tokenise + collate (`ExampleMaker`, `UniCLCollator`),
   JPEGs decoded at a reduced scale when the crop allows (ours) vs the same path with a full-size decode before the
   crop (open_clip's and run_clip's transforms); samples per CPU second, round-robin passes, medians; and the
   worker processes (cores) needed to feed 1,000 images/s.
7. How `OnnxUniCLModel` runs the image graph on a batch (`--onnx_runs_only`): images/s of the exported Swin-T image
   graph, fp32 and int8, in chunks of 4 / 1 images one after the other on all threads, and in chunks of 4 / 2 / 1
   images run concurrently on one thread each (the default: one image per run), vs one run of the whole batch on all
   threads; round-robin, medians.

5. `--device cuda` measures only this, on the accelerator: the training step of ours vs the dual encoder (both bf16
   autocast, SDPA, `--compile`: `torch.compile`), on identical 77-token inputs and padded to the longest, and
   zero-shot images/s of ours vs the CLIP pipeline on the same device; and the dataloader workers (host cores) that
   keep the training step fed, from the data path of 6. measured on the host.

Everything else runs with `modeling_unicl.utils.runtime.keep_freed_memory()` (glibc keeps freed memory for reuse), as
`scripts/train.py` does by default; `--no_keep_freed_memory` measures without. It applies to every model alike.

`--quick` (a few minutes on 2 cores) uses one template (at the same 1000 classes, so that its zero-shot ratios compare
with the full run's), smaller batches and fewer steps; the JSON says which settings ran (`settings`).

This file parses the command line and runs the measurements in order; the parts live in `scripts/benchmarks/`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from benchmarks import report
from benchmarks.accelerator import bench_accelerator
from benchmarks.data_path import bench_data_path
from benchmarks.measure import load_average, machine_info, matmul_peak, native_bf16
from benchmarks.onnx_runs import bench_onnx_runs
from benchmarks.train_steps import bench_train
from benchmarks.workers import malloc_ab, malloc_worker, measure_rss, rss_worker
from benchmarks.workloads import FULL, QUICK, Settings, clip_config, unicl_config
from benchmarks.zero_shot import bench_zero_shot
from cli_utils import add_keep_freed_memory_flag, apply_keep_freed_memory  # also puts the checkout on sys.path


def run_benchmark(settings: Settings, config=None, clip_cfg=None, processor=None, workdir: Path | None = None,
                  log=print, fresh_processes: bool = True, keep_freed: bool = False, bf16: bool | None = None) -> dict:
    """Every measurement; `config` / `clip_cfg` / `processor` default to the paper's sizes (tests pass tiny ones).
    `keep_freed` says whether this process runs with `keep_freed_memory()`; it applies to ours and to every peer
    alike. The RSS workers choose their own setting (`workers.RSS_VARIANTS`). `bf16` runs the bf16-autocast rows
    (default: only where the CPU has native bf16, `native_bf16()`); skipped rows say why."""
    from modeling_unicl import UniCLProcessor

    config = config if config is not None else unicl_config()
    clip_cfg = clip_cfg if clip_cfg is not None else clip_config(config.text_config.to_dict())
    processor = processor if processor is not None else UniCLProcessor()
    started = time.perf_counter()
    machine = {**machine_info(), "keep_freed_memory": keep_freed, "native_bf16": native_bf16()}
    bf16 = machine["native_bf16"] if bf16 is None else bf16

    log("data path (shards -> collated batches, one core) ...")
    with tempfile.TemporaryDirectory() as tmp:
        data_path = bench_data_path(processor, settings, Path(tmp))
    # The machine's matmul rate drifts (shared hosts): measured before, between and after; the best one is the peak.
    peaks = [matmul_peak(settings.matmul_size, settings.matmul_reps)]
    log("training steps (profile, FLOPs, round-robin timing) ...")
    train = bench_train(config, processor, settings, bf16=bf16)
    log("fp32 matmul peak ...")
    peaks.append(matmul_peak(settings.matmul_size, settings.matmul_reps))
    log("peak RSS with / without gradient checkpointing (fresh processes) ...")
    rss = measure_rss(config, settings.train_batch, fresh_processes=fresh_processes)
    log("zero-shot ...")
    with tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(workdir) as tmp:
        zero_shot = bench_zero_shot(config, processor, clip_cfg, settings, Path(tmp), bf16=bf16)
    peaks.append(matmul_peak(settings.matmul_size, settings.matmul_reps))

    machine["load_average_at_end"] = load_average()
    results = report.results(settings, machine, train=train, rss=rss, zero_shot=zero_shot, peaks=peaks, bf16=bf16,
                             data_path=data_path)
    results["elapsed_s"] = time.perf_counter() - started
    return results


def run_data_path_benchmark(settings: Settings, processor=None, log=print) -> dict:
    """Benchmark 6 alone (`--data_path_only`); `processor` defaults to the paper's (224 px crops)."""
    from modeling_unicl import UniCLProcessor

    processor = processor if processor is not None else UniCLProcessor()
    started = time.perf_counter()
    machine = machine_info()
    log("data path (shards -> collated batches, one core) ...")
    with tempfile.TemporaryDirectory() as tmp:
        data_path = bench_data_path(processor, settings, Path(tmp))
    machine["load_average_at_end"] = load_average()
    results = report.data_path_results(settings, machine, data_path)
    results["elapsed_s"] = time.perf_counter() - started
    return results


def run_onnx_runs_benchmark(settings: Settings, config=None, processor=None, log=print) -> dict:
    """Benchmark 7 alone (`--onnx_runs_only`); `config` / `processor` default to the paper's Swin-T (tests pass tiny
    ones)."""
    from modeling_unicl import UniCLProcessor

    config = config if config is not None else unicl_config()
    processor = processor if processor is not None else UniCLProcessor()
    started = time.perf_counter()
    machine = machine_info()
    log("ONNX Runtime image-graph run modes (export, then round-robin) ...")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_runs = bench_onnx_runs(config, processor, settings, Path(tmp))
    machine["load_average_at_end"] = load_average()
    results = report.onnx_runs_results(settings, machine, onnx_runs)
    results["elapsed_s"] = time.perf_counter() - started
    return results


def run_accelerator_benchmark(settings: Settings, device: str, compile_models: bool, log=print, config=None,
                              clip_cfg=None, processor=None) -> dict:
    """Benchmark 5 on `device` (tests pass tiny configs, and may run it on the CPU)."""
    from modeling_unicl import UniCLProcessor

    config = config if config is not None else unicl_config()
    clip_cfg = clip_cfg if clip_cfg is not None else clip_config(config.text_config.to_dict())
    processor = processor if processor is not None else UniCLProcessor()
    started = time.perf_counter()
    log(f"training steps and zero-shot on {device} ...")
    accelerator = bench_accelerator(config, processor, clip_cfg, settings, device, compile_models)
    results = report.accelerator_results(settings, machine_info(), accelerator)
    results["elapsed_s"] = time.perf_counter() - started
    return results


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes on 2 cores: 1 template at 1000 classes, training batch 4, 2 steps")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to this file")
    parser.add_argument("--num_classes", type=int, default=None, help="zero-shot classes (default 1000, also quick)")
    parser.add_argument("--templates", type=int, default=None, help="templates for our classifier (default 80, quick 1)")
    parser.add_argument("--train_batch", type=int, default=None, help="training batch (default 32, quick 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's, one per core); on a machine where other jobs hold "
                             "cores, use the number of idle cores: OpenMP barriers stall on busy ones")
    add_keep_freed_memory_flag(parser)  # applies to every model measured, ours and the peers
    # The spelling before --no_keep_freed_memory, still accepted so that older command lines run.
    parser.add_argument("--keep_freed_memory", dest="deprecated_keep_freed_memory", choices=("on", "off"),
                        default=None, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="the bf16-autocast rows: auto (default) runs them only on a CPU with native bf16 "
                             "(AVX512-BF16 / AMX); elsewhere autocast emulates bf16 and is many times slower than fp32")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: only the accelerator benchmark (5.), bf16 autocast and SDPA on the GPU")
    parser.add_argument("--compile", action="store_true", help="with --device cuda: torch.compile both models")
    parser.add_argument("--data_path_only", action="store_true",
                        help="only the data-path figure (6.): reduced-scale vs full-size JPEG decoding, one core")
    parser.add_argument("--onnx_runs_only", action="store_true",
                        help="only how ONNX Runtime runs the image graph (7.): chunk sizes, concurrent one-thread runs")
    parser.add_argument("--malloc_ab", type=int, default=None, metavar="STEPS",
                        help="only compare training steps with keep_freed_memory off vs on (fresh processes, STEPS "
                             "timed steps each) and print the JSON")
    parser.add_argument("--malloc_worker", default=None, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--rss_worker", default=None, help=argparse.SUPPRESS)  # internal: one step in a fresh process
    args = parser.parse_args(argv)
    if args.deprecated_keep_freed_memory is not None:
        print("warning: --keep_freed_memory on|off is deprecated; the default is on, --no_keep_freed_memory is off",
              file=sys.stderr)
        args.keep_freed_memory = args.deprecated_keep_freed_memory == "on"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.rss_worker is not None:
        print(json.dumps(rss_worker(json.loads(args.rss_worker))))
        return 0
    if args.malloc_worker is not None:
        print(json.dumps(malloc_worker(json.loads(args.malloc_worker))))
        return 0
    if args.malloc_ab is not None:
        if args.malloc_ab < 1:
            print("error: --malloc_ab must be >= 1", file=sys.stderr)
            return 2
        ab = malloc_ab(unicl_config(), args.train_batch or FULL.train_batch, args.malloc_ab)
        print(json.dumps(ab, indent=2))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(ab, indent=2) + "\n")
        return 0
    settings = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("num_classes", args.num_classes), ("num_templates", args.templates),
                                   ("train_batch", args.train_batch)) if v is not None}
    if any(v < 1 for v in overrides.values()):
        print("error: --num_classes, --templates and --train_batch must be >= 1", file=sys.stderr)
        return 2
    settings = Settings(**{**asdict(settings), **overrides})
    if args.compile and args.device != "cuda":
        print("error: --compile applies to --device cuda only (on the CPU it measured no gain: README, Performance)",
              file=sys.stderr)
        return 2
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.data_path_only and args.onnx_runs_only:
        print("error: --data_path_only and --onnx_runs_only each run one part alone; give one of them", file=sys.stderr)
        return 2
    if (args.data_path_only or args.onnx_runs_only) and args.device != "cpu":
        print("error: --data_path_only and --onnx_runs_only measure on the CPU; leave out --device", file=sys.stderr)
        return 2
    if args.data_path_only:
        results = run_data_path_benchmark(settings, log=log)
    elif args.onnx_runs_only:
        results = run_onnx_runs_benchmark(settings, log=log)
    elif args.device == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda: no CUDA device is available (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
        results = run_accelerator_benchmark(settings, "cuda", args.compile, log=log)
    else:
        keep_freed = apply_keep_freed_memory(args)
        bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
        results = run_benchmark(settings, log=log, keep_freed=keep_freed, bf16=bf16)
    print(report.markdown(results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
