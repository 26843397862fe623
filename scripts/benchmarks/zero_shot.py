"""Benchmark 1, zero-shot with many classes: our `ZeroShotClassifier` (eager PyTorch fp32, and the same model exported
to ONNX and run by ONNX Runtime in fp32 and int8) and transformers' zero-shot pipeline (on a same-size CLIP, and on
our model saved to a folder), timed round-robin; the figures are made by `report`."""

from __future__ import annotations

import functools
import gc
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .measure import CountForwards, count_flops, round_robin, seconds
from .workloads import Settings, class_names, clip_pipeline, folder_pipeline, random_images

PIPE_TEMPLATE = "a photo of a {}."  # the pipeline takes one template; our classifier takes `settings.num_templates`
# The ONNX Runtime classifiers build their class matrix from one template: images/s does not depend on it (each batch
# is one image forward and one matmul with a (classes x dim) matrix), and the 80-template matrix costs minutes.
ONNX_TEMPLATES = (PIPE_TEMPLATE,)


def pipe_call(pipe, labels, image):
    return pipe(image, candidate_labels=labels, hypothesis_template=PIPE_TEMPLATE)


def _classify(classifier, images):
    """Ours on one batch: preprocess + image forward + matmul with the class matrix."""
    return classifier.logits(classifier.pixel_values(images))


def onnx_classifiers(model, processor, names, workdir: Path) -> dict:
    """Our model exported with the int8 image graph (`modeling_unicl.export`) and one `ZeroShotClassifier` per ONNX Runtime
    variant; `{"skipped": reason}` without onnxruntime (the `export` extra)."""
    try:
        from modeling_unicl.export import OnnxUniCLModel, export_onnx

        start = time.perf_counter()
        export = export_onnx(model, processor, workdir / "onnx", int8=True, overwrite=True)
    except ImportError as error:
        return {"skipped": f"not measured: {error}"}
    from modeling_unicl import ZeroShotClassifier

    export_s = time.perf_counter() - start
    classifiers, class_matrix_s = {}, {}
    for name, int8 in (("onnx_fp32", False), ("onnx_int8", True)):
        start = time.perf_counter()
        onnx_model = OnnxUniCLModel.from_exported(workdir / "onnx", int8=int8)
        classifiers[name] = ZeroShotClassifier(onnx_model, processor, names, ONNX_TEMPLATES)
        class_matrix_s[name] = time.perf_counter() - start
    return {"classifiers": classifiers, "export_s": export_s, "class_matrix_s": class_matrix_s,
            "templates": len(ONNX_TEMPLATES), "parity_max_abs_diff": export.parity_max_abs_diff,
            "int8_options": export.int8_options}


