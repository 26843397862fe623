"""Benchmark 5, on an accelerator (`benchmark.py --device cuda`): the training step of ours against
`VisionTextDualEncoderModel` with the same towers, both under bf16 autocast with SDPA (optionally `torch.compile`d),
on identical 77-token inputs and with ours padded to the longest caption; and zero-shot images/s of ours (bf16
autocast) against transformers' pipeline on the same device. Everything timed round-robin, with the device
synchronised after each call; the figures are made by `report.accelerator_results`.

The loader-workers row (how many data-loading processes keep one accelerator fed): the training step's images/s on
the accelerator over the samples/s one host core makes through the data path (`data_path.bench_data_path`: shards ->
collated batches, JPEGs decoded at a reduced scale when the crop allows)."""

from __future__ import annotations

import functools
import gc
import statistics
import tempfile
from pathlib import Path

import torch

from .data_path import bench_data_path
from .measure import round_robin
from .workloads import (
    Settings,
    adamw,
    class_names,
    clip_pipeline,
    dual_encoder,
    dual_encoder_step,
    random_images,
    train_batches,
    unicl_step,
)
from .zero_shot import PIPE_TEMPLATE, pipe_call

def synchronized(fn, device: torch.device):
    """`fn` followed by a device synchronisation, so that wall-clock time covers the queued kernels."""

    def call():
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result

    return call


def _to(batch: dict, device: torch.device) -> dict:
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def bench_accelerator_train(config, processor, settings: Settings, device: torch.device, compile_models: bool) -> dict:
    """Round-robin steps of ours and the dual encoder on identical 77-token inputs, and of ours padded to the
    longest caption, all under bf16 autocast on `device`."""
    from modeling_unicl import UniCLModel

    torch.manual_seed(0)
    ours = UniCLModel._from_config(config, attn_implementation="sdpa").to(device).train()
    peer = dual_encoder(config).to(device).train()
    if compile_models:  # in place: the modules keep their attributes (config, towers) for the steps below
        ours.compile()
        peer.compile()
    ours_opt, peer_opt = adamw(ours), adamw(peer)
    batches = {name: _to(batch, device) for name, batch in train_batches(processor, config, settings.train_batch).items()}
    step = functools.partial(synchronized, device=device)
    steps = {
        "ours_77": step(unicl_step(ours, ours_opt, batches["77"], torch.bfloat16, device.type)),
        "dual_encoder_77": step(dual_encoder_step(peer, peer_opt, batches["77"], torch.bfloat16, device.type)),
        "ours_longest": step(unicl_step(ours, ours_opt, batches["longest"], torch.bfloat16, device.type)),
    }
    warmup = settings.warmup_steps + (2 if compile_models else 0)  # compilation happens in the first calls
    times = round_robin(steps, warmup, settings.train_steps)
    del ours, peer, ours_opt, peer_opt, steps
    gc.collect()
    median = {name: statistics.median(t) for name, t in times.items()}
    return {"images_per_s": {name: settings.train_batch / t for name, t in median.items()}, "step_s": times,
            "median_step_s": median, "text_tokens": {name: int(b["input_ids"].shape[1]) for name, b in batches.items()}}


def bench_accelerator_zero_shot(config, processor, clip_cfg, settings: Settings, device: torch.device) -> dict:
    """Images/s of our classifier (class matrix once, then preprocess + image forward + matmul under bf16 autocast)
    and of the CLIP pipeline (fp32, one call per image) on `device`, round-robin."""
    from modeling_unicl import UniCLModel, ZeroShotClassifier
    from modeling_unicl.prompts import IMAGENET_TEMPLATES

    names = class_names(settings.num_classes)
    torch.manual_seed(0)
    model = UniCLModel._from_config(config, attn_implementation="sdpa").to(device).eval()
    classifier = ZeroShotClassifier(model, processor, names, IMAGENET_TEMPLATES[: settings.num_templates])
    images = random_images(settings.zero_shot_batch, seed=1)
    rounds = max(2, settings.zero_shot_reps)
    pipe_images = iter(random_images(rounds + 1, seed=2))
    pipe = clip_pipeline(clip_cfg, device=str(device))
    pipe_call(pipe, names, next(pipe_images))  # warm-up

    def ours():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return classifier.logits(classifier.pixel_values(images))

    ours()  # warm-up
    times = round_robin({"ours_bf16_autocast": synchronized(ours, device),
                         "clip_pipeline": synchronized(lambda: pipe_call(pipe, names, next(pipe_images)), device)},
                        warmup=0, steps=rounds)
    return {"images_per_s": {"ours_bf16_autocast": len(images) / statistics.median(times["ours_bf16_autocast"]),
                             "clip_pipeline": 1 / statistics.median(times["clip_pipeline"])},
            "round_robin_times_s": times, "num_classes": len(names),
            "num_templates_ours": settings.num_templates, "pipeline_template": PIPE_TEMPLATE}


def bench_accelerator(config, processor, clip_cfg, settings: Settings, device: str = "cuda",
                      compile_models: bool = False) -> dict:
    """Both measurements on `device`, and the data path on one host core (for the loader-workers row)."""
    device = torch.device(device)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = bench_data_path(processor, settings, Path(tmp))
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
            str(device), "compile": compile_models,
            "train": bench_accelerator_train(config, processor, settings, device, compile_models),
            "zero_shot": bench_accelerator_zero_shot(config, processor, clip_cfg, settings, device),
            "data_path": data_path}