def bench_zero_shot(config, processor, clip_cfg, settings: Settings, workdir: Path, bf16: bool = True) -> dict:
    """Images/s of ours (class matrix once, then per batch preprocess + image forward + matmul) in eager PyTorch and
    in ONNX Runtime fp32 / int8, of the two pipelines (`time_with_pipelines`) and (with `bf16`) of ours under bf16
    autocast. Returns the `zero_shot`, `zero_shot_onnx` and `pipeline_cache` sections of the results, and the
    images/s that the figures compare."""
    from modeling_unicl import UniCLModel, ZeroShotClassifier
    from modeling_unicl.prompts import IMAGENET_TEMPLATES

    names = class_names(settings.num_classes)
    templates = list(IMAGENET_TEMPLATES[: settings.num_templates])
    images = random_images(settings.zero_shot_batch, seed=1)
    rounds = max(2, settings.zero_shot_reps, settings.pipeline_images)
    pipe_images = random_images(rounds + 1, seed=2)  # one per timed call, + the untimed warm-up
    tokens = processor.tokenizer([PIPE_TEMPLATE.format(n) for n in names])["input_ids"]

    torch.manual_seed(0)
    model = UniCLModel._from_config(config, attn_implementation="sdpa").eval()
    start = time.perf_counter()
    classifier = ZeroShotClassifier(model, processor, names, templates)
    class_matrix_s = time.perf_counter() - start
    onnx = onnx_classifiers(model, processor, names, workdir)  # the export runs the text tower: before the count
    counter = CountForwards(model.text_model)
    classify = {"ours": functools.partial(_classify, classifier, images)}
    classify["ours"]()
    flops_per_image = count_flops(classify["ours"]) / len(images)  # the image forward + the class matmul, counted once
    for name, onnx_classifier in onnx.pop("classifiers", {}).items():
        classify[name] = functools.partial(_classify, onnx_classifier, images)
    piped = time_with_pipelines(classify, model, processor, clip_cfg, workdir, names, pipe_images, rounds)
    gc.collect()  # the pipelines' models, released with time_with_pipelines' frame
    assert counter.calls == 0, "classifying images must not run the text tower"
    times = piped["times"]
    ips = {name: len(images) / statistics.median(times[name]) for name in classify}
    ips.update({"clip_pipeline": 1 / statistics.median(times["clip_pipeline"]),
                "cached_pipeline": 1 / statistics.median(times["cached_pipeline"]), "ours_bf16_autocast": None})
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the image side only; the class matrix stays the fp32 one
            classify["ours"]()
            ips["ours_bf16_autocast"] = len(images) / statistics.median(
                seconds(classify["ours"]) for _ in range(settings.zero_shot_reps))
    del model, classifier, classify
    gc.collect()

    return {
        "zero_shot": {
            "num_classes": len(names),
            "num_templates_ours": len(templates),
            "pipeline_template": PIPE_TEMPLATE,
            "mean_prompt_tokens": float(np.mean([len(t) for t in tokens])),
            "class_matrix_s": class_matrix_s,
            "class_matrix_break_even_images": class_matrix_s * ips["clip_pipeline"],
            "flops_per_image_ours": flops_per_image,
            "round_robin_times_s": times,
        },
        "zero_shot_onnx": onnx,
        "pipeline_cache": {
            "first_call_s": piped["first_call_s"],
            "first_call_text_forwards": piped["first_call_text_forwards"],
            "later_calls_images_per_s": ips["cached_pipeline"],
            "later_calls": len(times["cached_pipeline"]),
            "later_calls_text_forwards": piped["later_calls_text_forwards"],
            "first_vs_later_speedup": piped["first_call_s"] * ips["cached_pipeline"],
            "cached_pipeline_vs_clip_pipeline": ips["cached_pipeline"] / ips["clip_pipeline"],
        },
        "images_per_s": ips,
        "clip_text_forwards": piped["clip_text_forwards"],
    }


def time_with_pipelines(classify: dict, model, processor, clip_cfg, workdir: Path, names, pipe_images,
                        rounds: int) -> dict:
    """Times our classifiers (`classify`: name -> one batch) round-robin with transformers' pipeline on a same-size
    `CLIPModel`, which encodes every label on every call, and on `model` saved to `workdir`, whose text cache encodes
    the labels on its first call only (timed apart, after a warm-up on other labels); one pipeline call per image of
    `pipe_images[1:]`, `rounds` rounds. Counts the text forwards of both pipelines with hooks."""
    clip_pipe = clip_pipeline(clip_cfg)
    clip_counter = CountForwards(clip_pipe.model.text_model)
    pipe_call(clip_pipe, names, pipe_images[0])  # warm-up

    unicl_pipe = folder_pipeline(model, processor, workdir / "unicl")
    unicl_counter = CountForwards(unicl_pipe.model.text_model)
    pipe_call(unicl_pipe, names[:2], pipe_images[0])  # warm-up, other labels
    unicl_counter.calls = 0
    first_s = seconds(lambda: pipe_call(unicl_pipe, names, pipe_images[0]))
    first_forwards = unicl_counter.calls
    for fn in classify.values():  # warm-up: ONNX Runtime sessions allocate on their first run
        fn()

    # Timed round-robin (ours, ONNX Runtime fp32 / int8, CLIP pipeline, cached pipeline, ours, ...): drift of a
    # shared machine hits all alike.
    next_image = {"clip": iter(pipe_images[1:]), "cached": iter(pipe_images[1:])}
    times = round_robin({
        **classify,
        "clip_pipeline": lambda: pipe_call(clip_pipe, names, next(next_image["clip"])),
        "cached_pipeline": lambda: pipe_call(unicl_pipe, names, next(next_image["cached"])),
    }, warmup=0, steps=rounds)
    return {"times": times, "first_call_s": first_s, "first_call_text_forwards": first_forwards,
            "later_calls_text_forwards": unicl_counter.calls - first_forwards, "clip_text_forwards": clip_counter.calls}
